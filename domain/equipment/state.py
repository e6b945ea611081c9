"""Equipment as decisions and views need it, folded from its stream; pure helpers for wear,
maintenance due dates, warranty windows and failures.

Readings are kept in business-time order, so a late one lands in its place and the current
reading stays the latest-dated one. `last_occurred_at` is the time of the last lifecycle event
(every event but a reading): the point no later lifecycle event may precede.
"""

from __future__ import annotations

from bisect import bisect_right, insort
from datetime import UTC, date, datetime, time, timedelta
from uuid import UUID

import msgspec
from msgspec.structs import replace

from domain.equipment import events as ev
from domain.events import DomainEvent

YEAR = timedelta(days=365.25)


class Reading(msgspec.Struct, frozen=True, kw_only=True, order=True):
    at: datetime
    value: float


class Maintenance(msgspec.Struct, frozen=True, kw_only=True):
    at: datetime
    kind: str


class Failure(msgspec.Struct, frozen=True, kw_only=True):
    at: datetime
    failure_code: str
    ticket_id: UUID | None = None


class EquipmentState(msgspec.Struct, frozen=True, kw_only=True):
    equipment_id: UUID
    version: int = 0
    customer_id: UUID | None = None
    model: str | None = None
    serial: str | None = None
    installed_at: datetime | None = None
    warranty_end: date | None = None
    expected_life_usage: float | None = None
    expected_life_years: float | None = None
    status: ev.EquipmentStatus | None = None
    every_days: int | None = None
    every_usage: float | None = None
    readings: tuple[Reading, ...] = ()
    maintenances: tuple[Maintenance, ...] = ()
    failures: tuple[Failure, ...] = ()
    registered_at: datetime | None = None
    retired_at: datetime | None = None
    last_occurred_at: datetime | None = None

    @property
    def registered(self) -> bool:
        return self.status is not None

    @property
    def current_reading(self) -> Reading | None:
        """The latest-dated reading: a late one never replaces it."""
        return self.readings[-1] if self.readings else None

    @property
    def last_maintenance(self) -> Maintenance | None:
        return self.maintenances[-1] if self.maintenances else None

    def usage_at(self, at: datetime) -> float:
        """The latest reading dated at or before `at`; zero (as at installation) if none."""
        i = bisect_right(self.readings, at, key=lambda r: r.at)
        return self.readings[i - 1].value if i else 0.0


def _utc(t: datetime) -> datetime:
    return t if t.tzinfo is not None else t.replace(tzinfo=UTC)


def wear(state: EquipmentState) -> float | None:
    """How much of its expected life the equipment has used at the current reading: usage over
    expected usage, or age at that reading over expected years; the larger when both are known
    (whichever runs out first). 1.0 is the end of expected life; above it is beyond. None
    without a reading or an expected life."""
    current = state.current_reading
    if current is None or state.installed_at is None:
        return None
    shares: list[float] = []
    if state.expected_life_usage:
        shares.append(current.value / state.expected_life_usage)
    if state.expected_life_years:
        age = max(current.at - state.installed_at, timedelta(0))
        shares.append(age / (YEAR * state.expected_life_years))
    return max(shares) if shares else None


def observed_usage_rate(state: EquipmentState) -> float | None:
    """Units per day between the first and the current reading (from installation at zero when
    there is one reading only); None when no time has passed between them."""
    current = state.current_reading
    if current is None or state.installed_at is None:
        return None
    first = (
        state.readings[0] if len(state.readings) > 1 else Reading(at=state.installed_at, value=0.0)
    )
    days = (current.at - first.at) / timedelta(days=1)
    return (current.value - first.value) / days if days > 0 else None


def next_maintenance_due(
    state: EquipmentState, usage_rate_per_day: float | None
) -> datetime | None:
    """When the plan next asks for maintenance: the earlier of
    - by days: the last maintenance (or the installation) plus `every_days`;
    - by usage: the moment usage reaches the usage at the last maintenance (the latest reading
      dated at or before it; zero at installation) plus `every_usage`, extrapolated at
      `usage_rate_per_day` from the current reading (or from the maintenance, if no reading is
      later). With no rate, or a rate of zero or less, usage gives no date.
    May be in the past (overdue). None when retired, unregistered or without a plan."""
    if state.installed_at is None or state.status == "retired":
        return None
    last = state.last_maintenance
    base = last.at if last is not None else state.installed_at
    candidates: list[datetime] = []
    if state.every_days is not None:
        candidates.append(base + timedelta(days=state.every_days))
    if state.every_usage is not None and usage_rate_per_day is not None and usage_rate_per_day > 0:
        target = state.usage_at(base) + state.every_usage
        current = state.current_reading
        ref = current if current is not None and current.at >= base else None
        ref_at, ref_value = (ref.at, ref.value) if ref else (base, state.usage_at(base))
        candidates.append(ref_at + timedelta(days=(target - ref_value) / usage_rate_per_day))
    return min(candidates) if candidates else None


