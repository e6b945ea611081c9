"""The `equipment` report and live tables against recomputations written here (oracle tests),
maintenance falling due as only the clock moves, as-of reports against a store fed only the
commands up to that date, and refused commands leaving the view as it was."""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any
from uuid import UUID

import msgspec
import pytest

from domain.errors import DomainError
from handlers.decision import CommandContext
from infra.clock import FixedClock
from infra.engine import Engine, open_engine
from infra.projector import open_runner
from projections.equipment_view import (
    STATUS_COLUMNS,
    customer_equipment,
    equipment_report,
    maintenance_due_now,
)
from projections.runner import Runner

NOW = datetime(2026, 6, 1, tzinfo=UTC)
START = NOW - timedelta(days=400)
MERGE_AT = START + timedelta(days=200)
DAY = timedelta(days=1)
CTX = CommandContext(actor="test", channel="test")
MODELS = {  # expected life: usage units, years
    "Barista 2": (20_000.0, 8.0),
    "Grinder G": (None, 3.0),
    "Boiler X": (9_000.0, None),
    "Chiller C": (15_000.0, 10.0),
}


def uid(rng: random.Random) -> UUID:
    return UUID(int=rng.getrandbits(128), version=4)


def do(engine: Engine, command: str, /, **data: Any) -> Any:
    return engine.bus.execute_json(
        command, {k: str(v) if isinstance(v, UUID) else v for k, v in data.items()}, CTX
    )


class Machine(msgspec.Struct, kw_only=True):
    customer: UUID
    model: str
    installed: datetime
    warranty_end: date | None
    every_days: int | None = None
    every_usage: float | None = None
    readings: list[tuple[datetime, float]] = []
    maintenances: list[datetime] = []
    failures: list[datetime] = []
    retired: datetime | None = None


class Fleet:
    """A seeded fleet's commands as (business time, command, data) in the order they are sent
    (each machine's in time order, then a few late readings, then a merge of customers), and
    the machines as the test itself keeps them."""

    def __init__(self, seed: int) -> None:
        rng = random.Random(seed)
        self.commands: list[tuple[datetime, str, dict[str, Any]]] = []
        self.customers = [uid(rng) for _ in range(4)]
        for c in self.customers:
            self.add(START, "customer.register", customer_id=c, name="C")
        self.machines: dict[UUID, Machine] = {}
        for _ in range(24):
            self._machine(rng, uid(rng))
        for mid, m in list(self.machines.items())[::3]:  # late readings, between two others
            if len(m.readings) >= 2:
                (t1, v1), (t2, v2) = m.readings[-2], m.readings[-1]
                at, value = t1 + (t2 - t1) / 2, round((v1 + v2) / 2, 1)
                self.add(at, "equipment.record_usage", equipment_id=mid, reading=value)
                m.readings.append((at, value))
        self.merged, self.survivor = self.customers[3], self.customers[0]
        self.add(MERGE_AT, "customer.merge", survivor_id=self.survivor, merged_id=self.merged)

    def add(self, at: datetime, command: str, /, **data: Any) -> None:
        data["occurred_at"] = at.isoformat()
        self.commands.append((at, command, data))

    def _machine(self, rng: random.Random, mid: UUID) -> None:
        model = rng.choice(sorted(MODELS))
        life_usage, life_years = MODELS[model]
        t = START + timedelta(days=rng.randrange(0, 120), hours=rng.randrange(1, 20))
        warranty = NOW.date() + timedelta(days=rng.randrange(-40, 150))
        m = Machine(
            customer=rng.choice(self.customers),
            model=model,
            installed=t,
            warranty_end=warranty if rng.random() < 0.8 else None,
        )
        self.machines[mid] = m
        self.add(
            t,
            "equipment.register",
            equipment_id=mid,
            customer_id=m.customer,
            model=model,
            serial=f"SN-{mid.hex[:8]}",
            installed_at=t.isoformat(),
            warranty_end=m.warranty_end.isoformat() if m.warranty_end else None,
            expected_life_usage=life_usage,
            expected_life_years=life_years,
        )
        rate = rng.uniform(5, 60)  # units a day
        usage = 0.0
        plan_changed = False
        t += timedelta(hours=rng.randrange(2, 48))
        self._plan(rng, mid, m, t)
        while True:
            t += timedelta(days=rng.randrange(3, 40), hours=rng.randrange(0, 24))
            if t >= NOW - DAY:
                return
            r = rng.random()
            if r < 0.55:
                usage = round(usage + rate * rng.uniform(3, 40), 1)
                self.add(t, "equipment.record_usage", equipment_id=mid, reading=usage)
                m.readings.append((t, usage))
            elif r < 0.72:
                self.add(t, "equipment.record_maintenance", equipment_id=mid, kind="service")
                m.maintenances.append(t)
            elif r < 0.87:
                self.add(t, "equipment.report_breakdown", equipment_id=mid, failure_code="E1")
                m.failures.append(t)
            elif r < 0.92 and not plan_changed:
                self._plan(rng, mid, m, t)
                plan_changed = True
            elif r > 0.985:
                self.add(t, "equipment.retire", equipment_id=mid, reason="worn out")
                m.retired = t
                return

    def _plan(self, rng: random.Random, mid: UUID, m: Machine, t: datetime) -> None:
        days, usage = m.every_days, m.every_usage
        while (days, usage) == (m.every_days, m.every_usage):  # a plan that changes something
            kind = rng.choice(("days", "usage", "both"))
            days = rng.choice((30, 60, 90)) if kind != "usage" else None
            usage = rng.choice((500.0, 1500.0)) if kind != "days" else None
        m.every_days, m.every_usage = days, usage
        self.add(
            t,
            "equipment.set_maintenance_plan",
            equipment_id=mid,
            every_days=days,
            every_usage=usage,
        )

    def feed(self, engine: Engine, until: datetime | None = None) -> None:
        for at, name, data in self.commands:
            if until is None or at <= until:
                do(engine, name, **data)


