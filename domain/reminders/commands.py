"""Commands on a reminder. `reminder_id` may be left out: it is derived from `key`."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated
from uuid import UUID

import msgspec

from domain.commands import Command

Key = Annotated[str, msgspec.Meta(min_length=1, max_length=300)]
Note = Annotated[str, msgspec.Meta(min_length=1, max_length=2000)]


class ReminderCommand(Command, frozen=True, kw_only=True):
    """`occurred_at` is business time as the source reports it; the engine's clock if absent."""

    reminder_id: UUID | None = None
    key: Key
    occurred_at: datetime | None = None


class CompleteReminder(ReminderCommand, frozen=True, kw_only=True, tag="reminder.complete"):
    note: Note | None = None


class SnoozeReminder(ReminderCommand, frozen=True, kw_only=True, tag="reminder.snooze"):
    """`until` must be later than the command's business time (naive means UTC)."""

    until: datetime
