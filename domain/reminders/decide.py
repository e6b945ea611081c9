"""Decisions on a reminder: `decide(state, command, at) -> events` (pure).

A reminder's stream is named by its key (`rules.reminder_id_of`), so the command's key must
be one the rules make and its id, if given, the key's. Completing is final; a snooze must end
after the command's business time.
"""

from __future__ import annotations

from datetime import UTC, datetime
from uuid import UUID

from domain.events import DomainEvent
from domain.reminders import commands as cmd
from domain.reminders import errors as err
from domain.reminders import events as ev
from domain.reminders.rules import parse_key, reminder_id_of
from domain.reminders.state import ReminderState


def stream_of(c: cmd.ReminderCommand) -> tuple[UUID, UUID]:
    """(reminder stream id, customer id) the command's key names, checked against its id."""
    _, customer_id, _ = parse_key(c.key)
    expected = reminder_id_of(c.key)
    if c.reminder_id is not None and c.reminder_id != expected:
        raise err.ReminderIdMismatch(c.reminder_id, c.key, expected)
    return expected, customer_id


def complete(state: ReminderState, c: cmd.CompleteReminder, *, at: datetime) -> list[DomainEvent]:
    stream_of(c)
    if state.completed:
        raise err.ReminderAlreadyCompleted(c.key, "completed again")
    return [ev.ReminderCompleted(key=c.key, note=c.note)]


def snooze(state: ReminderState, c: cmd.SnoozeReminder, *, at: datetime) -> list[DomainEvent]:
    stream_of(c)
    if state.completed:
        raise err.ReminderAlreadyCompleted(c.key, "snoozed")
    until = c.until if c.until.tzinfo is not None else c.until.replace(tzinfo=UTC)
    if until <= at:
        raise err.SnoozeInThePast(c.key, until, at)
    return [ev.ReminderSnoozed(key=c.key, until=until)]
