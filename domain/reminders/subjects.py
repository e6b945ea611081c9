"""What the rules read of one subject (a piece of equipment, a ticket, an order, a deal, a
survey answer, a meeting, the customer's own record), folded from its events (pure).

The subjects carry the domain's own folded states, with free text and the occasion's person
and date left out: a view keeping them holds no personal data. Events are folded with the
domain's `fold`, one at a time, from the subject folded so far.
"""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

import msgspec
from msgspec.structs import replace

from domain.customers import events as cev
from domain.equipment import events as eev
from domain.equipment.state import EquipmentState
from domain.equipment.state import fold as fold_equipment
from domain.events import DomainEvent
from domain.interactions.events import MeetingLogged
from domain.orders import events as oev
from domain.orders.state import OrderState
from domain.orders.state import fold as fold_order
from domain.pipeline import events as pev
from domain.pipeline.state import DealState, fold_deal
from domain.surveys.events import NpsCategory, SurveyAnswered, SurveyKind
from domain.surveys.state import nps_category
from domain.tickets import events as tev
from domain.tickets.state import TicketState
from domain.tickets.state import fold as fold_ticket


class _Subject(msgspec.Struct, frozen=True, kw_only=True, tag_field="kind"):
    pass


class CustomerFacts(_Subject, frozen=True, kw_only=True, tag="customer"):
    """`owner`: the employee the last `customer.owner_assigned` named; `merged_into`: the
    survivor it lives on as, while merged."""

    customer_id: UUID
    owner: str | None = None
    forgotten: bool = False
    merged_into: UUID | None = None


class EquipmentFacts(_Subject, frozen=True, kw_only=True, tag="equipment"):
    """`technician`: the actor of the last maintenance recorded (from its envelope)."""

    state: EquipmentState
    technician: str | None = None


class TicketFacts(_Subject, frozen=True, kw_only=True, tag="ticket"):
    state: TicketState


class OrderFacts(_Subject, frozen=True, kw_only=True, tag="order"):
    state: OrderState


class DealFacts(_Subject, frozen=True, kw_only=True, tag="deal"):
    """The deal and its last quote (number, business time sent)."""

    state: DealState
    quote_number: str | None = None
    quote_sent_at: datetime | None = None


class SurveyFacts(_Subject, frozen=True, kw_only=True, tag="survey"):
    survey_id: UUID
    survey_kind: SurveyKind
    score: int
    answered_at: datetime

    @property
    def category(self) -> NpsCategory | None:
        return nps_category(self.score) if self.survey_kind == "nps" else None


class MeetingFacts(_Subject, frozen=True, kw_only=True, tag="meeting"):
    """`held_by`: the employee who logged the meeting (its envelope's actor), if one did."""

    interaction_id: UUID
    at: datetime
    held_by: str | None = None


Subject = (
    CustomerFacts
    | EquipmentFacts
    | TicketFacts
    | OrderFacts
    | DealFacts
    | SurveyFacts
    | MeetingFacts
)

EQUIPMENT_EVENTS = (
    eev.EquipmentRegistered,
    eev.UsageRecorded,
    eev.MaintenancePlanSet,
    eev.MaintenanceRecorded,
    eev.BreakdownReported,
    eev.EquipmentRetired,
)
TICKET_EVENTS = (
    tev.TicketOpened,
    tev.TicketAssigned,
    tev.TicketResponded,
    tev.TicketEscalated,
    tev.TicketResolved,
    tev.TicketReopened,
    tev.TicketClosed,
)
ORDER_EVENTS = (oev.OrderPlaced, oev.InvoiceIssued, oev.OrderPaid, oev.OrderCancelled)
DEAL_EVENTS = (pev.DealOpened, pev.DealAssigned, pev.QuoteSent, pev.DealWon, pev.DealLost)
CUSTOMER_EVENTS = (
    cev.OwnerAssigned,
    cev.CustomerForgotten,
    cev.CustomerMergedInto,
    cev.CustomerUnmerged,
)
EMPLOYEE_PREFIX = "employee:"  # actors that are people of ours, not services
SUBJECT_EVENTS: tuple[type[DomainEvent], ...] = (
    *CUSTOMER_EVENTS,
    *EQUIPMENT_EVENTS,
    *TICKET_EVENTS,
    *ORDER_EVENTS,
    *DEAL_EVENTS,
    SurveyAnswered,
    MeetingLogged,
)
"""The event types a subject is folded from (every other type leaves subjects as they are)."""


def advance(
    subject: Subject | None,
    *,
    stream_id: UUID,
    version: int,
    at: datetime,
    actor: str,
    payload: DomainEvent,
) -> Subject | None:
    """The subject of `stream_id` after one more event of its stream (None: not a subject)."""
    one = [(version, at, payload)]
    match payload:
        case (
            cev.OwnerAssigned()
            | cev.CustomerForgotten()
            | cev.CustomerMergedInto()
            | cev.CustomerUnmerged()
        ):
            facts = (
                subject
                if isinstance(subject, CustomerFacts)
                else CustomerFacts(customer_id=stream_id)
            )
            if isinstance(payload, cev.OwnerAssigned):
                return replace(facts, owner=payload.owner)
            if isinstance(payload, cev.CustomerMergedInto):
                return replace(facts, merged_into=payload.survivor_id)
            if isinstance(payload, cev.CustomerUnmerged):
                return replace(facts, merged_into=None)
            return replace(facts, forgotten=True)
        case _ if isinstance(payload, EQUIPMENT_EVENTS):
            old = subject if isinstance(subject, EquipmentFacts) else None
            state = fold_equipment(stream_id, one, old.state if old else None)
            technician = old.technician if old else None
            if isinstance(payload, eev.MaintenanceRecorded):
                technician = actor
            return EquipmentFacts(state=state, technician=technician)
        case _ if isinstance(payload, TICKET_EVENTS):
            prior = subject.state if isinstance(subject, TicketFacts) else None
            state = fold_ticket(stream_id, one, prior)
            return TicketFacts(state=replace(state, subject=None, resolution=None))
        case _ if isinstance(payload, ORDER_EVENTS):
            prior_order = subject.state if isinstance(subject, OrderFacts) else None
            order = fold_order(stream_id, one, prior_order)
            occasion = order.occasion
            if occasion is not None:
                occasion = oev.Occasion(kind=occasion.kind)  # no person, no date
            return OrderFacts(state=replace(order, items=(), occasion=occasion))
        case _ if isinstance(payload, DEAL_EVENTS):
            deal = subject if isinstance(subject, DealFacts) else None
            state_d = fold_deal(stream_id, one, deal.state if deal else None)
            if isinstance(payload, pev.QuoteSent):
                return DealFacts(state=state_d, quote_number=payload.quote_number, quote_sent_at=at)
            if deal is None:
                return DealFacts(state=state_d)
            return replace(deal, state=state_d)
        case SurveyAnswered():
            return SurveyFacts(
                survey_id=stream_id, survey_kind=payload.kind, score=payload.score, answered_at=at
            )
        case MeetingLogged():
            return MeetingFacts(
                interaction_id=stream_id,
                at=at,
                held_by=actor if actor.startswith(EMPLOYEE_PREFIX) else None,
            )
    return subject
