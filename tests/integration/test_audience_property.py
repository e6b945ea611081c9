"""The issue's acceptance (oracle property): for random small histories (calls with durations,
e-mails with a direction, orders, e-mail consents granted and withdrawn, late events, a merge),
random rules from a small grammar and random clock moves, the live `audience_members` equal a
brute-force evaluation written in the test (test_audience_backtest's `History` and rule
nodes) over the events with occurred_at <= now: after catching up, after time passes with no
event (`fire_timers`), after late events and a merge, after a rebuild; for audiences defined
before any event and for copies defined after the first events (the compiled define: members
from one SQL query, timers from its edges). So does `backtest` at the same times, compiled
and in Python. Hypothesis on SQLite; one fixed example on both backends."""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from uuid import UUID

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from infra.clock import FixedClock
from infra.engine import Engine, open_engine
from infra.projector import open_runner
from projections.audiences import backtest, members
from projections.runner import Runner
from tests.integration.test_audience_backtest import (
    Agg,
    Both,
    Consent,
    Feeder,
    Node,
    Not,
    Spend,
    do,
)

# the compiled path is checked on both backends here (the engine keeps typed facts on
# PostgreSQL only)
pytestmark = pytest.mark.usefixtures("typed_facts_on_sqlite")


START = datetime(2026, 3, 1, 9, tzinfo=UTC)
OPS = st.sampled_from([">", ">=", "<", "<=", "="])


@st.composite
def aggs(draw: st.DrawFn) -> Node:
    kind = draw(st.sampled_from(["call", "email"]))
    fn = "count" if kind == "email" else draw(st.sampled_from(["count", "sum"]))
    return Agg(
        fn=fn,
        kind=kind,
        n=draw(st.integers(1, 20)),
        unit=draw(st.sampled_from(["days", "weeks"])),
        op=draw(OPS),
        value=draw(st.integers(0, 3) if fn == "count" else st.integers(0, 90)),
        direction=draw(st.sampled_from([None, "in", "out"])),
    )


LEAVES = st.one_of(
    aggs(),
    st.just(Consent()),
    st.builds(Spend, n=st.sampled_from([None, 7, 30]), op=OPS, value=st.integers(0, 60)),
)
RULES = st.recursive(
    LEAVES,
    lambda inner: st.one_of(
        st.builds(Not, inner), st.builds(Both, st.sampled_from(["and", "or"]), inner, inner)
    ),
    max_leaves=4,
)


@dataclass(frozen=True)
class Event:
    """One command of the history: what, whose (an index), how long before the clock."""

    kind: str  # call | email | consent | order
    who: int
    minutes_back: int
    minutes: int
    direction: str


EVENTS = st.builds(
    Event,
    kind=st.sampled_from(["call", "call", "email", "consent", "order"]),
    who=st.integers(0, 3),
    minutes_back=st.integers(0, 40 * 1440),
    minutes=st.integers(1, 60),
    direction=st.sampled_from(["in", "out"]),
)
MOVES = st.lists(st.integers(1, 25 * 1440), min_size=1, max_size=3)  # clock moves, minutes


@dataclass(frozen=True)
class Scenario:
    customers: int
    rules: list[Node]
    first: list[Event]
    moves: list[int]
    late: list[Event]  # sent after the moves, reaching back before the first events
    merge: tuple[int, int] | None
    more_moves: list[int]


SCENARIOS = st.builds(
    Scenario,
    customers=st.integers(2, 4),
    rules=st.lists(RULES, min_size=1, max_size=3),
    first=st.lists(EVENTS, min_size=4, max_size=16),
    moves=MOVES,
    late=st.lists(EVENTS, min_size=1, max_size=6),
    merge=st.one_of(st.tuples(st.integers(0, 3), st.integers(0, 3)), st.none()),
    more_moves=MOVES,
)


def send(feeder: Feeder, people: list[UUID], e: Event, now: datetime) -> None:
    c, at = people[e.who % len(people)], now - timedelta(minutes=e.minutes_back)
    if e.kind == "call":
        feeder.call(c, at, e.minutes, e.direction)
    elif e.kind == "email":
        feeder.email(c, at, e.direction)
    elif e.kind == "consent":
        feeder.consent(c, at)
    else:
        feeder.order(c, at, e.minutes % 5 + 1)


def live(runner: Runner, name: str, now: datetime) -> set[UUID]:
    return {m.customer_id for m in members(runner.db, name, now=now)}