def warranty_ends_at(state: EquipmentState) -> datetime | None:
    """The warranty covers its end date whole: it ends at the start of the next day (UTC)."""
    if state.warranty_end is None:
        return None
    return datetime.combine(state.warranty_end + timedelta(days=1), time(), tzinfo=UTC)


def warranty_ends_within(state: EquipmentState, now: datetime, days: int) -> bool:
    """The warranty is still running at `now` and ends within `days` days: in (now, now + days]
    (naive `now` is UTC). Retired equipment has no warranty to remind of."""
    ends = warranty_ends_at(state)
    if ends is None or state.status == "retired":
        return False
    now = _utc(now)
    return now < ends <= now + timedelta(days=days)


def mtbf(state: EquipmentState, until: datetime) -> timedelta | None:
    """Mean time between failures: time in service (installation to retirement or `until`)
    divided by the number of failures; None before the first failure."""
    if not state.failures or state.installed_at is None:
        return None
    end = state.retired_at if state.retired_at is not None else until
    return max(end - state.installed_at, timedelta(0)) / len(state.failures)


def time_in_service(state: EquipmentState, until: datetime) -> timedelta:
    """Installation to retirement or `until`, whichever is first; zero if not yet installed.
    A fleet's MTBF is the sum of its units' times over the sum of their failures."""
    if state.installed_at is None:
        return timedelta(0)
    end = state.retired_at if state.retired_at is not None and state.retired_at < until else until
    return max(end - state.installed_at, timedelta(0))


def evolve(state: EquipmentState, event: DomainEvent, at: datetime) -> EquipmentState:
    """Apply one event of the equipment's stream, which happened at business time `at` (pure)."""
    match event:
        case ev.EquipmentRegistered():
            return replace(
                state,
                customer_id=event.customer_id,
                model=event.model,
                serial=event.serial,
                installed_at=event.installed_at,
                warranty_end=event.warranty_end,
                expected_life_usage=event.expected_life_usage,
                expected_life_years=event.expected_life_years,
                status="in_service",
                registered_at=at,
            )
        case ev.UsageRecorded():
            reading = Reading(at=at, value=event.reading)
            if not state.readings or state.readings[-1] <= reading:  # the usual, in order
                return replace(state, readings=(*state.readings, reading))
            readings = list(state.readings)
            insort(readings, reading)  # a late reading: in (at, value) order
            return replace(state, readings=tuple(readings))
        case ev.MaintenancePlanSet():
            return replace(state, every_days=event.every_days, every_usage=event.every_usage)
        case ev.MaintenanceRecorded():
            status = "in_service" if state.status == "broken_down" else state.status
            done = Maintenance(at=at, kind=event.kind)
            return replace(state, maintenances=(*state.maintenances, done), status=status)
        case ev.BreakdownReported():
            failure = Failure(at=at, failure_code=event.failure_code, ticket_id=event.ticket_id)
            return replace(state, failures=(*state.failures, failure), status="broken_down")
        case ev.EquipmentRetired():
            return replace(state, status="retired", retired_at=at)
    return state


def fold(
    equipment_id: UUID,
    events: list[tuple[int, datetime, DomainEvent]],
    start: EquipmentState | None = None,
) -> EquipmentState:
    """State after (version, occurred_at, payload) triples in version order, from `start`
    (a state folded earlier, whose version the first triple follows) or from nothing."""
    state = start if start is not None else EquipmentState(equipment_id=equipment_id)
    for version, occurred_at, payload in events:
        state = replace(evolve(state, payload, occurred_at), version=version)
        if not isinstance(payload, ev.UsageRecorded):
            state = replace(state, last_occurred_at=occurred_at)
    return state
