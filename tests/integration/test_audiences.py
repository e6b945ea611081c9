"""The `audiences` view against brute-force evaluation written here (oracle): as events arrive,
late, as only the clock moves, across a merge, a withdrawn consent, a rebuild; `explain`
against the log; refused definitions append nothing. On both backends."""

from __future__ import annotations

import random
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

import pytest
from dateutil.relativedelta import relativedelta

from domain.errors import DomainError
from handlers.decision import CommandContext
from infra.clock import FixedClock
from infra.engine import Engine, open_engine
from infra.projector import open_runner
from projections.audiences import audiences_list, changes, explain, members
from projections.runner import Runner

NOW = datetime(2026, 6, 1, 12, tzinfo=UTC)
LATER = NOW + timedelta(days=40)
BIG_CALLERS = "sum(call.duration_min, last 4 months) > 300"


@pytest.fixture
def engine(store_url: str) -> Iterator[Engine]:
    with open_engine(store_url, env={}, clock=FixedClock(NOW)) as e:
        yield e


def do(engine: Engine, command: str, /, **data: Any) -> Any:
    return engine.bus.execute_json(
        command,
        {k: str(v) if isinstance(v, UUID | datetime) else v for k, v in data.items()},
        CommandContext(actor="employee:ann", channel="test"),
    )


def refused(engine: Engine, code: str, command: str, /, **data: Any) -> None:
    head = engine.store.head()
    with pytest.raises(DomainError) as caught:
        do(engine, command, **data)
    assert caught.value.code == code, caught.value
    assert engine.store.head() == head


class Calls:
    """The test's own record of the calls it logged: (customer, business time, minutes)."""

    def __init__(self) -> None:
        self.calls: list[tuple[UUID, datetime, int]] = []
        self.merged: dict[UUID, UUID] = {}  # duplicate -> survivor

    def log(self, engine: Engine, customer: UUID, at: datetime, minutes: int) -> None:
        do(
            engine,
            "interaction.log_call",
            customer_id=customer,
            direction="in",
            duration_min=minutes,
            occurred_at=at,
        )
        self.calls.append((customer, at, minutes))

    def totals(self, at: datetime) -> dict[UUID, int]:
        start = at - relativedelta(months=4)  # no month-end days in these tests' times
        out: dict[UUID, int] = {}
        for customer, t, m in self.calls:
            if start < t <= at:
                c = self.merged.get(customer, customer)
                out[c] = out.get(c, 0) + m
        return out

    def big_callers(self, at: datetime) -> set[UUID]:
        return {c for c, total in self.totals(at).items() if total > 300}


def member_ids(runner: Runner, name: str, **kw: Any) -> set[UUID]:
    return {m.customer_id for m in members(runner.db, name, now=NOW, **kw)}


def seeded(engine: Engine, seed: int) -> tuple[Calls, list[UUID]]:
    rng = random.Random(seed)
    customers = [UUID(int=rng.getrandbits(128), version=4) for _ in range(25)]
    for c in customers:
        do(
            engine,
            "customer.register",
            customer_id=c,
            name="C",
            occurred_at=NOW - timedelta(days=400),
        )
    calls = Calls()
    for _ in range(160):
        c = rng.choice(customers)
        at = NOW - timedelta(minutes=rng.randrange(0, 200 * 1440))
        calls.log(engine, c, at, rng.randint(5, 120))
    return calls, customers


@pytest.mark.parametrize("seed", [1, 2])
def test_members_equal_brute_force_as_events_arrive_late_and_as_time_passes(
    engine: Engine, seed: int
) -> None:
    calls, customers = seeded(engine, seed)
    do(engine, "audience.define", name="big_callers", rule=BIG_CALLERS)
    with open_runner(engine, page=53) as runner:  # small pages: facts carried across pages
        runner.catch_up()
        expected = calls.big_callers(NOW)
        assert 3 <= len(expected) < len(customers)
        assert member_ids(runner, "big_callers") == expected
        rows = {m.customer_id: m for m in members(runner.db, "big_callers", now=NOW)}
        totals = calls.totals(NOW)
        assert all(
            float(m.values["sum(call.duration_min, last 4 months)"]) == totals[c]
            for c, m in rows.items()
        )

        # a late event (business time a month ago) counts at its business time
        outsider = min(set(customers) - expected, key=lambda c: -calls.totals(NOW).get(c, 0))
        missing = 301 - calls.totals(NOW).get(outsider, 0)
        calls.log(engine, outsider, NOW - timedelta(days=30), missing)
        runner.catch_up()
        assert outsider in calls.big_callers(NOW)
        assert member_ids(runner, "big_callers") == calls.big_callers(NOW)

        # only the clock moves: members leave as their calls leave the window
        head = engine.store.head()
        assert isinstance(engine.clock, FixedClock)
        later = calls.big_callers(LATER)
        assert calls.big_callers(NOW) - later  # someone leaves by LATER
        for step in (NOW + timedelta(days=10), NOW + timedelta(days=25), LATER):
            engine.clock.advance_to(step)
            runner.fire_timers()
            assert member_ids(runner, "big_callers") == calls.big_callers(step)
        assert engine.store.head() == head
        exits = [x for x in changes(runner.db, "big_callers") if x[2] == "exited"]
        assert {x[0] for x in exits} == calls.big_callers(NOW) - later
        assert all(x[4] is None and x[3] > NOW for x in exits)  # time, not an event, did it

        # as of an earlier business time, from the histories
        past = NOW - timedelta(days=60)
        assert member_ids(runner, "big_callers", as_of=past) == calls.big_callers(past)

        # a rebuild gives the same members
        before = {m.customer_id: m.values for m in members(runner.db, "big_callers", now=LATER)}
        runner.rebuild("audiences")
        after = {m.customer_id: m.values for m in members(runner.db, "big_callers", now=LATER)}
        assert after == before