# -- the oracle: the test's own arithmetic --------------------------------------------------


def reading_now(m: Machine) -> tuple[datetime, float] | None:
    return max(m.readings) if m.readings else None


def expected_wear(m: Machine) -> float | None:
    current = reading_now(m)
    life_usage, life_years = MODELS[m.model]
    if current is None:
        return None
    shares = []
    if life_usage:
        shares.append(current[1] / life_usage)
    if life_years:
        shares.append((current[0] - m.installed).total_seconds() / (life_years * 365.25 * 86400))
    return max(shares)


def expected_due(m: Machine) -> datetime | None:
    if m.retired is not None:
        return None
    base = m.maintenances[-1] if m.maintenances else m.installed
    dates = []
    if m.every_days:
        dates.append(base + timedelta(days=m.every_days))
    readings = sorted(m.readings)
    if m.every_usage and readings:
        last_at, last_value = readings[-1]
        first_at, first_value = readings[0] if len(readings) > 1 else (m.installed, 0.0)
        span_days = (last_at - first_at).total_seconds() / 86400
        rate = (last_value - first_value) / span_days if span_days > 0 else 0.0
        if rate > 0:
            at_base = max((v for at, v in readings if at <= base), default=0.0)
            ref_at, ref_value = (last_at, last_value) if last_at >= base else (base, at_base)
            to_go = at_base + m.every_usage - ref_value
            dates.append(ref_at + timedelta(seconds=to_go / rate * 86400))
    return min(dates, default=None)


def expected_status(m: Machine) -> str:
    if m.retired is not None:
        return "retired"
    if m.failures and (not m.maintenances or m.failures[-1] > m.maintenances[-1]):
        return "broken_down"
    return "in_service"


def close(a: datetime | None, b: datetime | None) -> bool:
    if a is None or b is None:
        return a is b
    return abs(a - b) < timedelta(seconds=1)


# -- fixtures -----------------------------------------------------------------------------


@pytest.fixture
def fleet() -> Fleet:
    return Fleet(seed=7)


@pytest.fixture
def engine(store_url: str, fleet: Fleet) -> Iterator[Engine]:
    with open_engine(store_url, env={}, clock=FixedClock(NOW)) as e:
        fleet.feed(e)
        with open_runner(e, page=40) as runner:  # many pages: machines span several
            runner.catch_up()
            runner.fire_timers()
        yield e


def table(runner: Runner, name: str, columns: str) -> list[tuple[Any, ...]]:
    return runner.db.fetch(f"SELECT {columns} FROM {runner.db.dialect.qualify(name)}")


