"""A reminder's stream folded as decisions need it (pure)."""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

import msgspec
from msgspec.structs import replace

from domain.events import DomainEvent
from domain.reminders import events as ev
from domain.streams import fold_events


class ReminderState(msgspec.Struct, frozen=True, kw_only=True):
    reminder_id: UUID
    version: int = 0
    key: str | None = None
    completed_at: datetime | None = None
    snoozed_until: datetime | None = None
    last_occurred_at: datetime | None = None

    @property
    def completed(self) -> bool:
        return self.completed_at is not None


def evolve(state: ReminderState, event: DomainEvent, at: datetime) -> ReminderState:
    match event:
        case ev.ReminderCompleted():
            return replace(state, key=event.key, completed_at=at)
        case ev.ReminderSnoozed():
            return replace(state, key=event.key, snoozed_until=event.until)
    return state


def fold(
    reminder_id: UUID,
    events: list[tuple[int, datetime, DomainEvent]],
    start: ReminderState | None = None,
) -> ReminderState:
    """State after (version, occurred_at, payload) triples in version order, from `start`."""
    start = start if start is not None else ReminderState(reminder_id=reminder_id)
    return fold_events(evolve, start, events)
