"""Events of a reminder's stream: an employee completed or snoozed one occurrence of a rule.

The reminder itself is never an event: it is derived from the other streams (`rules`). Its
`key` names the occurrence; the stream's id is derived from it (`rules.reminder_id_of`).
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from domain.events import EVENTS, PERSONAL, DomainEvent


@EVENTS.register
class ReminderCompleted(DomainEvent, frozen=True, kw_only=True, tag="reminder.completed"):
    """`note` is free text about the customer, so personal."""

    key: str
    note: Annotated[str | None, PERSONAL] = None


@EVENTS.register
class ReminderSnoozed(DomainEvent, frozen=True, kw_only=True, tag="reminder.snoozed"):
    """The reminder is out of the lists until `until` (replacing any earlier snooze)."""

    key: str
    until: datetime
