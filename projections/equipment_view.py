"""`equipment`: every piece of equipment as facts at business time, its status now, the
maintenance due now, and the report over them.

- `equipment_facts`: one row per equipment event (and per merge of customers), so the report
  folds each machine with the domain's `fold` as of any date: wear against expected life, next
  maintenance due, failures and MTBF per model, warranties ending soon, counts by status.
- `equipment_status`: one row per machine as its events stand, rewritten for the machines a
  page touches (their earlier facts read in one query, then the page's events folded on).
- `equipment_maintenance_due`: the machines whose maintenance is due now, kept by timers: each
  touched machine sets one at its next due date; a maintenance, a new plan or a reading that
  moves the date replaces it; retirement cancels it. Nothing rescans the fleet as time passes.

Customers are kept as registered in the live tables; the report and `customer_equipment`
follow merges (a merged customer's machines count for the survivor).
"""

from __future__ import annotations

from collections import Counter, defaultdict
from datetime import date, datetime, timedelta
from typing import Any
from uuid import UUID

import msgspec

from domain.customers import events as cev
from domain.envelope import Envelope
from domain.equipment import events as ev
from domain.equipment.state import (
    EquipmentState,
    fold,
    next_maintenance_due,
    observed_usage_rate,
    time_in_service,
    warranty_ends_within,
    wear,
)
from domain.events import DomainEvent
from projections.facts import FactTable, decode_fact, fold_streams, read_facts, survivors
from projections.ports import Dialect, ProjectionDB
from projections.projection import Tables, Timer

EQUIPMENT_EVENTS = (
    ev.EquipmentRegistered,
    ev.UsageRecorded,
    ev.MaintenancePlanSet,
    ev.MaintenanceRecorded,
    ev.BreakdownReported,
    ev.EquipmentRetired,
)
STATUS_COLUMNS = (
    "equipment_id",
    "customer_id",
    "model",
    "serial",
    "installed_at",
    "warranty_end",
    "status",
    "usage",
    "wear",
    "next_maintenance_due",
    "failures",
    "last_failure_at",
)
DUE_COLUMNS = ("equipment_id", "customer_id", "model", "due_at", "detected_at")
DAY = timedelta(days=1)


def next_due(state: EquipmentState) -> datetime | None:
    """The plan's next due date, a usage-based one projected at the observed rate."""
    if not state.registered:
        return None
    return next_maintenance_due(state, observed_usage_rate(state))


class EquipmentView(FactTable):
    clock_dependent = frozenset({"equipment_maintenance_due"})
    name = "equipment"
    version = 1
    event_types = (*EQUIPMENT_EVENTS, cev.CustomerMergedInto, cev.CustomerUnmerged)
    extra_tables = {
        "equipment_status": (
            "equipment_id {uuid} PRIMARY KEY, customer_id {uuid}, model {text}, serial {text}, "
            "installed_at {ts}, warranty_end {date}, status {text}, usage {real}, wear {real}, "
            "next_maintenance_due {ts}, failures {int}, last_failure_at {ts}"
        ),
        "equipment_maintenance_due": (
            "equipment_id {uuid} PRIMARY KEY, customer_id {uuid}, model {text}, due_at {ts}, "
            "detected_at {ts}"
        ),
    }

    def __init__(self, cache: int = 200_000) -> None:
        self.capacity = cache
        self._states: dict[UUID, EquipmentState] = {}  # folded up to `_at`
        self._at: tuple[int, int] | None = None  # (generation, position) the cache is right at

    def committed(self, generation: int, position: int) -> None:
        self._at = (generation, position)

    def forget_cache(self) -> None:
        self._states, self._at = {}, None

    def apply(self, t: Tables, events: list[Envelope[Any]], now: datetime) -> None:
        super().apply(t, events, now)
        if self._at != (t.generation, t.position) or len(self._states) > self.capacity:
            self._states = {}  # rows changed elsewhere (or too many kept): fold them again
        self._at = None  # until this page commits
        page: dict[UUID, list[tuple[int, datetime, DomainEvent]]] = defaultdict(list)
        maintained: set[UUID] = set()
        for e in events:
            if isinstance(e.payload, EQUIPMENT_EVENTS):
                page[e.stream_id].append((e.version, e.occurred_at, e.payload))
                if isinstance(e.payload, ev.MaintenanceRecorded):
                    maintained.add(e.stream_id)
        if not page:
            return
        cached = self._states
        missing = [i for i in page if i not in cached]
        d = t.dialect
        earlier: dict[UUID, list[tuple[int, datetime, DomainEvent]]] = defaultdict(list)
        for stream_id, at, tag, data in t.fetch_in(  # facts before this page, one query
            f"SELECT stream_id, at, type, data FROM {{equipment_facts}} "
            f"WHERE position <= {int(t.position)} AND {{in}} ORDER BY position",
            "stream_id",
            missing,
        ):
            folded = earlier[d.uuid(stream_id)]  # type: ignore[index]
            folded.append((len(folded) + 1, d.ts(at), decode_fact(tag, data)))  # type: ignore[arg-type]
        states = {}
        for stream_id, new in page.items():
            prior = cached.get(stream_id)
            if prior is None:
                states[stream_id] = fold(stream_id, earlier.get(stream_id, []) + new)
            else:
                states[stream_id] = fold(stream_id, new, prior)
            cached[stream_id] = states[stream_id]
        t.replace_rows(
            "equipment_status",
            "equipment_id",
            STATUS_COLUMNS,
            [_status_row(s) for s in states.values() if s.registered],
        )
        self._keep_due(t, d, states, maintained)

    def _keep_due(
        self, t: Tables, d: Dialect, states: dict[UUID, EquipmentState], maintained: set[UUID]
    ) -> None:
        """A timer at each touched machine's next due date; a due row whose date moved (or
        that a maintenance answered) goes, and its timer brings it back when the new date
        passes. A row still at the same date stays as it was detected."""
        shown = {
            d.uuid(i): d.ts(due)
            for i, due in t.fetch_in(
                "SELECT equipment_id, due_at FROM {equipment_maintenance_due} WHERE {in}",
                "equipment_id",
                list(states),
            )
        }
        stale = []
        for stream_id, s in states.items():
            key = f"due:{stream_id}"
            due = next_due(s)
            if due is None:
                t.cancel(key)
            elif shown.get(stream_id) == due and stream_id not in maintained:
                continue
            else:
                row = [str(stream_id), str(s.customer_id or ""), s.model or "", due.isoformat()]
                t.schedule(key, due, msgspec.json.encode(row).decode())
            if stream_id in shown:
                stale.append(stream_id)
        if stale:  # one statement per page
            t.execute_in(
                "DELETE FROM {equipment_maintenance_due} WHERE {in}", "equipment_id", stale
            )

    def on_timers(self, t: Tables, timers: list[Timer], now: datetime) -> None:
        """A machine's due date passed with no maintenance (which would have moved it)."""
        rows = []
        for timer in timers:
            equipment_id, customer_id, model, due = msgspec.json.decode(timer.payload)
            rows.append(
                (
                    UUID(equipment_id),
                    UUID(customer_id) if customer_id else None,
                    model,
                    datetime.fromisoformat(due),
                    now,
                )
            )
        t.replace_rows("equipment_maintenance_due", "equipment_id", DUE_COLUMNS, rows)


