"""Handlers of service: tickets and complaints, equipment a customer owns, and satisfaction
surveys (NPS, CSAT). A breakdown opens its ticket in the same transaction."""

from __future__ import annotations

from datetime import datetime

from domain.equipment import commands as ecmd
from domain.equipment import decide as edecide
from domain.equipment.state import EquipmentState
from domain.equipment.state import fold as fold_equipment
from domain.events import DomainEvent
from domain.surveys import commands as scmd
from domain.surveys import decide as sdecide
from domain.surveys.state import fold as fold_survey
from domain.tickets import commands as tcmd
from domain.tickets import decide as tdecide
from domain.tickets.state import fold as fold_ticket
from handlers.decision import CommandContext, Decision
from handlers.deps import Deps, business_time, live_customer, load_state, new_id
from handlers.lifecycle import handles_on_stream
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


handles_on_stream(
    (
        (ecmd.RecordUsage, edecide.record_usage),
        (ecmd.SetMaintenancePlan, edecide.set_maintenance_plan),
        (ecmd.RecordMaintenance, edecide.record_maintenance),
        (ecmd.RetireEquipment, edecide.retire),
    ),
    id_field="equipment_id",
    stream_type="equipment",
    fold=fold_equipment,
)


@COMMANDS.handles(ecmd.ReportBreakdown)
def report_breakdown(c: ecmd.ReportBreakdown, ctx: CommandContext, deps: Deps) -> Decision:
    """The breakdown and the incident ticket it opens, in one transaction (the ticket's id is
    derived from the command, so a retry names the same one)."""
    state = load_state(deps, c.equipment_id, fold_equipment)
    at = business_time(c, deps)
    ticket = load_state(deps, new_id(ctx, "ticket"), fold_ticket)
    decision = _on_equipment(
        ctx, at, state, edecide.report_breakdown(state, c, at=at, ticket_id=ticket.ticket_id)
    )
    assert state.customer_id is not None
    opened = tdecide.open_ticket(
        ticket,
        tcmd.OpenTicket(
            ticket_id=ticket.ticket_id,
            customer_id=state.customer_id,
            kind="incident",
            category="breakdown",
            severity="high",
            subject=f"Breakdown {c.failure_code} of {state.model or 'equipment'} {state.serial or ''}".strip(),
            equipment_id=state.equipment_id,
        ),
        customer_live=True,
        at=at,
    )
    return decision.add(
        ctx,
        stream_id=ticket.ticket_id,
        stream_type="ticket",
        after_version=ticket.version,
        payloads=opened,
        occurred_at=at,
        customer_id=state.customer_id,
    )


@COMMANDS.handles(tcmd.OpenTicket)
def open_ticket(c: tcmd.OpenTicket, ctx: CommandContext, deps: Deps) -> Decision:
    state = load_state(deps, c.ticket_id or new_id(ctx, "ticket"), fold_ticket)
    live_customer(deps, c.customer_id)
    at = business_time(c, deps)
    return Decision().add(
        ctx,
        stream_id=state.ticket_id,
        stream_type="ticket",
        after_version=state.version,
        payloads=tdecide.open_ticket(state, c, customer_live=True, at=at),
        occurred_at=at,
        customer_id=c.customer_id,
        channel=c.channel,
    )


handles_on_stream(
    (
        (tcmd.AssignTicket, tdecide.assign),
        (tcmd.RespondToTicket, tdecide.respond),
        (tcmd.EscalateTicket, tdecide.escalate),
        (tcmd.ResolveTicket, tdecide.resolve),
        (tcmd.ReopenTicket, tdecide.reopen),
        (tcmd.CloseTicket, tdecide.close),
    ),
    id_field="ticket_id",
    stream_type="ticket",
    fold=fold_ticket,
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