def check(
    runner: Runner, feeder: Feeder, rules: list[Node], now: datetime, when: str
) -> list[tuple[int, int]]:
    """The live members of each rule's audiences against the oracle; (rule, size) pairs.
    `r<i>` was defined before any event, `c<i>` after the first ones (the compiled define,
    its timers written by it); both must hold the oracle's members."""
    sizes = []
    for i, rule in enumerate(rules):
        want = feeder.h.selected(rule, now)
        assert live(runner, f"r{i}", now) == want, (when, rule.text(), now)
        assert live(runner, f"c{i}", now) == want, ("compiled", when, rule.text(), now)
        sizes.append((i, len(want)))
    return sizes


def run(url: str, s: Scenario) -> list[tuple[int, int]]:
    clock = FixedClock(START)
    with open_engine(url, env={}, clock=clock) as engine, open_runner(engine, page=7) as runner:
        return run_with(engine, runner, clock, s)


def run_with(
    engine: Engine, runner: Runner, clock: FixedClock, s: Scenario
) -> list[tuple[int, int]]:
    feeder = Feeder(engine)
    people = [UUID(int=i + 1, version=4) for i in range(s.customers)]
    for i, c in enumerate(people):
        feeder.register(c, START - timedelta(days=41, hours=i))
    for i, rule in enumerate(s.rules):
        do(engine, "audience.define", name=f"r{i}", rule=rule.text())
    now = START
    for e in s.first:
        send(feeder, people, e, now)
    runner.catch_up(["audiences"])
    for i, rule in enumerate(s.rules):  # over the history: the compiled define
        do(engine, "audience.define", name=f"c{i}", rule=rule.text())
    runner.catch_up(["audiences"])
    sizes = check(runner, feeder, s.rules, now, "caught up")
    seen = [now]
    for step in s.moves:
        now += timedelta(minutes=step)
        clock.advance_to(now)
        runner.fire_timers()
        sizes += check(runner, feeder, s.rules, now, "time passed")
        seen.append(now)
    for e in s.late:  # reaching back up to 40 days: before events already applied
        send(feeder, people, e, now)
    if s.merge is not None:
        survivor, duplicate = (people[x % len(people)] for x in s.merge)
        if survivor != duplicate:
            feeder.merge(survivor, duplicate, now)
    runner.catch_up(["audiences"])
    sizes += check(runner, feeder, s.rules, now, "late events and merge")
    for step in s.more_moves:
        now += timedelta(minutes=step)
        clock.advance_to(now)
        runner.fire_timers()
        sizes += check(runner, feeder, s.rules, now, "time passed again")
        seen.append(now)
    runner.rebuild("audiences")
    sizes += check(runner, feeder, s.rules, now, "rebuilt")
    # the backtest at the times seen, from the histories as the log knows them now
    for rule in s.rules:
        for t in seen:
            want = len(feeder.h.selected(rule, t))
            for compiled in (True, False):
                (point,) = backtest(
                    runner.db,
                    rule.text(),
                    start=t,
                    end=t,
                    every=timedelta(days=1),
                    compiled=compiled,
                )
                assert point.size == want, ("backtest", compiled, rule.text(), t)
    return sizes


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(SCENARIOS)
def test_live_membership_equals_brute_force(s: Scenario) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        run(f"sqlite:///{tmp}/crm.db", s)


FIXED = Scenario(
    customers=3,
    rules=[
        Both("and", Agg("sum", "call", 10, "days", ">", 40), Consent()),
        Both("or", Not(Agg("count", "email", 1, "weeks", ">=", 1, "in")), Spend(7, ">", 20)),
    ],
    first=[
        Event("call", 0, 2 * 1440, 30, "in"),
        Event("call", 0, 9 * 1440, 20, "out"),
        Event("consent", 0, 20 * 1440, 1, "in"),
        Event("email", 1, 3 * 1440, 1, "in"),
        Event("email", 2, 6 * 1440, 1, "in"),
        Event("order", 1, 1440, 4, "in"),
        Event("consent", 1, 30 * 1440, 1, "in"),
        Event("call", 1, 100, 45, "in"),
    ],
    moves=[2 * 1440, 5 * 1440 + 17],
    late=[
        Event("consent", 0, 30 * 1440, 1, "in"),  # a withdrawal before the grant in time
        Event("call", 2, 4 * 1440, 50, "in"),
        Event("consent", 2, 25 * 1440, 1, "in"),
    ],
    merge=(1, 2),
    more_moves=[3 * 1440, 9 * 1440],
)


def test_a_fixed_example_on_both_backends(store_url: str) -> None:
    sizes = run(store_url, FIXED)
    for i in range(len(FIXED.rules)):  # each audience changes along the way
        assert len({n for r, n in sizes if r == i}) > 1, i