def _status_row(s: EquipmentState) -> tuple[object, ...]:
    current = s.current_reading
    return (
        s.equipment_id,
        s.customer_id,
        s.model,
        s.serial,
        s.installed_at,
        s.warranty_end,
        s.status,
        current.value if current is not None else 0.0,
        wear(s),
        next_due(s),
        len(s.failures),
        s.failures[-1].at if s.failures else None,
    )


# -- the report -------------------------------------------------------------------------


class EquipmentWear(msgspec.Struct, frozen=True, kw_only=True):
    equipment_id: UUID
    customer_id: UUID | None
    model: str
    usage: float
    wear: float
    expected_life_usage: float | None
    expected_life_years: float | None


class MaintenanceDue(msgspec.Struct, frozen=True, kw_only=True):
    equipment_id: UUID
    customer_id: UUID | None
    model: str
    due_at: datetime
    overdue: bool
    last_maintenance_at: datetime | None


class ModelFailures(msgspec.Struct, frozen=True, kw_only=True):
    """`mtbf_days`: the fleet's time in service (installation to retirement or the report's
    date, summed over every unit of the model, those that never failed included) over its
    failures; None without failures."""

    model: str
    units: int
    failures: int
    operating_days: float
    mtbf_days: float | None


class WarrantyEnding(msgspec.Struct, frozen=True, kw_only=True):
    equipment_id: UUID
    customer_id: UUID | None
    model: str
    warranty_end: date


class EquipmentReport(msgspec.Struct, frozen=True, kw_only=True):
    as_of: datetime
    total: int
    by_status: dict[str, int]
    most_worn: list[EquipmentWear]
    maintenance: list[MaintenanceDue]
    failures_by_model: list[ModelFailures]
    warranties_ending: list[WarrantyEnding]


class EquipmentSummary(msgspec.Struct, frozen=True, kw_only=True):
    equipment_id: UUID
    customer_id: UUID | None
    model: str | None
    serial: str | None
    installed_at: datetime | None
    status: str | None
    usage: float
    wear: float | None
    next_maintenance_due: datetime | None
    failures: int
    warranty_end: date | None


class DueNow(msgspec.Struct, frozen=True, kw_only=True):
    equipment_id: UUID
    customer_id: UUID | None
    model: str
    due_at: datetime
    detected_at: datetime


