"""Events of an equipment's stream. Usage is a cumulative counter (hours, km, cycles) from zero
at installation, as a float; the customer is named by id only, free text is personal."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Literal
from uuid import UUID

from domain.events import EVENTS, PERSONAL, DomainEvent

EquipmentStatus = Literal["in_service", "broken_down", "retired"]


@EVENTS.register
class EquipmentRegistered(DomainEvent, frozen=True, kw_only=True, tag="equipment.registered"):
    """`expected_life_usage` (units) and `expected_life_years` are each optional."""

    customer_id: UUID
    model: str
    serial: str
    installed_at: datetime
    warranty_end: date | None = None
    expected_life_usage: float | None = None
    expected_life_years: float | None = None


@EVENTS.register
class UsageRecorded(DomainEvent, frozen=True, kw_only=True, tag="equipment.usage_recorded"):
    """The counter read `reading` at the event's business time, which may be in the past."""

    reading: float


@EVENTS.register
class MaintenancePlanSet(
    DomainEvent, frozen=True, kw_only=True, tag="equipment.maintenance_plan_set"
):
    """Maintain every `every_days` days and/or every `every_usage` units, whichever comes first."""

    every_days: int | None = None
    every_usage: float | None = None


@EVENTS.register
class MaintenanceRecorded(
    DomainEvent, frozen=True, kw_only=True, tag="equipment.maintenance_recorded"
):
    kind: str
    notes: Annotated[str | None, PERSONAL] = None


@EVENTS.register
class BreakdownReported(DomainEvent, frozen=True, kw_only=True, tag="equipment.breakdown_reported"):
    """`ticket_id` is the ticket the handler opens for it."""

    failure_code: str
    description: Annotated[str | None, PERSONAL] = None
    ticket_id: UUID | None = None


@EVENTS.register
class EquipmentRetired(DomainEvent, frozen=True, kw_only=True, tag="equipment.retired"):
    reason: str | None = None