# -- tests --------------------------------------------------------------------------------


def test_the_report_equals_a_recomputation(engine: Engine, fleet: Fleet) -> None:
    with open_runner(engine) as runner:
        report = equipment_report(runner.db, now=NOW, top=8)
        narrow = equipment_report(runner.db, now=NOW, warranty_days=10)
    machines = fleet.machines

    def owner(m: Machine) -> UUID:
        return fleet.survivor if m.customer == fleet.merged else m.customer

    assert report.total == len(machines)
    assert report.by_status == dict(Counter(expected_status(m) for m in machines.values()))
    assert {"retired", "broken_down", "in_service"} <= set(report.by_status)  # all occur

    worn = sorted(
        (
            (-w, str(k))
            for k, m in machines.items()
            if m.retired is None and (w := expected_wear(m)) is not None
        )
    )[:8]
    assert [str(x.equipment_id) for x in report.most_worn] == [k for _, k in worn]
    assert [x.wear for x in report.most_worn] == pytest.approx([-w for w, _ in worn])
    assert all(x.customer_id == owner(machines[x.equipment_id]) for x in report.most_worn)

    due = {k: d for k, m in machines.items() if (d := expected_due(m)) is not None}
    assert {x.equipment_id for x in report.maintenance} == set(due)
    for x in report.maintenance:
        assert close(x.due_at, due[x.equipment_id]), x
        assert x.overdue is (due[x.equipment_id] <= NOW)
    dates = [x.due_at for x in report.maintenance]
    assert dates == sorted(dates) and report.maintenance[0].overdue  # overdue first
    assert any(not x.overdue for x in report.maintenance)
    usage_plans = [k for k, m in machines.items() if m.every_usage and k in due]
    assert usage_plans  # projected usage dates are part of the check

    for row in report.failures_by_model:
        fleet_of_model = [m for m in machines.values() if m.model == row.model]
        failures = sum(len(m.failures) for m in fleet_of_model)
        days = sum(((m.retired or NOW) - m.installed) / DAY for m in fleet_of_model)
        assert (row.units, row.failures) == (len(fleet_of_model), failures)
        assert row.operating_days == pytest.approx(days, abs=1e-3)
        assert row.mtbf_days == (pytest.approx(days / failures, abs=1e-3) if failures else None)
    assert {r.model for r in report.failures_by_model} == {m.model for m in machines.values()}
    assert sum(r.failures for r in report.failures_by_model) > 0

    def ends_soon(m: Machine) -> bool:
        if m.warranty_end is None or m.retired is not None:
            return False
        ends = datetime.combine(m.warranty_end, time(), tzinfo=UTC) + DAY
        return NOW < ends <= NOW + timedelta(days=60)

    expected = {k for k, m in machines.items() if ends_soon(m)}
    assert {w.equipment_id for w in report.warranties_ending} == expected and expected
    assert {w.equipment_id for w in narrow.warranties_ending} < expected


def test_the_live_tables_agree_with_the_recomputation(engine: Engine, fleet: Fleet) -> None:
    with open_runner(engine) as runner:
        d = runner.db.dialect
        rows = table(
            runner,
            "equipment_status",
            "equipment_id, status, usage, wear, next_maintenance_due, failures, last_failure_at",
        )
        due_now = maintenance_due_now(runner.db)
    assert len(rows) == len(fleet.machines)
    for mid, status, usage, wear, next_due, failures, last_failure in rows:
        m = fleet.machines[d.uuid(mid)]  # type: ignore[index]
        current = reading_now(m)
        assert status == expected_status(m)
        assert usage == (current[1] if current else 0.0)
        expected = expected_wear(m)
        assert wear == (pytest.approx(expected) if expected is not None else None)
        assert close(d.ts(next_due), expected_due(m))
        assert failures == len(m.failures)
        assert d.ts(last_failure) == (m.failures[-1] if m.failures else None)
    overdue = {k for k, m in fleet.machines.items() if (t := expected_due(m)) and t <= NOW}
    assert {r.equipment_id for r in due_now} == overdue and overdue
    assert all(r.detected_at == NOW and r.due_at <= NOW for r in due_now)


