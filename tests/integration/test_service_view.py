"""The `service` report and the live SLA breaches against recomputations written here (oracle
tests), breaches that appear when only the clock moves, and as-of reports against a store fed
only the commands up to then. (Closing a closed ticket is refused in test_service.py.)"""

from __future__ import annotations

import random
import statistics
from collections import Counter, defaultdict
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import UUID

import msgspec
import pytest

from handlers.decision import CommandContext
from infra.clock import FixedClock
from infra.engine import Engine, open_engine
from infra.projector import open_runner
from projections.service_view import breaches_now, service_report

NOW = datetime(2026, 6, 1, tzinfo=UTC)
START = NOW - timedelta(days=150)
HOURS = {"critical": (1, 8), "high": (4, 24), "normal": (8, 72), "low": (24, 168)}
AGENTS = ["employee:kim", "employee:lou", "employee:max"]
CATEGORIES = ["delivery", "billing", "machine"]
CTX = CommandContext(actor="test", channel="test")


def uid(rng: random.Random) -> UUID:
    return UUID(int=rng.getrandbits(128), version=4)


def hours(rng: random.Random, low: float, high: float) -> timedelta:
    return timedelta(minutes=rng.randrange(int(low * 60), int(high * 60)) + 1)


class Ticket(msgspec.Struct):
    severity: str
    category: str
    kind: str
    events: list[tuple[datetime, str, str | None]]  # (at, what, agent)


class Model(msgspec.Struct, kw_only=True):
    """A ticket at a time, as this test folds it."""

    opened: datetime
    agent: str | None = None
    first_response: datetime | None = None
    first_resolved: datetime | None = None
    resolved: datetime | None = None
    reopened: datetime | None = None
    status: str = "open"
    ended_attempts: list[tuple[datetime, datetime]] = []  # (due, resolved) of reopened ones


class History:
    def __init__(self, seed: int) -> None:
        rng = random.Random(seed)
        self.commands: list[tuple[datetime, str, dict[str, Any]]] = []
        self.customers = [uid(rng) for _ in range(25)]
        for c in self.customers:
            self.add(START, "customer.register", customer_id=c, name="C")
        self.tickets: dict[UUID, Ticket] = {}
        for _ in range(70):
            self._ticket(rng, START + hours(rng, 24, 3000), full=True)
        for _ in range(10):  # recent and untouched: their deadlines lie ahead of the clock
            self._ticket(rng, NOW - hours(rng, 0, 30), full=False)

    def add(self, at: datetime, command: str, /, **data: Any) -> None:
        data["occurred_at"] = at.isoformat()
        self.commands.append((at, command, data))

    def _ticket(self, rng: random.Random, t: datetime, *, full: bool) -> None:
        ticket = uid(rng)
        x = Ticket(
            severity=rng.choice(sorted(HOURS)),
            category=rng.choice(CATEGORIES),
            kind=rng.choice(("complaint", "request", "incident")),
            events=[(t, "open", None)],
        )
        self.tickets[ticket] = x
        self.add(
            t,
            "ticket.open",
            ticket_id=ticket,
            customer_id=rng.choice(self.customers),
            kind=x.kind,
            category=x.category,
            severity=x.severity,
            subject="It broke",
        )

        def step(what: str, after: timedelta, holder: str | None = None, /, **data: Any) -> None:
            nonlocal t
            t += after
            x.events.append((t, what, holder))
            self.add(t, f"ticket.{what}", ticket_id=ticket, **data)

        if rng.random() < 0.8:
            agent = rng.choice(AGENTS)
            step("assign", hours(rng, 0, 3), agent, agent=agent)
        if not full:
            return
        if rng.random() < 0.75:
            agent = rng.choice(AGENTS)
            step("respond", hours(rng, 0.2, 30), None, agent=agent, message="On it")
        if rng.random() < 0.15:
            agent = rng.choice(AGENTS)
            step("escalate", hours(rng, 0, 10), agent, agent=agent, reason="hard")
        if rng.random() < 0.75:
            step("resolve", hours(rng, 0.5, 150), resolution="fixed")
            if rng.random() < 0.3:
                step("reopen", hours(rng, 1, 48), reason="again")
                if rng.random() < 0.6:
                    step("resolve", hours(rng, 0.5, 100), resolution="fixed")
            if x.events[-1][1] == "resolve" and rng.random() < 0.4:
                step("close", hours(rng, 1, 48))

    def feed(self, engine: Engine, until: datetime | None = None) -> None:
        for at, name, data in sorted(self.commands, key=lambda c: c[0]):
            if until is None or at <= until:
                engine.bus.execute_json(
                    name, {k: str(v) if isinstance(v, UUID) else v for k, v in data.items()}, CTX
                )

    def model(self, ticket: Ticket, at: datetime) -> Model | None:
        """The ticket folded by this test from its events at or before `at`."""
        m: Model | None = None
        for when, what, agent in ticket.events:
            if when > at:
                break
            if what == "open":
                m = Model(opened=when)
                continue
            assert m is not None
            if what in ("assign", "escalate"):
                m.agent = agent
            elif what == "respond":
                m.first_response = m.first_response or when
            elif what == "resolve":
                m.first_resolved = m.first_resolved or when
                m.resolved, m.status = when, "resolved"
            elif what == "reopen":
                assert m.resolved is not None
                due = (m.reopened or m.opened) + timedelta(hours=HOURS[ticket.severity][1])
                m.ended_attempts.append((due, m.resolved))
                m.resolved, m.reopened, m.status = None, when, "open"
            elif what == "close":
                m.status = "closed"
        return m

    def clocks(self, ticket: Ticket, m: Model) -> list[tuple[str, datetime, datetime | None]]:
        """(sla, due, met at) for first response and the current resolution attempt."""
        fr, res = HOURS[ticket.severity]
        answered = [x for x in (m.first_response, m.first_resolved) if x is not None]
        return [
            ("first_response", m.opened + timedelta(hours=fr), min(answered, default=None)),
            ("resolution", (m.reopened or m.opened) + timedelta(hours=res), m.resolved),
        ]

    def breaches(self, at: datetime) -> set[tuple[UUID, str, datetime, datetime | None]]:
        found = set()
        for key, ticket in self.tickets.items():
            m = self.model(ticket, at)
            if m is None:
                continue
            for sla, due, met in self.clocks(ticket, m):
                if at >= due and (met is None or met >= due):
                    found.add((key, sla, due, met))
        return found

    def breaches_ever(self, at: datetime) -> set[tuple[UUID, str, datetime]]:
        """Breaches at `at` and those of resolution attempts a reopening ended."""
        found = {(k, sla, due) for k, sla, due, _ in self.breaches(at)}
        for key, ticket in self.tickets.items():
            m = self.model(ticket, at)
            for due, resolved in m.ended_attempts if m else []:
                if resolved >= due:
                    found.add((key, "resolution", due))
        return found