def test_a_merged_customer_counts_once(engine: Engine) -> None:
    a, b = UUID(int=1, version=4), UUID(int=2, version=4)
    calls = Calls()
    for c in (a, b):
        do(
            engine,
            "customer.register",
            customer_id=c,
            name="C",
            occurred_at=NOW - timedelta(days=300),
        )
        calls.log(engine, c, NOW - timedelta(days=10), 200)
    do(engine, "audience.define", name="big_callers", rule=BIG_CALLERS)
    do(engine, "audience.define", name="callers", rule="count(call, last 4 months) >= 1")
    with open_runner(engine) as runner:
        runner.catch_up()
        assert member_ids(runner, "big_callers") == set()
        assert member_ids(runner, "callers") == {a, b}
        do(engine, "customer.merge", survivor_id=a, merged_id=b)
        calls.merged[b] = a
        runner.catch_up()
        assert member_ids(runner, "big_callers") == calls.big_callers(NOW) == {a}
        assert member_ids(runner, "callers") == {a}
        (row,) = members(runner.db, "big_callers", now=NOW)
        assert row.values == {"sum(call.duration_min, last 4 months)": 400}
        calls.log(engine, a, NOW - timedelta(days=1), 5)  # on top of both histories
        runner.catch_up()
        (row,) = members(runner.db, "big_callers", now=NOW)
        assert row.values == {"sum(call.duration_min, last 4 months)": 405}
        do(engine, "customer.unmerge", survivor_id=a, merged_id=b)
        runner.catch_up()
        assert member_ids(runner, "big_callers") == set()
        assert member_ids(runner, "callers") == {a, b}


def test_a_withdrawn_consent_removes_the_member(engine: Engine) -> None:
    a, b = UUID(int=3, version=4), UUID(int=4, version=4)
    for c in (a, b):
        do(engine, "customer.register", customer_id=c, name="C")
        do(engine, "customer.grant_consent", customer_id=c, consent_channel="email")
    do(engine, "audience.define", name="mailable", rule="consent(email)")
    do(
        engine,
        "audience.define",
        name="mailable_callers",
        rule="member(mailable) and count(call, last 7 days) > 0",
    )
    with open_runner(engine) as runner:
        runner.catch_up()
        assert member_ids(runner, "mailable") == {a, b}
        Calls().log(engine, a, NOW - timedelta(days=1), 3)
        runner.catch_up()
        assert member_ids(runner, "mailable_callers") == {a}
        do(engine, "customer.withdraw_consent", customer_id=a, consent_channel="email")
        runner.catch_up()
        assert member_ids(runner, "mailable") == {b}
        assert member_ids(runner, "mailable_callers") == set()  # member(...) follows at once
        kinds = [x[2] for x in changes(runner.db, "mailable", a)]
        assert kinds == ["entered", "exited"]
        sizes = {r.name: r.size for r in audiences_list(runner.db)}
        assert sizes == {"mailable": 1, "mailable_callers": 0}


def test_explain_names_events_that_exist_and_values_that_match(engine: Engine) -> None:
    calls, customers = seeded(engine, 5)
    do(engine, "audience.define", name="big_callers", rule=BIG_CALLERS)
    with open_runner(engine) as runner:
        runner.catch_up()
        log = {e.position: e for e in engine.store.decode_rows(engine.store.read_rows(0, 100_000))}
        totals = calls.totals(NOW)
        inside = calls.big_callers(NOW)
        for c in customers:
            why = explain(runner.db, "big_callers", c, now=NOW)
            assert why.member == (c in inside)
            assert why.rule == BIG_CALLERS
            assert why.values == {"sum(call.duration_min, last 4 months)": totals.get(c, 0)}
            expected_calls = sorted(
                p
                for p, e in log.items()
                if e.customer_id == c
                and e.type == "interaction.call_logged"
                and NOW - relativedelta(months=4) < e.occurred_at <= NOW
            )
            assert [x.position for x in why.events] == expected_calls
            for x in why.events:
                assert log[x.position].type == x.type == "interaction.call_logged"
                assert log[x.position].occurred_at == x.occurred_at


def test_bad_rules_and_cycles_are_refused_and_append_nothing(engine: Engine) -> None:
    do(engine, "audience.define", name="a", rule="count(call, last 7 days) > 0")
    do(engine, "audience.define", name="b", rule="member(a) and consent(email)")
    refused(
        engine,
        "rule_syntax_error",
        "audience.define",
        name="x",
        rule="sum(call.duration_min, 4 months) > 1",
    )
    refused(
        engine,
        "unknown_field",
        "audience.define",
        name="x",
        rule="sum(call.duraton, last 4 months) > 1",
    )
    refused(engine, "unknown_audience", "audience.define", name="x", rule="member(nobody)")
    refused(engine, "audience_already_defined", "audience.define", name="a", rule="consent(phone)")
    refused(engine, "audience_cycle", "audience.change", name="a", rule="member(b)")
    refused(engine, "audience_cycle", "audience.define", name="self", rule="member(self)")
    refused(engine, "audience_in_use", "audience.retire", name="a")
    refused(engine, "audience_not_found", "audience.change", name="zzz", rule="consent(phone)")
    do(engine, "audience.retire", name="b")
    refused(engine, "audience_retired", "audience.retire", name="b")
    do(engine, "audience.change", name="a", rule="count(call, last 14 days) > 0")
    with open_runner(engine) as runner:
        runner.catch_up()
        listed = {(r.name, r.version, r.rule, r.retired) for r in audiences_list(runner.db)}
        assert listed == {
            ("a", 2, "count(call, last 14 days) > 0", False),
            ("b", 1, "member(a) and consent(email)", True),
        }
