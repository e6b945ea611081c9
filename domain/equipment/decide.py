"""Decisions on equipment: `decide(state, command, ..., at) -> events` (pure).

`at` is the business time the events will carry. Every event but a usage reading is a
lifecycle event and is not before the last one; a reading may be dated in the past and is
placed among the others, as long as usage still only grows. Repeating a step already taken
(retiring retired equipment, the same plan, the same reading) decides no events.
"""

from __future__ import annotations

from bisect import bisect_right
from datetime import datetime
from uuid import UUID

from domain.equipment import commands as cmd
from domain.equipment import errors as err
from domain.equipment import events as ev
from domain.equipment.state import EquipmentState
from domain.events import DomainEvent


def ensure_registered(state: EquipmentState) -> None:
    if not state.registered:
        raise err.EquipmentNotFound(state.equipment_id)


def _ensure_in_service(state: EquipmentState, at: datetime) -> None:
    """Registered, not retired, and `at` is not before the last lifecycle event."""
    ensure_registered(state)
    if state.last_occurred_at is not None and at < state.last_occurred_at:
        raise err.EventBeforeLast(state.equipment_id, state.last_occurred_at, at)
    if state.retired_at is not None:
        raise err.EquipmentRetired(state.equipment_id, state.retired_at)


def register(
    state: EquipmentState, c: cmd.RegisterEquipment, *, customer_live: bool, at: datetime
) -> list[DomainEvent]:
    if state.registered:
        raise err.EquipmentAlreadyRegistered(state.equipment_id)
    if not customer_live:
        raise err.CustomerNotLive(c.customer_id)
    return [
        ev.EquipmentRegistered(
            customer_id=c.customer_id,
            model=c.model,
            serial=c.serial,
            installed_at=c.installed_at,
            warranty_end=c.warranty_end,
            expected_life_usage=c.expected_life_usage,
            expected_life_years=c.expected_life_years,
        )
    ]


def record_usage(state: EquipmentState, c: cmd.RecordUsage, *, at: datetime) -> list[DomainEvent]:
    """A reading fits between its neighbours in business time: not below any reading dated at
    or before it, not above any dated after it. A reading dated after retirement is refused;
    a late one from before retirement is kept."""
    ensure_registered(state)
    if state.retired_at is not None and at > state.retired_at:
        raise err.EquipmentRetired(state.equipment_id, state.retired_at)
    readings = state.readings
    i = bisect_right(readings, at, key=lambda r: r.at)
    before = readings[:i]
    if any(r.at == at and r.value == c.reading for r in before):
        return []
    if before and (peak := max(before, key=lambda r: r.value)).value > c.reading:
        raise err.ReadingGoesBackwards(state.equipment_id, c.reading, at, peak.value, peak.at)
    after = readings[i:]
    if after and (low := min(after, key=lambda r: r.value)).value < c.reading:
        raise err.ReadingGoesBackwards(state.equipment_id, c.reading, at, low.value, low.at)
    return [ev.UsageRecorded(reading=c.reading)]


def set_maintenance_plan(
    state: EquipmentState, c: cmd.SetMaintenancePlan, *, at: datetime
) -> list[DomainEvent]:
    _ensure_in_service(state, at)
    days_ok = c.every_days is None or c.every_days > 0
    usage_ok = c.every_usage is None or c.every_usage > 0
    if (c.every_days is None and c.every_usage is None) or not (days_ok and usage_ok):
        raise err.InvalidPlan(c.every_days, c.every_usage)
    if (state.every_days, state.every_usage) == (c.every_days, c.every_usage):
        return []
    return [ev.MaintenancePlanSet(every_days=c.every_days, every_usage=c.every_usage)]


def record_maintenance(
    state: EquipmentState, c: cmd.RecordMaintenance, *, at: datetime
) -> list[DomainEvent]:
    """A maintenance also ends an open breakdown."""
    _ensure_in_service(state, at)
    return [ev.MaintenanceRecorded(kind=c.kind, notes=c.notes)]


def report_breakdown(
    state: EquipmentState, c: cmd.ReportBreakdown, *, at: datetime, ticket_id: UUID | None = None
) -> list[DomainEvent]:
    """`ticket_id` is the ticket the handler opens for the breakdown, kept for the link."""
    _ensure_in_service(state, at)
    return [
        ev.BreakdownReported(
            failure_code=c.failure_code, description=c.description, ticket_id=ticket_id
        )
    ]


def retire(state: EquipmentState, c: cmd.RetireEquipment, *, at: datetime) -> list[DomainEvent]:
    ensure_registered(state)
    if state.retired_at is not None:
        return []
    _ensure_in_service(state, at)
    return [ev.EquipmentRetired(reason=c.reason)]
