"""decide/evolve of equipment: registration, readings (late ones too), maintenance, breakdowns,
retirement, and the wear, maintenance-due, warranty and MTBF helpers (pure)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from uuid import uuid4

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from domain.equipment import commands as cmd
from domain.equipment import decide
from domain.equipment import errors as err
from domain.equipment import events as ev
from domain.equipment.state import (
    EquipmentState,
    fold,
    mtbf,
    next_maintenance_due,
    observed_usage_rate,
    time_in_service,
    warranty_ends_at,
    warranty_ends_within,
    wear,
)
from domain.events import EVENTS, DomainEvent

T0 = datetime(2026, 1, 1, 9, tzinfo=UTC)
DAY = timedelta(days=1)


def apply(state: EquipmentState, events: list[DomainEvent], at: datetime) -> EquipmentState:
    return fold(
        state.equipment_id, [(state.version + i, at, e) for i, e in enumerate(events, 1)], state
    )


def a_register(**kw: object) -> cmd.RegisterEquipment:
    fields: dict[str, object] = {
        "customer_id": uuid4(),
        "model": "Boiler X2",
        "serial": "SN-001",
        "installed_at": T0,
        "warranty_end": date(2027, 12, 31),
        "expected_life_usage": 10_000.0,
        "expected_life_years": 10.0,
    }
    fields.update(kw)
    return cmd.RegisterEquipment(**fields)  # type: ignore[arg-type]


def registered(**kw: object) -> EquipmentState:
    state = EquipmentState(equipment_id=uuid4())
    return apply(state, decide.register(state, a_register(**kw), customer_live=True, at=T0), T0)


def at_day(
    state: EquipmentState,
    fn: Callable[..., list[DomainEvent]],
    command: cmd.EquipmentCommand,
    day: float,
) -> EquipmentState:
    at = T0 + day * DAY
    return apply(state, fn(state, command, at=at), at)


def read(state: EquipmentState, value: float, day: float) -> EquipmentState:
    c = cmd.RecordUsage(equipment_id=state.equipment_id, reading=value)
    return at_day(state, decide.record_usage, c, day)


def plan(state: EquipmentState, day: float = 0, **kw: object) -> EquipmentState:
    c = cmd.SetMaintenancePlan(equipment_id=state.equipment_id, **kw)  # type: ignore[arg-type]
    return at_day(state, decide.set_maintenance_plan, c, day)


def maintain(state: EquipmentState, day: float, kind: str = "service") -> EquipmentState:
    c = cmd.RecordMaintenance(equipment_id=state.equipment_id, kind=kind, notes="cleaned")
    return at_day(state, decide.record_maintenance, c, day)


def break_down(state: EquipmentState, day: float, code: str = "E42") -> EquipmentState:
    c = cmd.ReportBreakdown(equipment_id=state.equipment_id, failure_code=code)
    return at_day(state, decide.report_breakdown, c, day)


def retired(state: EquipmentState, day: float) -> EquipmentState:
    c = cmd.RetireEquipment(equipment_id=state.equipment_id, reason="replaced")
    return at_day(state, decide.retire, c, day)


class TestRegister:
    def test_the_event_carries_the_command_and_the_state_keeps_it(self) -> None:
        state = EquipmentState(equipment_id=uuid4())
        c = a_register()
        events = decide.register(state, c, customer_live=True, at=T0 + DAY)
        assert events == [
            ev.EquipmentRegistered(
                customer_id=c.customer_id,
                model="Boiler X2",
                serial="SN-001",
                installed_at=T0,
                warranty_end=date(2027, 12, 31),
                expected_life_usage=10_000.0,
                expected_life_years=10.0,
            )
        ]
        s = apply(state, events, T0 + DAY)
        assert (s.status, s.customer_id, s.installed_at, s.registered_at) == (
            "in_service",
            c.customer_id,
            T0,
            T0 + DAY,
        )
        assert (s.version, s.last_occurred_at, s.readings) == (1, T0 + DAY, ())

    def test_twice_is_an_error(self) -> None:
        s = registered()
        with pytest.raises(err.EquipmentAlreadyRegistered) as info:
            decide.register(s, a_register(), customer_live=True, at=T0)
        assert info.value.code == "equipment_already_registered"

    def test_the_customer_must_be_live(self) -> None:
        c = a_register()
        with pytest.raises(err.CustomerNotLive) as info:
            decide.register(EquipmentState(equipment_id=uuid4()), c, customer_live=False, at=T0)
        assert info.value.customer_id == c.customer_id and info.value.code == "customer_not_live"

    def test_expected_life_must_be_positive_on_the_wire(self) -> None:
        raw = (
            b'{"customer_id": "6f1c2e8a-0b8e-4c1e-9a51-3f2b8c7d6e5f", "model": "m",'
            b' "serial": "s", "installed_at": "2026-01-01T09:00:00Z", "expected_life_years": 0}'
        )
        with pytest.raises(msgspec.ValidationError):
            msgspec.json.decode(raw, type=cmd.RegisterEquipment)
        assert cmd.RegisterEquipment.command_name() == "equipment.register"

    def test_free_text_is_personal(self) -> None:
        for tag, personal in [
            ("equipment.maintenance_recorded", {"notes"}),
            ("equipment.breakdown_reported", {"description"}),
            ("equipment.registered", set()),
        ]:
            spec = EVENTS.get(tag)
            assert spec is not None and set(spec.personal) == personal


class TestNotFound:
    @pytest.mark.parametrize(
        ("fn", "command"),
        [
            (decide.record_usage, cmd.RecordUsage(equipment_id=uuid4(), reading=1)),
            (
                decide.set_maintenance_plan,
                cmd.SetMaintenancePlan(equipment_id=uuid4(), every_days=1),
            ),
            (decide.record_maintenance, cmd.RecordMaintenance(equipment_id=uuid4(), kind="x")),
            (decide.report_breakdown, cmd.ReportBreakdown(equipment_id=uuid4(), failure_code="x")),
            (decide.retire, cmd.RetireEquipment(equipment_id=uuid4())),
        ],
    )
    def test_every_command_needs_registered_equipment(
        self, fn: Callable[..., list[DomainEvent]], command: cmd.EquipmentCommand
    ) -> None:
        with pytest.raises(err.EquipmentNotFound) as info:
            fn(EquipmentState(equipment_id=uuid4()), command, at=T0)
        assert info.value.code == "equipment_not_found"


class TestReadings:
    def test_readings_are_kept_in_business_time_order(self) -> None:
        s = read(read(registered(), 100, 10), 300, 30)
        assert [(r.at, r.value) for r in s.readings] == [(T0 + 10 * DAY, 100), (T0 + 30 * DAY, 300)]
        assert s.current_reading is not None and s.current_reading.value == 300
        assert s.last_occurred_at == T0  # readings do not move the lifecycle clock

    def test_a_late_reading_is_accepted_and_does_not_move_the_current_one_back(self) -> None:
        s = read(read(registered(), 100, 10), 300, 30)
        s = read(s, 200, 20)
        assert [r.value for r in s.readings] == [100, 200, 300]
        assert s.current_reading is not None and s.current_reading.at == T0 + 30 * DAY
        assert s.usage_at(T0 + 25 * DAY) == 200 and s.usage_at(T0) == 0
        assert s.version == 4

    def test_a_late_reading_is_accepted_after_a_later_lifecycle_event(self) -> None:
        s = maintain(registered(), 40)
        s = read(s, 50, 5)
        assert s.readings[0].value == 50 and s.last_occurred_at == T0 + 40 * DAY

    def test_lower_than_an_earlier_dated_reading_goes_backwards(self) -> None:
        s = read(registered(), 100, 10)
        with pytest.raises(err.ReadingGoesBackwards) as info:
            read(s, 99, 11)
        assert (info.value.other, info.value.other_at, info.value.code) == (
            100,
            T0 + 10 * DAY,
            "reading_goes_backwards",
        )

    def test_a_late_reading_above_a_later_dated_one_goes_backwards(self) -> None:
        s = read(read(registered(), 100, 10), 300, 30)
        with pytest.raises(err.ReadingGoesBackwards) as info:
            read(s, 301, 20)
        assert info.value.other == 300

    def test_the_same_reading_twice_decides_nothing(self) -> None:
        s = read(registered(), 100, 10)
        c = cmd.RecordUsage(equipment_id=s.equipment_id, reading=100)
        assert decide.record_usage(s, c, at=T0 + 10 * DAY) == []

    def test_after_retirement_only_earlier_dated_readings_are_kept(self) -> None:
        s = retired(registered(), 100)
        s = read(s, 500, 90)
        assert s.current_reading is not None and s.current_reading.value == 500
        with pytest.raises(err.EquipmentRetired):
            read(s, 600, 101)

    def test_a_reading_is_never_negative_on_the_wire(self) -> None:
        raw = b'{"equipment_id": "6f1c2e8a-0b8e-4c1e-9a51-3f2b8c7d6e5f", "reading": -1}'
        with pytest.raises(msgspec.ValidationError):
            msgspec.json.decode(raw, type=cmd.RecordUsage)

    @settings(max_examples=50, deadline=None)
    @given(st.lists(st.tuples(st.integers(0, 1000), st.integers(0, 10_000)), max_size=12))
    def test_accepted_readings_always_grow_with_time(self, raw: list[tuple[int, int]]) -> None:
        s = registered()
        for day, value in raw:
            try:
                s = read(s, float(value), day / 10)
            except err.ReadingGoesBackwards:
                continue
        values = [r.value for r in s.readings]
        assert values == sorted(values)
        assert [r.at for r in s.readings] == sorted(r.at for r in s.readings)


class TestPlanMaintenanceBreakdownRetire:
    def test_plan_is_set_and_the_same_plan_again_decides_nothing(self) -> None:
        s = plan(registered(), every_days=90, every_usage=500.0)
        assert (s.every_days, s.every_usage) == (90, 500.0)
        c = cmd.SetMaintenancePlan(equipment_id=s.equipment_id, every_days=90, every_usage=500.0)
        assert decide.set_maintenance_plan(s, c, at=T0) == []
        assert plan(s, 1, every_days=30).every_usage is None

    @pytest.mark.parametrize(
        "kw",
        [{}, {"every_days": 0}, {"every_usage": -1.0}, {"every_days": 30, "every_usage": 0.0}],
    )
    def test_an_invalid_plan_is_named(self, kw: dict[str, object]) -> None:
        with pytest.raises(err.InvalidPlan) as info:
            plan(registered(), **kw)
        assert info.value.code == "invalid_plan"

    def test_maintenance_is_recorded_and_ends_a_breakdown(self) -> None:
        s = break_down(registered(), 10)
        assert s.status == "broken_down"
        c = cmd.RecordMaintenance(equipment_id=s.equipment_id, kind="repair", notes="new pump")
        events = decide.record_maintenance(s, c, at=T0 + 11 * DAY)
        assert events == [ev.MaintenanceRecorded(kind="repair", notes="new pump")]
        s = apply(s, events, T0 + 11 * DAY)
        assert s.status == "in_service" and s.last_maintenance is not None
        assert (s.last_maintenance.at, s.last_maintenance.kind) == (T0 + 11 * DAY, "repair")

    def test_a_breakdown_keeps_the_failure_and_its_ticket(self) -> None:
        s = registered()
        ticket = uuid4()
        c = cmd.ReportBreakdown(equipment_id=s.equipment_id, failure_code="E42", description="leak")
        events = decide.report_breakdown(s, c, at=T0 + DAY, ticket_id=ticket)
        assert events == [
            ev.BreakdownReported(failure_code="E42", description="leak", ticket_id=ticket)
        ]
        s = apply(s, events, T0 + DAY)
        assert [(f.at, f.failure_code, f.ticket_id) for f in s.failures] == [
            (T0 + DAY, "E42", ticket)
        ]

    def test_retire_twice_decides_nothing_and_then_everything_else_is_refused(self) -> None:
        s = retired(registered(), 10)
        assert (s.status, s.retired_at) == ("retired", T0 + 10 * DAY)
        c = cmd.RetireEquipment(equipment_id=s.equipment_id)
        assert decide.retire(s, c, at=T0 + 20 * DAY) == []
        with pytest.raises(err.EquipmentRetired) as info:
            break_down(s, 20)
        assert info.value.code == "equipment_retired"
        with pytest.raises(err.EquipmentRetired):
            maintain(s, 20)
        with pytest.raises(err.EquipmentRetired):
            plan(s, 20, every_days=10)

    @pytest.mark.parametrize(
        "late",
        [
            lambda s: maintain(s, 5),
            lambda s: break_down(s, 5),
            lambda s: plan(s, 5, every_days=7),
            lambda s: retired(s, 5),
        ],
    )
    def test_a_lifecycle_event_before_the_last_one_is_refused(
        self, late: Callable[[EquipmentState], EquipmentState]
    ) -> None:
        s = maintain(registered(), 10)
        with pytest.raises(err.EventBeforeLast) as info:
            late(s)
        assert (info.value.last, info.value.at) == (T0 + 10 * DAY, T0 + 5 * DAY)
        assert info.value.code == "event_before_last"


class TestWear:
    def test_by_usage_or_by_age_whichever_is_further(self) -> None:
        s = registered()
        assert wear(s) is None
        s = read(s, 2_500, 365.25)  # a quarter of the usage, a tenth of the years
        assert wear(s) == pytest.approx(0.25)
        s = read(s, 2_600, 365.25 * 5)  # half the years, 26% of the usage
        assert wear(s) == pytest.approx(0.5)

    def test_only_one_measure_or_none(self) -> None:
        by_age = read(registered(expected_life_usage=None), 1_000_000, 365.25 * 2)
        assert wear(by_age) == pytest.approx(0.2)
        by_usage = read(registered(expected_life_years=None), 12_000, 1)
        assert wear(by_usage) == pytest.approx(1.2)
        neither = registered(expected_life_usage=None, expected_life_years=None)
        assert wear(read(neither, 10, 1)) is None

    def test_a_late_reading_does_not_change_wear(self) -> None:
        s = read(registered(expected_life_years=None), 5_000, 100)
        assert wear(read(s, 1_000, 10)) == pytest.approx(0.5)


class TestNextMaintenance:
    def test_no_plan_no_date(self) -> None:
        assert next_maintenance_due(registered(), 10.0) is None

    def test_by_days_from_installation_then_from_the_last_maintenance(self) -> None:
        s = plan(registered(), every_days=90)
        assert next_maintenance_due(s, None) == T0 + 90 * DAY
        assert next_maintenance_due(maintain(s, 80), None) == T0 + 170 * DAY

    def test_by_usage_at_the_given_rate_from_the_current_reading(self) -> None:
        s = read(plan(registered(), every_usage=1_000.0), 400, 20)
        # 600 units left at 50 a day: 12 days after the reading
        assert next_maintenance_due(s, 50.0) == T0 + 32 * DAY
        assert next_maintenance_due(s, None) is None
        assert next_maintenance_due(s, 0.0) is None

    def test_by_usage_counts_from_the_usage_at_the_last_maintenance(self) -> None:
        s = read(plan(registered(), every_usage=1_000.0), 400, 20)
        s = maintain(s, 25)  # usage then is 400: next at 1400
        s = read(s, 900, 30)
        assert next_maintenance_due(s, 100.0) == T0 + 35 * DAY
        fresh = maintain(plan(registered(), every_usage=100.0), 10)  # no reading since
        assert next_maintenance_due(fresh, 10.0) == T0 + 20 * DAY

    def test_the_earlier_of_both_and_overdue_dates_are_in_the_past(self) -> None:
        s = read(plan(registered(), every_days=90, every_usage=1_000.0), 400, 20)
        assert next_maintenance_due(s, 50.0) == T0 + 32 * DAY
        assert next_maintenance_due(s, 1.0) == T0 + 90 * DAY
        over = read(s, 1_200, 30)
        assert next_maintenance_due(over, 20.0) == T0 + 20 * DAY

    def test_retired_equipment_is_not_due(self) -> None:
        s = retired(plan(registered(), every_days=90), 10)
        assert next_maintenance_due(s, None) is None

    def test_the_observed_rate(self) -> None:
        s = registered()
        assert observed_usage_rate(s) is None
        s = read(s, 100, 10)
        assert observed_usage_rate(s) == pytest.approx(10.0)
        assert observed_usage_rate(read(s, 500, 30)) == pytest.approx(20.0)


class TestWarrantyAndFailures:
    @pytest.mark.parametrize(
        ("now", "days", "expected"),
        [
            (datetime(2027, 12, 1, tzinfo=UTC), 30, False),
            (datetime(2027, 12, 2, tzinfo=UTC), 30, True),
            (datetime(2027, 12, 31, 23, 59), 1, True),  # naive is UTC
            (datetime(2028, 1, 1, tzinfo=UTC), 30, False),  # already ended
            (datetime(2026, 6, 1, tzinfo=UTC), 30, False),
        ],
    )
    def test_warranty_ends_within_a_half_open_window(
        self, now: datetime, days: int, expected: bool
    ) -> None:
        s = registered()
        assert warranty_ends_at(s) == datetime(2028, 1, 1, tzinfo=UTC)
        assert warranty_ends_within(s, now, days) is expected

    def test_no_warranty_or_retired_never_ends_within(self) -> None:
        now = datetime(2027, 12, 20, tzinfo=UTC)
        assert not warranty_ends_within(registered(warranty_end=None), now, 30)
        assert not warranty_ends_within(retired(registered(), 10), now, 30)

    def test_mtbf_is_time_in_service_over_failures(self) -> None:
        s = registered()
        assert mtbf(s, T0 + 100 * DAY) is None
        s = break_down(maintain(break_down(s, 10), 11), 40)
        assert [f.at for f in s.failures] == [T0 + 10 * DAY, T0 + 40 * DAY]
        assert mtbf(s, T0 + 100 * DAY) == 50 * DAY
        assert mtbf(retired(s, 60), T0 + 100 * DAY) == 30 * DAY

    def test_time_in_service_runs_from_installation_to_retirement_or_until(self) -> None:
        s = registered()
        assert time_in_service(EquipmentState(equipment_id=uuid4()), T0) == timedelta(0)
        assert time_in_service(s, T0 + 100 * DAY) == 100 * DAY
        assert time_in_service(s, T0 - DAY) == timedelta(0)  # not installed yet then
        assert time_in_service(retired(s, 60), T0 + 100 * DAY) == 60 * DAY
        assert time_in_service(retired(s, 60), T0 + 30 * DAY) == 30 * DAY
