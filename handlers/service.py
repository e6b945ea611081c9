"""Handlers of equipment a customer owns and of satisfaction surveys (NPS, CSAT)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from uuid import UUID

from domain.equipment import commands as ecmd
from domain.equipment import decide as edecide
from domain.equipment.state import EquipmentState
from domain.equipment.state import fold as fold_equipment
from domain.events import DomainEvent
from domain.surveys import commands as scmd
from domain.surveys import decide as sdecide
from domain.surveys.state import fold as fold_survey
from handlers.decision import CommandContext, Decision
from handlers.deps import Deps, business_time, live_customer, load_state, new_id
from handlers.registry import COMMANDS


def _on_equipment(
    ctx: CommandContext, at: datetime, state: EquipmentState, payloads: list[DomainEvent]
) -> Decision:
    return Decision().add(
        ctx,
        stream_id=state.equipment_id,
        stream_type="equipment",
        after_version=state.version,
        payloads=payloads,
        occurred_at=at,
        customer_id=state.customer_id,
    )


@COMMANDS.handles(ecmd.RegisterEquipment)
def register_equipment(c: ecmd.RegisterEquipment, ctx: CommandContext, deps: Deps) -> Decision:
    state = load_state(deps, c.equipment_id or new_id(ctx, "equipment"), fold_equipment)
    live_customer(deps, c.customer_id)
    at = business_time(c, deps)
    payloads = edecide.register(state, c, customer_live=True, at=at)
    return Decision().add(
        ctx,
        stream_id=state.equipment_id,
        stream_type="equipment",
        after_version=state.version,
        payloads=payloads,
        occurred_at=at,
        customer_id=c.customer_id,
    )


def _equipment_command(
    decide_fn: Callable[..., list[DomainEvent]],
) -> Callable[[ecmd.EquipmentCommand, CommandContext, Deps], Decision]:
    def handle(c: ecmd.EquipmentCommand, ctx: CommandContext, deps: Deps) -> Decision:
        state = load_state(deps, c.equipment_id, fold_equipment)  # type: ignore[attr-defined]
        at = business_time(c, deps)
        return _on_equipment(ctx, at, state, decide_fn(state, c, at=at))

    return handle


for _command, _decide in (
    (ecmd.RecordUsage, edecide.record_usage),
    (ecmd.SetMaintenancePlan, edecide.set_maintenance_plan),
    (ecmd.RecordMaintenance, edecide.record_maintenance),
    (ecmd.RetireEquipment, edecide.retire),
):
    COMMANDS.handles(_command)(_equipment_command(_decide))


@COMMANDS.handles(ecmd.ReportBreakdown)
def report_breakdown(c: ecmd.ReportBreakdown, ctx: CommandContext, deps: Deps) -> Decision:
    """The breakdown names the service ticket it is handled under (derived from the command,
    so a retry names the same one)."""
    state = load_state(deps, c.equipment_id, fold_equipment)
    at = business_time(c, deps)
    ticket_id: UUID = new_id(ctx, "ticket")
    return _on_equipment(
        ctx, at, state, edecide.report_breakdown(state, c, at=at, ticket_id=ticket_id)
    )


@COMMANDS.handles(scmd.SendSurvey)
def send_survey(c: scmd.SendSurvey, ctx: CommandContext, deps: Deps) -> Decision:
    state = load_state(deps, c.survey_id or new_id(ctx, "survey"), fold_survey)
    live_customer(deps, c.customer_id)
    at = business_time(c, deps)
    return Decision().add(
        ctx,
        stream_id=state.survey_id,
        stream_type="survey",
        after_version=state.version,
        payloads=sdecide.send(state, c, customer_live=True, at=at),
        occurred_at=at,
        customer_id=c.customer_id,
        channel="questionnaire",
    )


@COMMANDS.handles(scmd.AnswerSurvey)
def answer_survey(c: scmd.AnswerSurvey, ctx: CommandContext, deps: Deps) -> Decision:
    state = load_state(deps, c.survey_id, fold_survey)
    at = business_time(c, deps)
    return Decision().add(
        ctx,
        stream_id=state.survey_id,
        stream_type="survey",
        after_version=state.version,
        payloads=sdecide.answer(state, c, at=at),
        occurred_at=at,
        customer_id=state.customer_id,
        channel="questionnaire",
    )
