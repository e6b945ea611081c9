"""decide/evolve of tickets and their SLAs: due times, breaches and the next deadline (pure)."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from uuid import uuid4

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from domain.events import EVENTS, DomainEvent
from domain.tickets import commands as cmd
from domain.tickets import decide
from domain.tickets import errors as err
from domain.tickets import events as ev
from domain.tickets.sla import (
    DEFAULT_POLICIES,
    Breach,
    SlaPolicy,
    breaches,
    first_response_due,
    next_deadline,
    policy_for,
    resolution_due,
)
from domain.tickets.state import TicketState, evolve, fold

T0 = datetime(2026, 5, 1, 9, tzinfo=UTC)
H = timedelta(hours=1)
HIGH = DEFAULT_POLICIES["high"]  # 4h to respond, 24h to resolve


def apply(state: TicketState, events: list[DomainEvent], at: datetime) -> TicketState:
    return fold(
        state.ticket_id, [(state.version + i, at, e) for i, e in enumerate(events, 1)], state
    )


def an_open(**kw: object) -> cmd.OpenTicket:
    fields: dict[str, object] = {
        "customer_id": uuid4(),
        "kind": "complaint",
        "category": "delivery",
        "severity": "high",
        "subject": "My kettle arrived broken",
    }
    fields.update(kw)
    return cmd.OpenTicket(**fields)  # type: ignore[arg-type]


def opened(**kw: object) -> TicketState:
    state = TicketState(ticket_id=uuid4())
    return apply(state, decide.open_ticket(state, an_open(**kw), customer_live=True, at=T0), T0)


def step(
    state: TicketState,
    fn: Callable[..., list[DomainEvent]],
    command: cmd.TicketCommand,
    hours: float = 1,
) -> TicketState:
    at = (state.last_occurred_at or T0) + timedelta(hours=hours)
    return apply(state, fn(state, command, at=at), at)


def responded(state: TicketState, hours: float = 1, agent: str = "ada") -> TicketState:
    c = cmd.RespondToTicket(ticket_id=state.ticket_id, agent=agent, message="We are on it")
    return step(state, decide.respond, c, hours)


def resolved(state: TicketState, hours: float = 1) -> TicketState:
    c = cmd.ResolveTicket(ticket_id=state.ticket_id, resolution="Sent a new kettle")
    return step(state, decide.resolve, c, hours)


def reopened(state: TicketState, hours: float = 1) -> TicketState:
    c = cmd.ReopenTicket(ticket_id=state.ticket_id, reason="The new one leaks")
    return step(state, decide.reopen, c, hours)


def closed(state: TicketState, hours: float = 1) -> TicketState:
    return step(state, decide.close, cmd.CloseTicket(ticket_id=state.ticket_id), hours)


def escalated(state: TicketState, hours: float = 1, **kw: object) -> TicketState:
    c = cmd.EscalateTicket(ticket_id=state.ticket_id, reason="Customer is upset", **kw)  # type: ignore[arg-type]
    return step(state, decide.escalate, c, hours)


def assigned(state: TicketState, agent: str = "ada") -> TicketState:
    return step(state, decide.assign, cmd.AssignTicket(ticket_id=state.ticket_id, agent=agent))


class TestOpen:
    def test_opening_keeps_everything_the_command_says(self) -> None:
        state = TicketState(ticket_id=uuid4())
        order = uuid4()
        c = an_open(order_id=order, channel="email")
        events = decide.open_ticket(state, c, customer_live=True, at=T0)
        assert events == [
            ev.TicketOpened(
                customer_id=c.customer_id,
                kind="complaint",
                category="delivery",
                severity="high",
                subject="My kettle arrived broken",
                order_id=order,
                channel="email",
            )
        ]
        s = apply(state, events, T0)
        assert (s.status, s.customer_id, s.kind, s.category, s.severity) == (
            "open",
            c.customer_id,
            "complaint",
            "delivery",
            "high",
        )
        assert (s.order_id, s.equipment_id, s.channel, s.subject) == (
            order,
            None,
            "email",
            "My kettle arrived broken",
        )
        assert (s.opened_at, s.last_occurred_at, s.version, s.level) == (T0, T0, 1, 0)
        assert s.opened and not s.resolved

    def test_about_equipment_with_the_default_severity(self) -> None:
        equipment = uuid4()
        s = opened(equipment_id=equipment, kind="incident", severity="normal")
        assert (s.equipment_id, s.kind, s.severity) == (equipment, "incident", "normal")
        c = cmd.OpenTicket(customer_id=uuid4(), kind="request", category="c", subject="s")
        assert c.severity == "normal" and c.command_name() == "ticket.open"

    def test_the_wire_form_decodes_and_checks_its_literals(self) -> None:
        raw = (
            b'{"customer_id": "6f1c2e8a-0b8e-4c1e-9a51-3f2b8c7d6e5f", "kind": "request",'
            b' "category": "billing", "severity": "critical", "subject": "Charged twice"}'
        )
        c = msgspec.json.decode(raw, type=cmd.OpenTicket)
        assert (c.kind, c.severity, c.ticket_id, c.occurred_at) == (
            "request",
            "critical",
            None,
            None,
        )
        with pytest.raises(msgspec.ValidationError):
            msgspec.json.decode(raw.replace(b"critical", b"urgent"), type=cmd.OpenTicket)
        with pytest.raises(msgspec.ValidationError):
            msgspec.json.decode(raw.replace(b"Charged twice", b""), type=cmd.OpenTicket)

    def test_twice_is_an_error(self) -> None:
        s = opened()
        with pytest.raises(err.TicketAlreadyOpen) as info:
            decide.open_ticket(s, an_open(), customer_live=True, at=T0 + H)
        assert info.value.ticket_id == s.ticket_id and info.value.code == "ticket_already_open"

    def test_the_customer_must_be_live(self) -> None:
        c = an_open()
        with pytest.raises(err.CustomerNotLive) as info:
            decide.open_ticket(TicketState(ticket_id=uuid4()), c, customer_live=False, at=T0)
        assert info.value.customer_id == c.customer_id and info.value.code == "customer_not_live"


class TestPersonalData:
    @pytest.mark.parametrize(
        ("tag", "fields"),
        [
            ("ticket.opened", {"subject"}),
            ("ticket.responded", {"message"}),
            ("ticket.escalated", {"reason"}),
            ("ticket.resolved", {"resolution"}),
            ("ticket.reopened", {"reason"}),
            ("ticket.assigned", set()),
            ("ticket.closed", set()),
        ],
    )
    def test_free_text_about_the_problem_is_personal(self, tag: str, fields: set[str]) -> None:
        spec = EVENTS.get(tag)
        assert spec is not None and set(spec.personal) == fields


class TestSteps:
    def test_assign_and_reassign_but_the_same_agent_twice_is_nothing(self) -> None:
        s = assigned(opened(), "ada")
        assert s.assignee == "ada" and s.version == 2
        c = cmd.AssignTicket(ticket_id=s.ticket_id, agent="ada")
        assert decide.assign(s, c, at=T0 + 5 * H) == []
        assert assigned(s, "bob").assignee == "bob"

    def test_responses_count_and_the_first_is_kept(self) -> None:
        s = responded(opened(), 2)
        assert (s.responses, s.first_response_at) == (1, T0 + 2 * H)
        s = responded(s, 3, agent="bob")
        assert (s.responses, s.first_response_at) == (2, T0 + 2 * H)

    def test_a_resolved_ticket_still_takes_a_response_and_an_assignment(self) -> None:
        s = assigned(responded(resolved(opened())), "bob")
        assert (s.status, s.responses, s.assignee) == ("resolved", 1, "bob")

    def test_escalation_goes_one_level_up_by_default_and_an_agent_takes_over(self) -> None:
        s = escalated(assigned(opened(), "ada"))
        assert (s.level, s.assignee) == (1, "ada")
        s = escalated(s, agent="lead")
        assert (s.level, s.assignee) == (2, "lead")
        s = escalated(s, level=4)
        assert (s.level, s.assignee) == (4, "lead")

    @pytest.mark.parametrize("level", [1, 2])
    def test_escalation_never_goes_down_nor_stays(self, level: int) -> None:
        s = escalated(opened(), level=2)
        with pytest.raises(err.InvalidEscalation) as info:
            escalated(s, level=level)
        assert (info.value.current, info.value.asked, info.value.code) == (
            2,
            level,
            "invalid_escalation",
        )

    def test_escalation_level_is_at_least_one_on_the_wire(self) -> None:
        with pytest.raises(msgspec.ValidationError):
            msgspec.json.decode(
                b'{"ticket_id": "6f1c2e8a-0b8e-4c1e-9a51-3f2b8c7d6e5f", "reason": "r", "level": 0}',
                type=cmd.EscalateTicket,
            )

    def test_resolve_then_close(self) -> None:
        s = resolved(opened(), 5)
        assert (s.status, s.resolution, s.resolved_at, s.first_resolved_at) == (
            "resolved",
            "Sent a new kettle",
            T0 + 5 * H,
            T0 + 5 * H,
        )
        s = closed(s, 2)
        assert (s.status, s.closed_at, s.resolved, s.version) == ("closed", T0 + 7 * H, True, 3)

    def test_reopen_clears_the_resolution_and_counts(self) -> None:
        s = reopened(resolved(opened(), 5), 2)
        assert (s.status, s.resolution, s.resolved_at, s.reopened_at, s.reopens) == (
            "open",
            None,
            None,
            T0 + 7 * H,
            1,
        )
        assert s.first_resolved_at == T0 + 5 * H
        s = resolved(s)
        assert (s.status, s.resolved_at, s.first_resolved_at) == (
            "resolved",
            T0 + 8 * H,
            T0 + 5 * H,
        )

    def test_evolve_ignores_events_of_other_streams(self) -> None:
        from domain.customers.events import StageChanged

        s = opened()
        assert evolve(s, StageChanged(stage="customer", previous="lead"), T0) is s


ACTIONS: dict[str, Callable[[TicketState], TicketState]] = {
    "assign": lambda s: assigned(s, "zed"),
    "respond": responded,
    "escalate": escalated,
    "resolve": resolved,
    "reopen": reopened,
    "close": closed,
}


DECISIONS: dict[str, tuple[Callable[..., list[DomainEvent]], Callable[[TicketState], object]]] = {
    "assign": (decide.assign, lambda s: cmd.AssignTicket(ticket_id=s.ticket_id, agent="zed")),
    "respond": (
        decide.respond,
        lambda s: cmd.RespondToTicket(ticket_id=s.ticket_id, agent="ada", message="m"),
    ),
    "escalate": (decide.escalate, lambda s: cmd.EscalateTicket(ticket_id=s.ticket_id, reason="r")),
    "resolve": (
        decide.resolve,
        lambda s: cmd.ResolveTicket(ticket_id=s.ticket_id, resolution="r"),
    ),
    "reopen": (decide.reopen, lambda s: cmd.ReopenTicket(ticket_id=s.ticket_id, reason="r")),
    "close": (decide.close, lambda s: cmd.CloseTicket(ticket_id=s.ticket_id)),
}


class TestInvariants:
    @pytest.mark.parametrize("action", sorted(ACTIONS))
    def test_nothing_happens_to_a_ticket_never_opened(self, action: str) -> None:
        with pytest.raises(err.TicketNotFound) as info:
            ACTIONS[action](TicketState(ticket_id=uuid4()))
        assert info.value.code == "ticket_not_found"

    @pytest.mark.parametrize("action", sorted(ACTIONS))
    def test_a_closed_ticket_takes_no_command_closing_included(self, action: str) -> None:
        s = closed(resolved(opened()))
        with pytest.raises(err.TicketClosed) as info:
            ACTIONS[action](s)
        assert info.value.ticket_id == s.ticket_id and info.value.code == "ticket_closed"

    @pytest.mark.parametrize("action", ["close", "reopen"])
    def test_closing_or_reopening_needs_a_resolution(self, action: str) -> None:
        for s in (opened(), reopened(resolved(opened()))):
            with pytest.raises(err.NotResolved) as info:
                ACTIONS[action](s)
            assert info.value.code == "not_resolved"

    @pytest.mark.parametrize("action", ["resolve", "escalate"])
    def test_resolving_or_escalating_a_resolved_ticket_needs_a_reopening(self, action: str) -> None:
        with pytest.raises(err.AlreadyResolved) as info:
            ACTIONS[action](resolved(opened()))
        assert info.value.code == "already_resolved"

    @pytest.mark.parametrize("action", sorted(DECISIONS))
    def test_no_event_before_the_last_one(self, action: str) -> None:
        s = responded(resolved(opened()) if action in {"reopen", "close"} else opened(), 3)
        fn, make = DECISIONS[action]
        last = s.last_occurred_at
        assert last is not None
        with pytest.raises(err.EventBeforeLast) as info:
            fn(s, make(s), at=last - timedelta(seconds=1))
        assert (info.value.stream_id, info.value.last, info.value.code) == (
            s.ticket_id,
            last,
            "event_before_last",
        )

    def test_an_event_at_the_same_time_as_the_last_is_fine(self) -> None:
        s = opened()
        c = cmd.AssignTicket(ticket_id=s.ticket_id, agent="ada")
        assert decide.assign(s, c, at=T0) == [ev.TicketAssigned(agent="ada")]

    def test_every_error_is_a_ticket_error_with_its_own_code(self) -> None:
        kinds = [
            err.TicketNotFound,
            err.TicketAlreadyOpen,
            err.CustomerNotLive,
            err.TicketClosed,
            err.NotResolved,
            err.AlreadyResolved,
            err.InvalidEscalation,
            err.EventBeforeLast,
        ]
        assert all(issubclass(k, err.TicketError) for k in kinds)
        assert len({k.code for k in kinds} | {err.TicketError.code}) == len(kinds) + 1


def at(hours: float) -> datetime:
    return T0 + timedelta(hours=hours)


def running(state: TicketState, now: datetime) -> list[Breach]:
    return [b for b in breaches(state, DEFAULT_POLICIES, now) if b.until is None]


class TestPolicies:
    def test_the_default_table(self) -> None:
        table = {
            severity: (p.first_response / H, p.resolution / H)
            for severity, p in DEFAULT_POLICIES.items()
        }
        assert table == {
            "critical": (1, 8),
            "high": (4, 24),
            "normal": (8, 72),
            "low": (24, 168),
        }

    def test_the_policy_follows_the_severity_and_a_table_can_be_given(self) -> None:
        s = opened(severity="low")
        assert policy_for(s) == DEFAULT_POLICIES["low"]
        mine = {"low": SlaPolicy(first_response=H, resolution=2 * H)}
        assert policy_for(s, mine) == mine["low"]  # type: ignore[arg-type]
        assert breaches(s, mine, at(1)) == [Breach(sla="first_response", since=at(1))]  # type: ignore[arg-type]

    def test_due_times_from_the_opening(self) -> None:
        s = opened()
        assert (first_response_due(s, HIGH), resolution_due(s, HIGH)) == (at(4), at(24))
        critical = DEFAULT_POLICIES["critical"]
        assert (first_response_due(s, critical), resolution_due(s, critical)) == (at(1), at(8))

    def test_a_ticket_not_opened_has_no_sla(self) -> None:
        s = TicketState(ticket_id=uuid4())
        assert first_response_due(s, HIGH) is None and resolution_due(s, HIGH) is None
        assert breaches(s, DEFAULT_POLICIES, at(1000)) == []
        assert next_deadline(s, DEFAULT_POLICIES) is None


class TestFirstResponse:
    def test_breached_from_its_due_time_on(self) -> None:
        s = opened()
        second = timedelta(seconds=1)
        assert breaches(s, DEFAULT_POLICIES, at(4) - second) == []
        assert breaches(s, DEFAULT_POLICIES, at(4)) == [Breach(sla="first_response", since=at(4))]
        assert breaches(s, DEFAULT_POLICIES, at(10)) == [Breach(sla="first_response", since=at(4))]
        assert next_deadline(s, DEFAULT_POLICIES) == at(4)

    def test_a_naive_now_is_utc(self) -> None:
        assert breaches(opened(), DEFAULT_POLICIES, datetime(2026, 5, 1, 13, 0)) == [
            Breach(sla="first_response", since=at(4))
        ]

    def test_a_response_in_time_stops_the_clock(self) -> None:
        s = responded(opened(), 3)
        assert breaches(s, DEFAULT_POLICIES, at(10)) == []
        assert next_deadline(s, DEFAULT_POLICIES) == at(24)

    def test_a_response_at_the_due_time_is_late(self) -> None:
        s = responded(opened(), 4)
        assert breaches(s, DEFAULT_POLICIES, at(4)) == [
            Breach(sla="first_response", since=at(4), until=at(4))
        ]

    def test_a_late_response_ends_the_breach_but_it_stays_on_record(self) -> None:
        s = responded(opened(), 6)
        assert breaches(s, DEFAULT_POLICIES, at(5)) == [Breach(sla="first_response", since=at(4))]
        assert breaches(s, DEFAULT_POLICIES, at(7)) == [
            Breach(sla="first_response", since=at(4), until=at(6))
        ]
        assert running(s, at(7)) == []

    def test_a_resolution_without_a_response_meets_it_too(self) -> None:
        s = resolved(opened(), 2)
        assert breaches(s, DEFAULT_POLICIES, at(100)) == []
        assert next_deadline(s, DEFAULT_POLICIES) is None

    def test_reopening_does_not_restart_it(self) -> None:
        s = reopened(resolved(responded(opened(), 1), 1), 10)
        assert first_response_due(s, HIGH) == at(4)
        assert [b.sla for b in breaches(s, DEFAULT_POLICIES, at(100))] == ["resolution"]


class TestResolution:
    def test_breached_from_its_due_time_on_with_the_first_response(self) -> None:
        s = opened()
        assert breaches(s, DEFAULT_POLICIES, at(24)) == [
            Breach(sla="first_response", since=at(4)),
            Breach(sla="resolution", since=at(24)),
        ]
        assert [b.sla for b in breaches(s, DEFAULT_POLICIES, at(23.5))] == ["first_response"]

    def test_a_resolution_in_time_leaves_nothing_to_breach(self) -> None:
        s = resolved(responded(opened(), 1), 20)
        assert breaches(s, DEFAULT_POLICIES, at(1000)) == []
        assert next_deadline(s, DEFAULT_POLICIES) is None
        assert next_deadline(closed(s), DEFAULT_POLICIES) is None

    def test_a_late_resolution_stays_on_record(self) -> None:
        s = resolved(responded(opened(), 1), 29)
        assert breaches(s, DEFAULT_POLICIES, at(40)) == [
            Breach(sla="resolution", since=at(24), until=at(30))
        ]
        assert breaches(closed(s), DEFAULT_POLICIES, at(40)) == [
            Breach(sla="resolution", since=at(24), until=at(30))
        ]

    def test_reopening_restarts_the_clock_with_the_full_budget(self) -> None:
        s = reopened(resolved(responded(opened(), 1), 9), 10)  # resolved at 10h, reopened at 20h
        assert resolution_due(s, HIGH) == at(44)
        assert next_deadline(s, DEFAULT_POLICIES) == at(44)
        assert breaches(s, DEFAULT_POLICIES, at(43)) == []
        assert breaches(s, DEFAULT_POLICIES, at(44)) == [Breach(sla="resolution", since=at(44))]
        again = resolved(s, 30)  # 50h: late this time
        assert breaches(again, DEFAULT_POLICIES, at(60)) == [
            Breach(sla="resolution", since=at(44), until=at(50))
        ]

    def test_escalation_and_assignment_change_no_clock(self) -> None:
        s = escalated(assigned(opened()), 1)
        assert next_deadline(s, DEFAULT_POLICIES) == at(4)


TIMED: dict[str, Callable[[TicketState, float], TicketState]] = {
    "respond": responded,
    "resolve": resolved,
    "reopen": reopened,
}


class TestNextDeadline:
    def test_after_gives_the_following_deadline_once_one_has_fired(self) -> None:
        s = opened()
        assert next_deadline(s, DEFAULT_POLICIES, after=at(4)) == at(24)
        assert next_deadline(s, DEFAULT_POLICIES, after=at(3)) == at(4)
        assert next_deadline(s, DEFAULT_POLICIES, after=at(24)) is None
        assert next_deadline(s, DEFAULT_POLICIES, after=datetime(2026, 5, 1, 12)) == at(4)

    @settings(max_examples=80, deadline=None)
    @given(
        severity=st.sampled_from(["low", "normal", "high", "critical"]),
        steps=st.lists(
            st.tuples(st.sampled_from(["respond", "resolve", "reopen"]), st.integers(0, 200)),
            max_size=6,
        ),
        now_h=st.integers(0, 600),
    )
    def test_when_only_time_passes_the_next_breach_begins_at_the_next_deadline(
        self, severity: str, steps: list[tuple[str, int]], now_h: int
    ) -> None:
        s = opened(severity=severity)
        for action, hours in steps:
            with contextlib.suppress(err.TicketError):
                s = TIMED[action](s, hours)
        now = max(at(now_h), s.last_occurred_at or T0)
        before = running(s, now)
        due = next_deadline(s, DEFAULT_POLICIES, after=now)
        if due is None:
            assert running(s, now + timedelta(days=365)) == before
        else:
            assert due > now
            assert running(s, due - timedelta(microseconds=1)) == before
            new = [b for b in running(s, due) if b not in before]
            assert new and all(b.since == due for b in new)