@pytest.fixture
def history() -> History:
    return History(seed=7)


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock(NOW)


@pytest.fixture
def engine(store_url: str, history: History, clock: FixedClock) -> Iterator[Engine]:
    with open_engine(store_url, env={}, clock=clock) as e:
        history.feed(e)
        with open_runner(e, page=60) as runner:
            runner.catch_up()
            runner.fire_timers()
        yield e


@pytest.mark.parametrize("days_before_now", [0, 60])
def test_report_equals_a_recomputation(
    engine: Engine, history: History, days_before_now: int
) -> None:
    at = NOW - timedelta(days=days_before_now)
    with open_runner(engine) as runner:
        report = service_report(runner.db, now=NOW, as_of=at)
    models = {k: (t, history.model(t, at)) for k, t in history.tickets.items()}
    live = {k: (t, m) for k, (t, m) in models.items() if m is not None}
    backlog: dict[str, Counter[str]] = defaultdict(Counter)
    outcomes: dict[tuple[str, str], Counter[str]] = defaultdict(Counter)
    first: dict[str, list[float]] = defaultdict(list)
    resolved: dict[str, list[float]] = defaultdict(list)
    for t, m in live.values():
        if m.status == "open":
            backlog[m.agent or "unassigned"][t.severity] += 1
        for sla, due, met in history.clocks(t, m):
            outcome = (
                "met" if met is not None and met < due else "breached" if at >= due else "pending"
            )
            outcomes[(t.severity, sla)][outcome] += 1
            outcomes[("all", sla)][outcome] += 1
            if sla == "first_response" and met is not None:
                for key in (t.severity, "all"):
                    first[key].append((met - m.opened).total_seconds() / 3600)
        if m.status != "open" and m.resolved is not None:
            for key in (t.severity, "all"):
                resolved[key].append((m.resolved - m.opened).total_seconds() / 3600)
    assert {b.agent: b.by_severity for b in report.backlog} == {
        a: dict(c) for a, c in backlog.items()
    }
    assert report.open_tickets == sum(m.status == "open" for _, m in live.values())
    assert {(c.severity, c.sla): (c.met, c.breached, c.pending) for c in report.compliance} == {
        k: (c["met"], c["breached"], c["pending"]) for k, c in outcomes.items()
    }
    for c in report.compliance:
        assert c.share_met == pytest.approx(c.met / (c.met + c.breached))
    assert {d.severity for d in report.durations} == {s for s, _ in outcomes}
    for d in report.durations:
        assert (d.first_responses, d.resolutions) == (
            len(first[d.severity]),
            len(resolved[d.severity]),
        )
        for got, values, f in (
            (d.first_response_mean_hours, first[d.severity], statistics.fmean),
            (d.first_response_median_hours, first[d.severity], statistics.median),
            (d.resolution_mean_hours, resolved[d.severity], statistics.fmean),
            (d.resolution_median_hours, resolved[d.severity], statistics.median),
        ):
            assert got == (pytest.approx(f(values)) if values else None)
    assert report.opened_by_category == Counter(t.category for t, _ in live.values())
    assert report.opened_by_kind == Counter(t.kind for t, _ in live.values())
    assert {(b.ticket_id, b.sla, b.since, b.until) for b in report.breaches} == history.breaches(at)
    assert report.breaches and any(c.pending for c in report.compliance)


