"""Handlers of audiences: define, change, retire; every definition on the registry's one
stream, so a decision sees all of them (a concurrent definition conflicts and is decided
again)."""

from __future__ import annotations

from collections.abc import Callable

from domain.audiences import commands as cmd
from domain.audiences import decide
from domain.audiences.events import REGISTRY_ID, REGISTRY_TYPE
from domain.audiences.state import Registry, fold
from domain.events import DomainEvent
from handlers.decision import CommandContext, Decision
from handlers.deps import Deps, business_time, load_state
from handlers.registry import COMMANDS


def _on_registry(
    c: cmd.AudienceCommand,
    ctx: CommandContext,
    deps: Deps,
    decision: Callable[[Registry], list[DomainEvent]],
) -> Decision:
    state = load_state(deps, REGISTRY_ID, fold)
    payloads = decision(state)
    return Decision().add(
        ctx,
        stream_id=REGISTRY_ID,
        stream_type=REGISTRY_TYPE,
        after_version=state.version,
        payloads=payloads,
        occurred_at=business_time(c, deps),
        customer_id=None,
    )


@COMMANDS.handles(cmd.DefineAudience)
def define(c: cmd.DefineAudience, ctx: CommandContext, deps: Deps) -> Decision:
    return _on_registry(c, ctx, deps, lambda s: decide.define(s, c))


@COMMANDS.handles(cmd.ChangeAudience)
def change(c: cmd.ChangeAudience, ctx: CommandContext, deps: Deps) -> Decision:
    return _on_registry(c, ctx, deps, lambda s: decide.change(s, c))


@COMMANDS.handles(cmd.RetireAudience)
def retire(c: cmd.RetireAudience, ctx: CommandContext, deps: Deps) -> Decision:
    return _on_registry(c, ctx, deps, lambda s: decide.retire(s, c))
