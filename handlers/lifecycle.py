"""The common handler of a command on an existing lifecycle stream (order, deal, ticket,
equipment): load the stream the command names, decide at business time, append after the
version loaded, with the stream's customer on the envelope."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any
from uuid import UUID

from domain.commands import Command
from domain.events import DomainEvent
from handlers.decision import CommandContext, Decision
from handlers.deps import Deps, business_time, load_state
from handlers.registry import COMMANDS


def handles_on_stream(
    pairs: Iterable[tuple[type[Command], Callable[..., list[DomainEvent]]]],
    *,
    id_field: str,
    stream_type: str,
    fold: Callable[[UUID, list[Any]], Any],
) -> None:
    """Register, for each (command type, decide), a handler that loads the stream named by
    the command's `id_field` and appends what `decide(state, command, at=...)` returns."""
    for command_type, decide in pairs:
        COMMANDS.handles(command_type)(_on_stream(id_field, stream_type, fold, decide))


def _on_stream(
    id_field: str,
    stream_type: str,
    fold: Callable[[UUID, list[Any]], Any],
    decide: Callable[..., list[DomainEvent]],
) -> Callable[[Command, CommandContext, Deps], Decision]:
    def handle(c: Command, ctx: CommandContext, deps: Deps) -> Decision:
        stream_id: UUID = getattr(c, id_field)
        state = load_state(deps, stream_id, fold)
        at = business_time(c, deps)
        return Decision().add(
            ctx,
            stream_id=stream_id,
            stream_type=stream_type,
            after_version=state.version,
            payloads=decide(state, c, at=at),
            occurred_at=at,
            customer_id=state.customer_id,
        )

    return handle