def test_live_breaches_follow_the_clock(
    engine: Engine, history: History, clock: FixedClock
) -> None:
    with open_runner(engine) as runner:
        rows = breaches_now(runner.db)
        assert {(r.ticket_id, r.clock, r.due_at) for r in rows} == history.breaches_ever(NOW)
        later = NOW + timedelta(days=10)
        clock.advance_to(later)
        assert runner.fire_timers() > 0
        rows = breaches_now(runner.db)
    assert {(r.ticket_id, r.clock, r.due_at) for r in rows} == history.breaches_ever(later)
    assert {r.detected_at for r in rows} == {NOW, later}
    assert any(
        ended for t in history.tickets.values() for ended in history.model(t, NOW).ended_attempts
    )  # type: ignore[union-attr]


def test_a_breach_appears_when_only_the_clock_moves(store_url: str) -> None:
    clock = FixedClock(NOW)
    customer, ticket = UUID(int=1, version=4), UUID(int=2, version=4)
    opened = NOW - timedelta(hours=1)
    with open_engine(store_url, env={}, clock=clock) as engine:
        engine.bus.execute_json(
            "customer.register", {"customer_id": str(customer), "name": "A"}, CTX
        )
        engine.bus.execute_json(
            "ticket.open",
            {
                "ticket_id": str(ticket),
                "customer_id": str(customer),
                "kind": "complaint",
                "category": "delivery",
                "severity": "normal",
                "subject": "Late",
                "occurred_at": opened.isoformat(),
            },
            CTX,
        )
        with open_runner(engine) as runner:
            runner.catch_up()
            assert runner.fire_timers() == 0
            assert breaches_now(runner.db) == []
            clock.advance_to(opened + timedelta(hours=8) - timedelta(seconds=1))
            assert runner.fire_timers() == 0
            assert breaches_now(runner.db) == []
            clock.advance_to(opened + timedelta(hours=8))  # the first response is due: breached
            assert runner.fire_timers() == 1
            assert [(r.ticket_id, r.clock, r.due_at) for r in breaches_now(runner.db)] == [
                (ticket, "first_response", opened + timedelta(hours=8))
            ]
            clock.advance_to(opened + timedelta(hours=80))
            assert runner.fire_timers() == 1
            assert [(r.clock, r.due_at, r.detected_at) for r in breaches_now(runner.db)] == [
                ("first_response", opened + timedelta(hours=8), opened + timedelta(hours=8)),
                ("resolution", opened + timedelta(hours=72), opened + timedelta(hours=80)),
            ]
            assert runner.next_timer() is None  # nothing is left to breach
            report = service_report(runner.db, now=clock.now())
    assert [(b.sla, b.until) for b in report.breaches] == [
        ("first_response", None),
        ("resolution", None),
    ]


def test_as_of_report_equals_a_store_fed_only_the_commands_up_to_then(
    engine: Engine, history: History, tmp_path: Path
) -> None:
    cut = START + timedelta(days=70)
    with open_engine(f"sqlite:///{tmp_path}/cut.db", env={}, clock=FixedClock(NOW)) as partial:
        history.feed(partial, until=cut)
        with open_runner(partial) as runner:
            runner.catch_up()
            expected = service_report(runner.db, now=cut)
    with open_runner(engine) as runner:
        got = service_report(runner.db, now=NOW, as_of=cut)
    assert msgspec.to_builtins(got) == msgspec.to_builtins(expected)
    assert got.opened_by_kind and got.backlog  # the cut is inside the history
