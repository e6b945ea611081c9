"""The rules that derive reminders from the other streams, and whom each goes to (pure).

Rules (their parameters are one `ReminderPolicy`; business times are the events' own):
- `maintenance_due`: at the equipment's next maintenance due date (domain/equipment's
  `next_maintenance_due`, usage extrapolated at the observed rate) less `maintenance_lead`;
  one occurrence per maintenance recorded; none once retired or without a plan.
- `sla_at_risk`: a ticket's first response or resolution that is not met, once
  `sla_at_risk_share` (75%) of its window (domain/tickets/sla.py) has passed; each reopening
  is a new resolution occurrence. Meeting the SLA removes it.
- `meeting_follow_up`: `meeting_follow_up` (2 days) after a meeting.
- `quote_follow_up`: `quote_follow_up` (3 days) after a deal's last quote, while the deal is
  open (a deal won or lost needs no follow-up).
- `detractor_call_back`: `detractor_call_back` (1 day) after an NPS answer of 0..6.
- `dormant_customer`: `dormant_after` (180 days) after the customer's last order (the latest
  business time an order was placed, cancelled ones included); a new order moves it. None
  for a customer merged into another (it lives on as the survivor) until it is unmerged.
- `overdue_invoice`: at `overdue_at(due_date)` of an invoice not paid, of an order not
  cancelled; paying or cancelling removes it.
- `anniversary`: `anniversary_months` (11) after an order with an occasion (a gift), unless
  cancelled.

Routing (who gets it):
- ticket reminders -> the ticket's assigned agent, else the account owner;
- maintenance -> the technician: the actor of the last maintenance recorded, else the
  account owner;
- meeting follow-up -> the employee who logged the meeting (an `employee:` actor), else the
  account owner;
- quote follow-up -> the deal's owner, else the account owner;
- everything else -> the account owner.
The account owner is the employee the customer's last `customer.owner_assigned` named, else
the owner of the customer's most recently opened deal that has one (ties: the larger deal
id), else `UNASSIGNED`. Merges are not followed: a reminder stays with the customer its
events name.

A reminder's `key` names one occurrence: `rule:customer:subject[:occurrence]`; its stream id
is derived from it (`reminder_id_of`). Reasons name no person and quote no free text.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta
from typing import Literal, get_args
from uuid import UUID, uuid5

import msgspec
from dateutil.relativedelta import relativedelta

from domain.equipment.state import EquipmentState, next_maintenance_due, observed_usage_rate
from domain.orders.state import OrderState, overdue_from
from domain.pipeline.state import DealState
from domain.reminders import subjects as sub
from domain.reminders.errors import InvalidReminderKey
from domain.tickets.events import Severity
from domain.tickets.sla import (
    DEFAULT_POLICIES,
    SlaPolicy,
    first_response_met_at,
    policy_for,
    resolution_started_at,
)
from domain.tickets.state import TicketState

Rule = Literal[
    "maintenance_due",
    "sla_at_risk",
    "meeting_follow_up",
    "quote_follow_up",
    "detractor_call_back",
    "dormant_customer",
    "overdue_invoice",
    "anniversary",
]
RULES: frozenset[str] = frozenset(get_args(Rule))
UNASSIGNED = "unassigned"
REMINDERS_NS = UUID("5d0f3c2a-8e41-4b7f-a6d2-1c9e7b3f4a80")


class ReminderPolicy(msgspec.Struct, frozen=True, kw_only=True):
    meeting_follow_up: timedelta = timedelta(days=2)
    quote_follow_up: timedelta = timedelta(days=3)
    sla_at_risk_share: float = 0.75
    sla_policies: Mapping[Severity, SlaPolicy] = msgspec.field(
        default_factory=lambda: dict(DEFAULT_POLICIES)
    )
    detractor_call_back: timedelta = timedelta(days=1)
    dormant_after: timedelta = timedelta(days=180)
    anniversary_months: int = 11
    maintenance_lead: timedelta = timedelta(0)


DEFAULT_POLICY = ReminderPolicy()


class Reminder(msgspec.Struct, frozen=True, kw_only=True):
    key: str
    rule: Rule
    customer_id: UUID
    subject_id: UUID
    employee: str
    due_at: datetime
    reason: str


def reminder_key(rule: Rule, customer_id: UUID, subject_id: UUID, occurrence: str = "") -> str:
    base = f"{rule}:{customer_id}:{subject_id}"
    return f"{base}:{occurrence}" if occurrence else base


def parse_key(key: str) -> tuple[str, UUID, UUID]:
    """(rule, customer, subject) of a key the rules made, or InvalidReminderKey."""
    parts = key.split(":", 3)
    if len(parts) < 3 or parts[0] not in RULES:
        raise InvalidReminderKey(key)
    try:
        return parts[0], UUID(parts[1]), UUID(parts[2])
    except ValueError:
        raise InvalidReminderKey(key) from None


def reminder_id_of(key: str) -> UUID:
    """The stream of one reminder occurrence: the same key always names the same stream."""
    return uuid5(REMINDERS_NS, key)


def _reminder(
    rule: Rule,
    customer_id: UUID,
    subject_id: UUID,
    employee: str,
    *,
    due_at: datetime,
    reason: str,
    occurrence: str = "",
) -> Reminder:
    return Reminder(
        key=reminder_key(rule, customer_id, subject_id, occurrence),
        rule=rule,
        customer_id=customer_id,
        subject_id=subject_id,
        employee=employee,
        due_at=due_at,
        reason=reason,
    )


def account_owner(assigned: str | None, deals: Iterable[DealState]) -> str:
    if assigned is not None:
        return assigned
    owned = [d for d in deals if d.owner is not None and d.opened_at is not None]
    if not owned:
        return UNASSIGNED
    latest = max(owned, key=lambda d: (d.opened_at, str(d.deal_id)))
    assert latest.owner is not None
    return latest.owner


def maintenance_due(
    state: EquipmentState, *, technician: str | None, owner: str, policy: ReminderPolicy
) -> list[Reminder]:
    if state.customer_id is None:
        return []
    due = next_maintenance_due(state, observed_usage_rate(state))
    if due is None:
        return []
    return [
        _reminder(
            "maintenance_due",
            state.customer_id,
            state.equipment_id,
            technician or owner,
            due_at=due - policy.maintenance_lead,
            reason=f"maintenance of {state.model or 'equipment'} due {due.date().isoformat()}",
            occurrence=str(len(state.maintenances)),
        )
    ]


def sla_at_risk(state: TicketState, *, owner: str, policy: ReminderPolicy) -> list[Reminder]:
    if state.customer_id is None or state.opened_at is None:
        return []
    sla = policy_for(state, policy.sla_policies)
    employee = state.assignee or owner
    found = []
    if first_response_met_at(state) is None:
        found.append(
            _reminder(
                "sla_at_risk",
                state.customer_id,
                state.ticket_id,
                employee,
                due_at=state.opened_at + sla.first_response * policy.sla_at_risk_share,
                reason=f"first response to a {state.severity} ticket due "
                f"{(state.opened_at + sla.first_response).isoformat()}",
                occurrence="first_response",
            )
        )
    start = resolution_started_at(state)
    if state.resolved_at is None and start is not None:
        found.append(
            _reminder(
                "sla_at_risk",
                state.customer_id,
                state.ticket_id,
                employee,
                due_at=start + sla.resolution * policy.sla_at_risk_share,
                reason=f"resolution of a {state.severity} ticket due "
                f"{(start + sla.resolution).isoformat()}",
                occurrence=f"resolution-{state.reopens}",
            )
        )
    return found


def meeting_follow_up(
    meeting: sub.MeetingFacts, customer_id: UUID, *, owner: str, policy: ReminderPolicy
) -> list[Reminder]:
    return [
        _reminder(
            "meeting_follow_up",
            customer_id,
            meeting.interaction_id,
            meeting.held_by or owner,
            due_at=meeting.at + policy.meeting_follow_up,
            reason=f"follow up the meeting of {meeting.at.date().isoformat()}",
        )
    ]


def quote_follow_up(deal: sub.DealFacts, *, owner: str, policy: ReminderPolicy) -> list[Reminder]:
    state = deal.state
    if (
        deal.quote_sent_at is None
        or deal.quote_number is None
        or state.status != "open"
        or state.customer_id is None
    ):
        return []
    return [
        _reminder(
            "quote_follow_up",
            state.customer_id,
            state.deal_id,
            state.owner or owner,
            due_at=deal.quote_sent_at + policy.quote_follow_up,
            reason=f"follow up quote {deal.quote_number} sent {deal.quote_sent_at.date().isoformat()}",
            occurrence=deal.quote_number,
        )
    ]


def detractor_call_back(
    answer: sub.SurveyFacts, customer_id: UUID, *, owner: str, policy: ReminderPolicy
) -> list[Reminder]:
    if answer.category != "detractor":
        return []
    return [
        _reminder(
            "detractor_call_back",
            customer_id,
            answer.survey_id,
            owner,
            due_at=answer.answered_at + policy.detractor_call_back,
            reason=f"call back: NPS {answer.score} on {answer.answered_at.date().isoformat()}",
        )
    ]


def dormant_customer(
    customer_id: UUID, last_order_at: datetime | None, *, owner: str, policy: ReminderPolicy
) -> list[Reminder]:
    if last_order_at is None:
        return []
    return [
        _reminder(
            "dormant_customer",
            customer_id,
            customer_id,
            owner,
            due_at=last_order_at + policy.dormant_after,
            reason=f"no order since {last_order_at.date().isoformat()}: win back",
            occurrence=last_order_at.isoformat(),
        )
    ]


def overdue_invoice(state: OrderState, *, owner: str, policy: ReminderPolicy) -> list[Reminder]:
    since = overdue_from(state)
    if since is None or state.invoice is None or state.customer_id is None:
        return []
    return [
        _reminder(
            "overdue_invoice",
            state.customer_id,
            state.order_id,
            owner,
            due_at=since,
            reason=f"invoice {state.invoice.number} was due {state.invoice.due_date.isoformat()}",
            occurrence=state.invoice.number,
        )
    ]


def anniversary(state: OrderState, *, owner: str, policy: ReminderPolicy) -> list[Reminder]:
    occasion = state.occasion
    if (
        occasion is None
        or state.placed_at is None
        or state.customer_id is None
        or state.status == "cancelled"
    ):
        return []
    return [
        _reminder(
            "anniversary",
            state.customer_id,
            state.order_id,
            owner,
            due_at=state.placed_at + relativedelta(months=policy.anniversary_months),
            reason=f"{occasion.kind} gift ordered {state.placed_at.date().isoformat()}: "
            "the occasion comes round again",
        )
    ]


class Account(msgspec.Struct, frozen=True, kw_only=True):
    """What every reminder of one customer depends on: whom they go to, the last order,
    whether the customer was forgotten (then there are none) and whether it is merged into
    another (then it is no customer to win back)."""

    owner: str
    last_order_at: datetime | None
    forgotten: bool
    merged: bool = False


def account_of(subjects: Iterable[sub.Subject]) -> Account:
    assigned: str | None = None
    forgotten = merged = False
    deals: list[DealState] = []
    last_order: datetime | None = None
    for s in subjects:
        match s:
            case sub.CustomerFacts():
                assigned, forgotten = s.owner, s.forgotten
                merged = s.merged_into is not None
            case sub.DealFacts():
                deals.append(s.state)
            case sub.OrderFacts():
                placed = s.state.placed_at
                if placed is not None and (last_order is None or placed > last_order):
                    last_order = placed
    return Account(
        owner=account_owner(assigned, deals),
        last_order_at=last_order,
        forgotten=forgotten,
        merged=merged,
    )


def subject_reminders(
    s: sub.Subject, customer_id: UUID, owner: str, policy: ReminderPolicy = DEFAULT_POLICY
) -> list[Reminder]:
    """The reminders of one subject, given the account owner."""
    match s:
        case sub.EquipmentFacts():
            return maintenance_due(s.state, technician=s.technician, owner=owner, policy=policy)
        case sub.TicketFacts():
            return sla_at_risk(s.state, owner=owner, policy=policy)
        case sub.OrderFacts():
            return overdue_invoice(s.state, owner=owner, policy=policy) + anniversary(
                s.state, owner=owner, policy=policy
            )
        case sub.DealFacts():
            return quote_follow_up(s, owner=owner, policy=policy)
        case sub.SurveyFacts():
            return detractor_call_back(s, customer_id, owner=owner, policy=policy)
        case sub.MeetingFacts():
            return meeting_follow_up(s, customer_id, owner=owner, policy=policy)
    return []


def account_reminders(
    customer_id: UUID, account: Account, policy: ReminderPolicy = DEFAULT_POLICY
) -> list[Reminder]:
    """The reminders of the customer as a whole (dormancy); none once merged away."""
    if account.forgotten or account.merged:
        return []
    return dormant_customer(customer_id, account.last_order_at, owner=account.owner, policy=policy)


def customer_reminders(
    customer_id: UUID, subjects: Iterable[sub.Subject], policy: ReminderPolicy = DEFAULT_POLICY
) -> list[Reminder]:
    """Every reminder one customer's subjects imply, by key order. None once forgotten."""
    subjects = list(subjects)
    account = account_of(subjects)
    if account.forgotten:
        return []
    found = account_reminders(customer_id, account, policy)
    for s in subjects:
        found += subject_reminders(s, customer_id, account.owner, policy)
    return sorted(found, key=lambda r: r.key)