def equipment_states(
    db: ProjectionDB, as_of: datetime | None = None
) -> tuple[dict[UUID, EquipmentState], dict[UUID, UUID]]:
    """Every registered machine's state at `as_of` (business time) and the merges then."""
    facts = read_facts(db, "equipment", as_of=as_of)
    states = fold_streams(facts, fold, EQUIPMENT_EVENTS)
    return {k: s for k, s in states.items() if s.registered}, survivors(facts)


def equipment_report(
    db: ProjectionDB,
    *,
    now: datetime,
    as_of: datetime | None = None,
    warranty_days: int = 60,
    top: int = 10,
) -> EquipmentReport:
    """The fleet as known at `as_of` (default: now; nothing dated after it counts). Retired
    machines count in the status counts and in failures per model only."""
    at = as_of or now
    states, merged = equipment_states(db, at)

    def owner(s: EquipmentState) -> UUID | None:
        return merged.get(s.customer_id, s.customer_id) if s.customer_id else None

    active = [s for s in states.values() if s.status != "retired"]
    worn = []
    for s in active:
        w = wear(s)
        if w is not None:
            current = s.current_reading
            worn.append(
                EquipmentWear(
                    equipment_id=s.equipment_id,
                    customer_id=owner(s),
                    model=s.model or "",
                    usage=current.value if current is not None else 0.0,
                    wear=w,
                    expected_life_usage=s.expected_life_usage,
                    expected_life_years=s.expected_life_years,
                )
            )
    worn.sort(key=lambda x: (-x.wear, str(x.equipment_id)))
    due = []
    for s in active:
        when = next_due(s)
        if when is not None:
            last = s.last_maintenance
            due.append(
                MaintenanceDue(
                    equipment_id=s.equipment_id,
                    customer_id=owner(s),
                    model=s.model or "",
                    due_at=when,
                    overdue=when <= at,
                    last_maintenance_at=last.at if last is not None else None,
                )
            )
    due.sort(key=lambda x: (x.due_at, str(x.equipment_id)))
    units: Counter[str] = Counter()
    failures: Counter[str] = Counter()
    operating: dict[str, timedelta] = defaultdict(timedelta)
    for s in states.values():
        model = s.model or ""
        units[model] += 1
        failures[model] += len(s.failures)
        operating[model] += time_in_service(s, at)
    by_model = sorted(
        (
            ModelFailures(
                model=m,
                units=n,
                failures=failures[m],
                operating_days=round(operating[m] / DAY, 4),
                mtbf_days=round(operating[m] / DAY / failures[m], 4) if failures[m] else None,
            )
            for m, n in units.items()
        ),
        key=lambda x: (-x.failures, x.model),
    )
    warranties = sorted(
        (
            WarrantyEnding(
                equipment_id=s.equipment_id,
                customer_id=owner(s),
                model=s.model or "",
                warranty_end=s.warranty_end,
            )
            for s in states.values()
            if s.warranty_end is not None and warranty_ends_within(s, at, warranty_days)
        ),
        key=lambda x: (x.warranty_end, str(x.equipment_id)),
    )
    statuses = Counter(str(s.status) for s in states.values())
    return EquipmentReport(
        as_of=at,
        total=len(states),
        by_status=dict(sorted(statuses.items())),
        most_worn=worn[:top],
        maintenance=due,
        failures_by_model=by_model,
        warranties_ending=warranties,
    )


def customer_equipment(
    db: ProjectionDB, customer_id: UUID, *, now: datetime, as_of: datetime | None = None
) -> list[EquipmentSummary]:
    """One customer's machines (and those of the customers merged into it), oldest first."""
    at = as_of or now
    states, merged = equipment_states(db, at)
    mine = [
        s
        for s in states.values()
        if s.customer_id is not None and merged.get(s.customer_id, s.customer_id) == customer_id
    ]
    out = []
    for s in sorted(mine, key=lambda s: (s.installed_at or at, str(s.equipment_id))):
        current = s.current_reading
        out.append(
            EquipmentSummary(
                equipment_id=s.equipment_id,
                customer_id=s.customer_id,
                model=s.model,
                serial=s.serial,
                installed_at=s.installed_at,
                status=s.status,
                usage=current.value if current is not None else 0.0,
                wear=wear(s),
                next_maintenance_due=next_due(s),
                failures=len(s.failures),
                warranty_end=s.warranty_end,
            )
        )
    return out


def maintenance_due_now(db: ProjectionDB) -> list[DueNow]:
    """The live table the timers keep: machines due for maintenance by the projector's clock."""
    d = db.dialect
    rows = db.fetch(
        f"SELECT {', '.join(DUE_COLUMNS)} FROM {d.qualify('equipment_maintenance_due')} "
        "ORDER BY due_at, equipment_id"
    )
    return [
        DueNow(
            equipment_id=d.uuid(i),  # type: ignore[arg-type]
            customer_id=d.uuid(c),
            model=m,
            due_at=d.ts(due),  # type: ignore[arg-type]
            detected_at=d.ts(seen),  # type: ignore[arg-type]
        )
        for i, c, m, due, seen in rows
    ]
