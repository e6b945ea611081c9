"""What every handler is given: the event log port and the clock."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TypeVar
from uuid import UUID, SafeUUID, uuid4

from domain.commands import Command
from domain.customers.decide import ensure_live
from domain.customers.state import CustomerState
from handlers.decision import CommandContext
from handlers.ports import Clock, EventLog
from handlers.states import CustomerStates

IDS = UUID("3c1f6f0e-5b7a-4d8e-9a61-2f0c8b4d7e25")
_IDS_BYTES = IDS.bytes
S = TypeVar("S")


@dataclass(frozen=True)
class Deps:
    log: EventLog
    clock: Clock
    states: CustomerStates = field(default_factory=CustomerStates)


_VERSION_5 = ~(0xC000 << 48) & ~(0xF000 << 64) & (2**128 - 1)  # variant and version bits off
_RFC_4122_V5 = (0x8000 << 48) | (5 << 76)
_new_object = object.__new__
_set = object.__setattr__
_UNKNOWN = SafeUUID.unknown


def new_id(ctx: CommandContext, purpose: str) -> UUID:
    """A new stream id; derived from the command id when there is one, so a retry of the same
    command aims at the same stream and cannot create a second one."""
    if ctx.command_id:  # uuid5(IDS, ...) by hand: the same id, built as UUID.__init__ does
        digest = hashlib.sha1(_IDS_BYTES + f"{ctx.command_id}:{purpose}".encode()).digest()
        found = _new_object(UUID)
        _set(found, "int", int.from_bytes(digest[:16]) & _VERSION_5 | _RFC_4122_V5)
        _set(found, "is_safe", _UNKNOWN)
        return found  # type: ignore[no-any-return]
    return uuid4()


def business_time(command: Command, deps: Deps) -> datetime:
    """The command's `occurred_at` (naive means UTC), else now by the engine's clock."""
    at: datetime | None = getattr(command, "occurred_at", None)
    if at is None:
        return deps.clock.now()
    return at if at.tzinfo is not None else at.replace(tzinfo=UTC)


def load_state(deps: Deps, stream_id: UUID, fold: Callable[[UUID, list[Any]], S]) -> S:
    """Any aggregate's state: its stream folded by the domain's `fold(id, triples)`."""
    events = deps.log.load(stream_id)
    return fold(stream_id, [(e.version, e.occurred_at, e.payload) for e in events])


def live_customer(deps: Deps, customer_id: UUID) -> CustomerState:
    """The customer, or the registry's named error (not found, merged, forgotten)."""
    state = load_customer(deps, customer_id)
    ensure_live(state)
    return state


def load_customer(deps: Deps, customer_id: UUID) -> CustomerState:
    return deps.states.get(deps.log, customer_id)
