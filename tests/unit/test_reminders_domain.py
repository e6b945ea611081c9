"""Reminder rules, routing, and the decisions on a reminder's stream: pure, no I/O."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from uuid import UUID, uuid4

import pytest
from msgspec.structs import replace

from domain.customers import commands as ccmd
from domain.customers import decide as cdecide
from domain.customers import errors as cerr
from domain.customers import events as cev
from domain.customers.state import CustomerState, evolve
from domain.equipment import events as eev
from domain.events import DomainEvent
from domain.interactions.events import MeetingLogged
from domain.money import Money
from domain.orders import events as oev
from domain.pipeline import events as pev
from domain.reminders import commands as cmd
from domain.reminders import decide
from domain.reminders import errors as err
from domain.reminders import events as ev
from domain.reminders.rules import (
    UNASSIGNED,
    ReminderPolicy,
    customer_reminders,
    parse_key,
    reminder_id_of,
)
from domain.reminders.state import ReminderState, fold
from domain.reminders.subjects import Subject, advance
from domain.surveys.events import SurveyAnswered
from domain.tickets import events as tev

T = datetime(2026, 3, 1, 9, tzinfo=UTC)


def eur(x: str) -> Money:
    return Money(amount=Decimal(x), currency="EUR")


class Subjects:
    """Folds events (stream, at, payload, actor) into subjects as the projection does."""

    def __init__(self) -> None:
        self.subjects: dict[UUID, Subject] = {}
        self.versions: dict[UUID, int] = {}

    def add(self, stream: UUID, at: datetime, payload: DomainEvent, actor: str = "x") -> None:
        version = self.versions.get(stream, 0) + 1
        self.versions[stream] = version
        s = advance(
            self.subjects.get(stream),
            stream_id=stream,
            version=version,
            at=at,
            actor=actor,
            payload=payload,
        )
        assert s is not None
        self.subjects[stream] = s

    def reminders(self, customer: UUID, policy: ReminderPolicy | None = None) -> list:
        return customer_reminders(customer, self.subjects.values(), policy or ReminderPolicy())


def by_rule(reminders: list) -> dict[str, list[tuple[datetime, str]]]:
    out: dict[str, list[tuple[datetime, str]]] = {}
    for r in reminders:
        out.setdefault(r.rule, []).append((r.due_at, r.employee))
    return {rule: sorted(found) for rule, found in out.items()}  # subjects' ids are random


class TestOwnerAssignment:
    def registered(self) -> CustomerState:
        s = CustomerState(customer_id=uuid4())
        return evolve(s, cev.CustomerRegistered(name="Ada"))

    def test_assigning_an_owner_is_an_event_once(self) -> None:
        s = self.registered()
        events = cdecide.assign_owner(s, ccmd.AssignOwner(customer_id=s.customer_id, owner="kim"))
        assert events == [cev.OwnerAssigned(owner="kim", previous=None)]
        s = evolve(s, events[0])
        assert s.owner == "kim"
        same = ccmd.AssignOwner(customer_id=s.customer_id, owner="kim")
        assert cdecide.assign_owner(s, same) == []
        other = ccmd.AssignOwner(customer_id=s.customer_id, owner="lee")
        assert cdecide.assign_owner(s, other) == [cev.OwnerAssigned(owner="lee", previous="kim")]

    def test_an_unknown_customer_gets_no_owner(self) -> None:
        s = CustomerState(customer_id=uuid4())
        with pytest.raises(cerr.CustomerNotFound):
            cdecide.assign_owner(s, ccmd.AssignOwner(customer_id=s.customer_id, owner="kim"))


class TestRules:
    def test_each_rule_at_its_time_routed_to_its_employee(self) -> None:
        c, machine, ticket, order, gift, deal, survey, meeting = (uuid4() for _ in range(8))
        s = Subjects()
        s.add(c, T, cev.OwnerAssigned(owner="owner"))
        s.add(
            machine,
            T,
            eev.EquipmentRegistered(customer_id=c, model="B2", serial="1", installed_at=T),
        )
        s.add(machine, T, eev.MaintenancePlanSet(every_days=90))
        s.add(machine, T + timedelta(days=10), eev.MaintenanceRecorded(kind="x"), actor="tech")
        s.add(
            ticket,
            T,
            tev.TicketOpened(
                customer_id=c, kind="complaint", category="x", severity="high", subject="s"
            ),
        )
        s.add(ticket, T, tev.TicketAssigned(agent="agent"))
        placed = oev.OrderPlaced(
            customer_id=c, items=[], total=eur("10.00"), payment_method="invoice"
        )
        s.add(order, T, placed)
        s.add(
            order,
            T,
            oev.InvoiceIssued(number="I-1", due_date=date(2026, 3, 15), amount=eur("10.00")),
        )
        s.add(
            gift,
            T + timedelta(days=5),
            replace(
                placed, occasion="birthday", occasion_for="Bob", occasion_date=date(2026, 3, 9)
            ),
        )
        s.add(
            deal,
            T,
            pev.DealOpened(
                pipeline="p",
                stage="a",
                customer_id=c,
                lead_source="web",
                channel="web",
                value=eur("5.00"),
                owner="dealer",
            ),
        )
        s.add(
            deal,
            T + timedelta(days=1),
            pev.QuoteSent(quote_number="Q-1", amount=eur("5.00"), valid_until=date(2026, 4, 1)),
        )
        s.add(
            survey,
            T + timedelta(days=2),
            SurveyAnswered(kind="nps", score=3, trigger="periodic", comment="bad"),
        )
        s.add(meeting, T + timedelta(days=3), MeetingLogged(duration_min=30))
        held = uuid4()
        s.add(held, T + timedelta(days=4), MeetingLogged(duration_min=30), actor="employee:kai")
        got = by_rule(s.reminders(c))
        assert got == {
            "maintenance_due": [(T + timedelta(days=100), "tech")],
            "sla_at_risk": [(T + timedelta(hours=3), "agent"), (T + timedelta(hours=18), "agent")],
            "overdue_invoice": [(datetime(2026, 3, 16, tzinfo=UTC), "owner")],
            "anniversary": [(datetime(2027, 2, 6, 9, tzinfo=UTC), "owner")],
            "quote_follow_up": [(T + timedelta(days=4), "dealer")],  # the deal's owner
            "detractor_call_back": [(T + timedelta(days=3), "owner")],
            "meeting_follow_up": [  # the employee who held it, else the account owner
                (T + timedelta(days=5), "owner"),
                (T + timedelta(days=6), "employee:kai"),
            ],
            "dormant_customer": [(T + timedelta(days=185), "owner")],
        }
        stored = [r for r in s.subjects.values() if hasattr(r, "state")]
        assert "Bob" not in repr(stored) and "'s'" not in repr(stored)  # no personal data kept

    def test_met_paid_won_and_promoters_leave_nothing(self) -> None:
        c, ticket, order, deal, survey = (uuid4() for _ in range(5))
        s = Subjects()
        s.add(
            ticket,
            T,
            tev.TicketOpened(
                customer_id=c, kind="request", category="x", severity="low", subject="s"
            ),
        )
        s.add(ticket, T + timedelta(hours=1), tev.TicketResolved(resolution="done"))
        s.add(
            order,
            T,
            oev.OrderPlaced(customer_id=c, items=[], total=eur("1.00"), payment_method="invoice"),
        )
        s.add(order, T, oev.InvoiceIssued(number="I", due_date=date(2026, 3, 2), amount=eur("1")))
        s.add(order, T, oev.OrderPaid(amount=eur("1.00")))
        s.add(
            deal,
            T,
            pev.DealOpened(
                pipeline="p",
                stage="a",
                customer_id=c,
                lead_source="web",
                channel="web",
                value=eur("5.00"),
            ),
        )
        s.add(deal, T, pev.QuoteSent(quote_number="Q", amount=eur("5"), valid_until=T.date()))
        s.add(deal, T, pev.DealLost(reason="price"))
        s.add(survey, T, SurveyAnswered(kind="nps", score=9, trigger="periodic"))
        assert [r.rule for r in s.reminders(c)] == ["dormant_customer"]
        assert s.reminders(c)[0].employee == UNASSIGNED

    def test_the_account_owner_falls_back_to_the_latest_deal_owner(self) -> None:
        c, d1, d2, survey = (uuid4() for _ in range(4))
        s = Subjects()
        for deal, at, owner in ((d1, T, "old"), (d2, T + timedelta(days=1), "new")):
            s.add(
                deal,
                at,
                pev.DealOpened(
                    pipeline="p",
                    stage="a",
                    customer_id=c,
                    lead_source="web",
                    channel="web",
                    value=eur("5.00"),
                    owner=owner,
                ),
            )
        s.add(survey, T, SurveyAnswered(kind="nps", score=0, trigger="periodic"))
        assert [r.employee for r in s.reminders(c)] == ["new"]
        s.add(c, T, cev.OwnerAssigned(owner="boss"))
        assert [r.employee for r in s.reminders(c)] == ["boss"]
        s.add(c, T, cev.CustomerForgotten())
        assert s.reminders(c) == []

    def test_a_new_order_moves_the_dormant_reminder_and_policy_is_configurable(self) -> None:
        c, o1, o2 = uuid4(), uuid4(), uuid4()
        s = Subjects()
        for order, at in ((o1, T), (o2, T + timedelta(days=30))):
            s.add(
                order,
                at,
                oev.OrderPlaced(customer_id=c, items=[], total=eur("1"), payment_method="card"),
            )
        (r,) = s.reminders(c, ReminderPolicy(dormant_after=timedelta(days=10)))
        assert (r.rule, r.due_at) == ("dormant_customer", T + timedelta(days=40))

    def test_sla_resolution_restarts_on_reopening_as_a_new_occurrence(self) -> None:
        c, ticket = uuid4(), uuid4()
        s = Subjects()
        s.add(
            ticket,
            T,
            tev.TicketOpened(
                customer_id=c, kind="incident", category="x", severity="critical", subject="s"
            ),
        )
        s.add(ticket, T, tev.TicketResponded(agent="a", message="m"))
        s.add(ticket, T + timedelta(hours=2), tev.TicketResolved(resolution="r"))
        s.add(ticket, T + timedelta(hours=5), tev.TicketReopened(reason="again"))
        (r,) = s.reminders(c)
        assert r.due_at == T + timedelta(hours=5 + 6) and r.key.endswith(":resolution-1")
        assert r.employee == UNASSIGNED


class TestDecide:
    def test_complete_and_snooze(self) -> None:
        c, subject = uuid4(), uuid4()
        key = f"meeting_follow_up:{c}:{subject}"
        rid = reminder_id_of(key)
        assert parse_key(key) == ("meeting_follow_up", c, subject)
        assert decide.stream_of(cmd.CompleteReminder(key=key)) == (rid, c)
        state = ReminderState(reminder_id=rid)
        until = T + timedelta(days=1)
        snoozed = decide.snooze(state, cmd.SnoozeReminder(key=key, until=until), at=T)
        assert snoozed == [ev.ReminderSnoozed(key=key, until=until)]
        with pytest.raises(err.SnoozeInThePast):
            decide.snooze(state, cmd.SnoozeReminder(key=key, until=T), at=T)
        done = decide.complete(state, cmd.CompleteReminder(key=key, reminder_id=rid), at=T)
        state = fold(rid, [(1, T, snoozed[0]), (2, T, done[0])])
        assert state.completed and state.snoozed_until == until
        with pytest.raises(err.ReminderAlreadyCompleted):
            decide.complete(state, cmd.CompleteReminder(key=key), at=T)
        with pytest.raises(err.ReminderAlreadyCompleted):
            decide.snooze(state, cmd.SnoozeReminder(key=key, until=until), at=T)

    @pytest.mark.parametrize(
        "key",
        [
            "nonsense",
            "meeting_follow_up:x:y",
            f"unknown_rule:{uuid4()}:{uuid4()}",
            "meeting_follow_up",
        ],
    )
    def test_bad_keys_are_refused(self, key: str) -> None:
        with pytest.raises(err.InvalidReminderKey):
            decide.stream_of(cmd.CompleteReminder(key=key))

    def test_an_id_that_is_not_the_keys_is_refused(self) -> None:
        key = f"anniversary:{uuid4()}:{uuid4()}"
        with pytest.raises(err.ReminderIdMismatch):
            decide.stream_of(cmd.CompleteReminder(key=key, reminder_id=uuid4()))
