"""Named errors of reminders; `code` is stable for replies and logs."""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

from domain.errors import DomainError


class ReminderError(DomainError):
    code = "reminder_error"


class InvalidReminderKey(ReminderError):
    """Keys are made by the rules (`rule:customer:subject[:occurrence]`); others name nothing."""

    code = "invalid_reminder_key"

    def __init__(self, key: str) -> None:
        super().__init__(f"{key!r} is not a reminder key (rule:customer:subject[:occurrence])")
        self.key = key


class ReminderIdMismatch(ReminderError):
    code = "reminder_id_mismatch"

    def __init__(self, reminder_id: UUID, key: str, expected: UUID) -> None:
        super().__init__(f"reminder {reminder_id} is not the reminder of key {key!r} ({expected})")
        self.reminder_id = reminder_id
        self.key = key
        self.expected = expected


class ReminderAlreadyCompleted(ReminderError):
    """Completing or snoozing a completed reminder: it is done for good."""

    code = "reminder_already_completed"

    def __init__(self, key: str, action: str) -> None:
        super().__init__(f"reminder {key!r} is already completed, so it cannot be {action}")
        self.key = key
        self.action = action


class SnoozeInThePast(ReminderError):
    code = "snooze_in_the_past"

    def __init__(self, key: str, until: datetime, at: datetime) -> None:
        super().__init__(
            f"reminder {key!r} cannot be snoozed until {until.isoformat()}: "
            f"that is not after {at.isoformat()}"
        )
        self.key = key
        self.until = until
        self.at = at
