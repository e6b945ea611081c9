"""Commands on equipment. Counts and sizes that the decoder can check are checked there
(`gt=0`); the maintenance plan is checked by the domain (InvalidPlan), as it spans two fields."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated
from uuid import UUID

import msgspec

from domain.commands import Command

Label = Annotated[str, msgspec.Meta(min_length=1, max_length=100)]
Text = Annotated[str, msgspec.Meta(min_length=1, max_length=2000)]
Positive = Annotated[float, msgspec.Meta(gt=0)]
Reading = Annotated[float, msgspec.Meta(ge=0)]


class EquipmentCommand(Command, frozen=True, kw_only=True):
    """`occurred_at` is business time as the source reports it; the engine's clock if absent."""

    occurred_at: datetime | None = None


class RegisterEquipment(EquipmentCommand, frozen=True, kw_only=True, tag="equipment.register"):
    equipment_id: UUID | None = None
    customer_id: UUID
    model: Label
    serial: Label
    installed_at: datetime
    warranty_end: date | None = None
    expected_life_usage: Positive | None = None
    expected_life_years: Positive | None = None


class RecordUsage(EquipmentCommand, frozen=True, kw_only=True, tag="equipment.record_usage"):
    """`reading` is the cumulative counter at `occurred_at` (which may be in the past)."""

    equipment_id: UUID
    reading: Reading


class SetMaintenancePlan(
    EquipmentCommand, frozen=True, kw_only=True, tag="equipment.set_maintenance_plan"
):
    equipment_id: UUID
    every_days: int | None = None
    every_usage: float | None = None


class RecordMaintenance(
    EquipmentCommand, frozen=True, kw_only=True, tag="equipment.record_maintenance"
):
    equipment_id: UUID
    kind: Label
    notes: Text | None = None


class ReportBreakdown(
    EquipmentCommand, frozen=True, kw_only=True, tag="equipment.report_breakdown"
):
    equipment_id: UUID
    failure_code: Label
    description: Text | None = None


class RetireEquipment(EquipmentCommand, frozen=True, kw_only=True, tag="equipment.retire"):
    equipment_id: UUID
    reason: Text | None = None