def test_a_rebuild_in_one_page_gives_the_tables_catch_up_gave_in_many(engine: Engine) -> None:
    columns = ", ".join(STATUS_COLUMNS)
    with open_runner(engine) as runner:
        status = sorted(table(runner, "equipment_status", columns), key=str)
        due = maintenance_due_now(runner.db)
        runner.rebuild("equipment")
        assert sorted(table(runner, "equipment_status", columns), key=str) == status
        runner.fire_timers()
        rebuilt = maintenance_due_now(runner.db)
    assert [(r.equipment_id, r.due_at) for r in rebuilt] == [
        (r.equipment_id, r.due_at) for r in due
    ]


def test_a_customer_sees_the_machines_of_customers_merged_into_it(
    engine: Engine, fleet: Fleet
) -> None:
    with open_runner(engine) as runner:
        mine = customer_equipment(runner.db, fleet.survivor, now=NOW)
        before_merge = customer_equipment(runner.db, fleet.survivor, now=NOW, as_of=MERGE_AT - DAY)
        merged = customer_equipment(runner.db, fleet.merged, now=NOW)
    own = {k for k, m in fleet.machines.items() if m.customer == fleet.survivor}
    theirs = {k for k, m in fleet.machines.items() if m.customer == fleet.merged}
    assert own and theirs
    assert {x.equipment_id for x in mine} == own | theirs
    assert {x.equipment_id for x in before_merge} == own  # every machine was installed by then
    assert merged == []
    for x in mine:
        m = fleet.machines[x.equipment_id]
        assert (x.customer_id, x.model, x.failures) == (m.customer, m.model, len(m.failures))
        assert close(x.next_maintenance_due, expected_due(m))


@pytest.mark.parametrize("cut_days", [90, 250])
def test_as_of_reports_equal_a_store_fed_only_the_commands_up_to_then(
    engine: Engine, fleet: Fleet, tmp_path: Path, cut_days: int
) -> None:
    cut = START + timedelta(days=cut_days)
    with open_engine(f"sqlite:///{tmp_path}/cut.db", env={}, clock=FixedClock(NOW)) as partial:
        fleet.feed(partial, until=cut)
        with open_runner(partial) as runner:
            runner.catch_up()
            expected = (
                equipment_report(runner.db, now=cut),
                customer_equipment(runner.db, fleet.survivor, now=cut),
            )
    with open_runner(engine) as runner:
        got = (
            equipment_report(runner.db, now=NOW, as_of=cut),
            customer_equipment(runner.db, fleet.survivor, now=NOW, as_of=cut),
        )
    assert msgspec.to_builtins(got) == msgspec.to_builtins(expected)
    assert 0 < got[0].total <= len(fleet.machines)
    if cut_days < 120:  # some machines are installed later
        assert got[0].total < len(fleet.machines)
    assert got[0].maintenance and got[0].failures_by_model


def test_a_report_without_as_of_leaves_out_what_is_dated_after_now(
    engine: Engine, fleet: Fleet
) -> None:
    mid = next(k for k, m in fleet.machines.items() if m.retired is None)
    with open_runner(engine) as runner:
        before = equipment_report(runner.db, now=NOW)
        do(
            engine,
            "equipment.report_breakdown",
            equipment_id=mid,
            failure_code="E9",
            occurred_at=(NOW + 5 * DAY).isoformat(),
        )
        runner.catch_up()
        assert equipment_report(runner.db, now=NOW) == before
        later = equipment_report(runner.db, now=NOW + 6 * DAY)
    assert sum(r.failures for r in later.failures_by_model) == (
        sum(r.failures for r in before.failures_by_model) + 1
    )


# -- time alone ---------------------------------------------------------------------------

T0 = datetime(2026, 1, 5, 9, tzinfo=UTC)


@pytest.fixture
def quiet(store_url: str) -> Iterator[tuple[Engine, FixedClock]]:
    clock = FixedClock(T0)
    with open_engine(store_url, env={}, clock=clock) as e:
        yield e, clock


def timers(runner: Runner, key: str) -> list[datetime]:
    rows = runner.db.fetch(
        f"SELECT due_at FROM {runner.db.dialect.qualify('crm_timers')} "
        f"WHERE projection = 'equipment__g1' AND key = '{key}'"
    )
    return [runner.db.dialect.ts(r[0]) for r in rows]  # type: ignore[misc]


