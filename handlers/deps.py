"""What every handler is given: the event log port and the clock."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from uuid import UUID, uuid4, uuid5

from domain.commands import Command
from domain.customers.state import CustomerState, fold
from handlers.decision import CommandContext
from handlers.ports import Clock, EventLog

IDS = UUID("3c1f6f0e-5b7a-4d8e-9a61-2f0c8b4d7e25")


@dataclass(frozen=True)
class Deps:
    log: EventLog
    clock: Clock


def new_id(ctx: CommandContext, purpose: str) -> UUID:
    """A new stream id; derived from the command id when there is one, so a retry of the same
    command aims at the same stream and cannot create a second one."""
    if ctx.command_id:
        return uuid5(IDS, f"{ctx.command_id}:{purpose}")
    return uuid4()


def business_time(command: Command, deps: Deps) -> datetime:
    """The command's `occurred_at` (naive means UTC), else now by the engine's clock."""
    at: datetime | None = getattr(command, "occurred_at", None)
    if at is None:
        return deps.clock.now()
    return at if at.tzinfo is not None else at.replace(tzinfo=UTC)


def load_customer(deps: Deps, customer_id: UUID) -> CustomerState:
    events = deps.log.load(customer_id)
    return fold(customer_id, [(e.version, e.occurred_at, e.payload) for e in events])
