"""The audience registry as decisions and views need it, folded from its one stream (pure)."""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

import msgspec
from msgspec.structs import replace

from domain.audiences import ast
from domain.audiences import events as ev
from domain.events import DomainEvent


class Definition(msgspec.Struct, frozen=True, kw_only=True):
    name: str
    version: int
    text: str
    rule: ast.Rule
    retired: bool = False


class Registry(msgspec.Struct, frozen=True, kw_only=True):
    stream_id: UUID = ev.REGISTRY_ID
    version: int = 0
    definitions: dict[str, Definition] = {}

    def live(self) -> dict[str, Definition]:
        return {n: d for n, d in self.definitions.items() if not d.retired}


def evolve(state: Registry, event: DomainEvent) -> Registry:
    defs = state.definitions
    match event:
        case ev.AudienceDefined() | ev.AudienceChanged():
            d = Definition(name=event.name, version=event.version, text=event.text, rule=event.rule)
            return replace(state, definitions={**defs, event.name: d})
        case ev.AudienceRetired() if event.name in defs:
            d = replace(defs[event.name], retired=True, version=event.version)
            return replace(state, definitions={**defs, event.name: d})
    return state


def fold(stream_id: UUID, events: list[tuple[int, datetime, DomainEvent]]) -> Registry:
    state = Registry(stream_id=stream_id)
    for version, _, payload in events:
        state = replace(evolve(state, payload), version=version)
    return state


def dependency_order(definitions: dict[str, Definition]) -> list[Definition]:
    """Live definitions with every audience after the ones it refers to (`member(...)`)."""
    live = {n: d for n, d in definitions.items() if not d.retired}
    done: dict[str, Definition] = {}

    def visit(name: str, path: tuple[str, ...]) -> None:
        if name in done or name not in live or name in path:
            return
        for ref in sorted(ast.references(live[name].rule)):
            visit(ref, (*path, name))
        done[name] = live[name]

    for name in sorted(live):
        visit(name, ())
    return list(done.values())