def test_maintenance_falls_due_when_only_the_clock_moves(
    quiet: tuple[Engine, FixedClock],
) -> None:
    engine, clock = quiet
    customer, machine = UUID(int=1, version=4), UUID(int=2, version=4)
    do(engine, "customer.register", customer_id=customer, name="Ada", occurred_at=T0.isoformat())
    do(
        engine,
        "equipment.register",
        equipment_id=machine,
        customer_id=customer,
        model="Barista 2",
        serial="B2-1",
        installed_at=T0.isoformat(),
        occurred_at=T0.isoformat(),
    )
    do(
        engine,
        "equipment.set_maintenance_plan",
        equipment_id=machine,
        every_days=30,
        occurred_at=T0.isoformat(),
    )
    do(
        engine,
        "equipment.record_maintenance",
        equipment_id=machine,
        kind="commissioning",
        occurred_at=T0.isoformat(),
    )
    key = f"due:{machine}"
    with open_runner(engine) as runner:
        runner.catch_up()
        assert runner.fire_timers() == 0
        assert maintenance_due_now(runner.db) == []
        assert timers(runner, key) == [T0 + 30 * DAY]

        clock.advance_to(T0 + 31 * DAY)  # no event at all: only time passes
        assert runner.fire_timers() == 1
        (row,) = maintenance_due_now(runner.db)
        assert (row.equipment_id, row.customer_id, row.model) == (machine, customer, "Barista 2")
        assert (row.due_at, row.detected_at) == (T0 + 30 * DAY, T0 + 31 * DAY)
        assert timers(runner, key) == []

        do(
            engine,
            "equipment.record_maintenance",
            equipment_id=machine,
            kind="service",
            occurred_at=(T0 + 31 * DAY).isoformat(),
        )
        runner.catch_up()
        assert maintenance_due_now(runner.db) == []
        assert timers(runner, key) == [T0 + 61 * DAY]
        (status,) = table(runner, "equipment_status", "next_maintenance_due")
        assert runner.db.dialect.ts(status[0]) == T0 + 61 * DAY

        clock.advance_to(T0 + 62 * DAY)
        assert runner.fire_timers() == 1
        assert [r.due_at for r in maintenance_due_now(runner.db)] == [T0 + 61 * DAY]
        do(
            engine,
            "equipment.retire",
            equipment_id=machine,
            occurred_at=(T0 + 62 * DAY).isoformat(),
        )
        runner.catch_up()
        assert maintenance_due_now(runner.db) == []  # retired: nothing due, no timer left
        assert timers(runner, key) == []
        clock.advance_to(T0 + 400 * DAY)
        assert runner.fire_timers() == 0


# -- refused input ------------------------------------------------------------------------


def test_refused_commands_append_nothing_and_leave_the_view_as_it_was(
    engine: Engine, fleet: Fleet
) -> None:
    """Unknown machines and readings going backwards are covered in test_service.py; here the
    plan checks and retirement, and the view after them."""
    live = next(k for k, m in fleet.machines.items() if m.retired is None)
    gone = next(k for k, m in fleet.machines.items() if m.retired is not None)
    with open_runner(engine) as runner:
        runner.catch_up()
        before = equipment_report(runner.db, now=NOW)
        status = table(runner, "equipment_status", "*")
        refusals: list[tuple[str, str, dict[str, Any]]] = [
            ("invalid_plan", "equipment.set_maintenance_plan", {"equipment_id": live}),
            (
                "invalid_plan",
                "equipment.set_maintenance_plan",
                {"equipment_id": live, "every_days": 0, "every_usage": 100.0},
            ),
            (
                "equipment_retired",
                "equipment.record_usage",
                {"equipment_id": gone, "reading": 1e9, "occurred_at": NOW.isoformat()},
            ),
            (
                "equipment_retired",
                "equipment.report_breakdown",
                {"equipment_id": gone, "failure_code": "E1", "occurred_at": NOW.isoformat()},
            ),
        ]
        for code, command, data in refusals:
            head = engine.store.head()
            with pytest.raises(DomainError) as caught:
                do(engine, command, **data)
            assert caught.value.code == code, caught.value
            assert engine.store.head() == head
        runner.catch_up()
        assert equipment_report(runner.db, now=NOW) == before
        assert table(runner, "equipment_status", "*") == status
