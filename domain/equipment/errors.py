"""Named errors for every invariant of equipment; `code` is stable for replies and logs."""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

from domain import errors
from domain.errors import DomainError


class EquipmentError(DomainError):
    code = "equipment_error"


class EquipmentNotFound(EquipmentError):
    code = "equipment_not_found"

    def __init__(self, equipment_id: UUID) -> None:
        super().__init__(f"equipment {equipment_id} was not registered")
        self.equipment_id = equipment_id


class EquipmentAlreadyRegistered(EquipmentError):
    code = "equipment_already_registered"

    def __init__(self, equipment_id: UUID) -> None:
        super().__init__(f"equipment {equipment_id} is already registered")
        self.equipment_id = equipment_id


class EquipmentRetired(EquipmentError):
    code = "equipment_retired"

    def __init__(self, equipment_id: UUID, retired_at: datetime) -> None:
        super().__init__(f"equipment {equipment_id} was retired at {retired_at.isoformat()}")
        self.equipment_id = equipment_id
        self.retired_at = retired_at


class ReadingGoesBackwards(EquipmentError):
    """Usage is cumulative: a reading is not below an earlier-dated one nor above a later one."""

    code = "reading_goes_backwards"

    def __init__(
        self, equipment_id: UUID, reading: float, at: datetime, other: float, other_at: datetime
    ) -> None:
        super().__init__(
            f"reading {reading} of equipment {equipment_id} at {at.isoformat()} does not fit "
            f"reading {other} at {other_at.isoformat()}: usage only grows"
        )
        self.equipment_id = equipment_id
        self.reading = reading
        self.at = at
        self.other = other
        self.other_at = other_at


class InvalidPlan(EquipmentError):
    code = "invalid_plan"

    def __init__(self, every_days: int | None, every_usage: float | None) -> None:
        super().__init__(
            "a maintenance plan needs every_days (a whole number above 0) and/or every_usage "
            f"(above 0), not every_days={every_days}, every_usage={every_usage}"
        )
        self.every_days = every_days
        self.every_usage = every_usage


class CustomerNotLive(EquipmentError):
    """Unknown, merged away or forgotten: equipment is registered to a live customer only."""

    code = "customer_not_live"

    def __init__(self, customer_id: UUID) -> None:
        super().__init__(f"customer {customer_id} is unknown, merged or forgotten")
        self.customer_id = customer_id


class EventBeforeLast(errors.EventBeforeLast, EquipmentError):
    """A lifecycle stream moves forward in business time; readings are exempt."""
