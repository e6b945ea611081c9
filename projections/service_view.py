"""`service`: every ticket event as facts at business time, the service report over them, and
the SLA breaches as the clock passes them.

- `service_facts`: one row per ticket event (and per merge of customers; free text is personal
  and left out), so the report folds each ticket with the domain's `fold` as of any date:
  backlog per agent and severity, SLA compliance, times to first response and resolution,
  tickets opened per category and kind, and the breaches then (`domain.tickets.sla`).
- `service_breaches`: the breaches seen so far, kept by timers: each ticket an event touches is
  folded (from the page if it opened there, else from its facts: one query per page) and sets
  one timer at its next SLA deadline, so a breach appears when
  only the clock moves, with no rescan of every ticket. A breach stays a breach: one met late
  stays, one of an attempt a reopening replaced is kept (the reopening records it), and the
  primary key holds the due time, since each attempt has its own resolution deadline. Only a
  breach the log later contradicts goes (an event recorded after the clock passed the due
  time, dated before it: a catch-up's earlier pages, a late import).
"""

from __future__ import annotations

import statistics
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

import msgspec

from domain.customers import events as cev
from domain.envelope import Envelope
from domain.events import DomainEvent
from domain.tickets import events as tev
from domain.tickets.events import Severity
from domain.tickets.sla import (
    DEFAULT_POLICIES,
    Breach,
    SlaPolicy,
    breaches,
    first_response_due,
    first_response_met_at,
    next_deadline,
    policy_for,
    resolution_due,
)
from domain.tickets.state import TicketState, fold
from projections.facts import FactTable, decode_fact, fold_streams, read_facts
from projections.ports import ProjectionDB
from projections.projection import Tables, Timer

TICKET_EVENTS = (
    tev.TicketOpened,
    tev.TicketAssigned,
    tev.TicketResponded,
    tev.TicketEscalated,
    tev.TicketResolved,
    tev.TicketReopened,
    tev.TicketClosed,
)
_TICKET_TAGS = frozenset(t.__struct_config__.tag for t in TICKET_EVENTS)
BREACH_COLUMNS = ("ticket_id", "clock", "due_at", "detected_at", "severity")
SEVERITIES: tuple[Severity, ...] = ("critical", "high", "normal", "low")
UNASSIGNED = "unassigned"
_TIMER = "sla:"


class ServiceView(FactTable):
    clock_dependent = frozenset({"service_breaches"})
    name = "service"
    version = 1
    event_types = (*TICKET_EVENTS, cev.CustomerMergedInto, cev.CustomerUnmerged)
    extra_tables = {
        "service_breaches": (
            "ticket_id {uuid} NOT NULL, clock {text} NOT NULL, due_at {ts} NOT NULL, "
            "detected_at {ts} NOT NULL, severity {text} NOT NULL, "
            "PRIMARY KEY (ticket_id, clock, due_at)"
        )
    }
    policies: Mapping[Severity, SlaPolicy] = DEFAULT_POLICIES

    def apply(self, t: Tables, events: list[Envelope[Any]], now: datetime) -> None:
        super().apply(t, events, now)  # the page's facts are in: the read below sees them
        page: dict[UUID, list[tuple[datetime, DomainEvent]]] = {}
        for e in events:
            if e.type in _TICKET_TAGS:
                page.setdefault(e.stream_id, []).append((e.occurred_at, e.payload))
        # a ticket opened in this page has all its events here and no rows yet; the others
        # are read from their facts (one query for the page)
        new = {k: v for k, v in page.items() if isinstance(v[0][1], tev.TicketOpened)}
        older = [k for k in page if k not in new]
        folded = _ticket_events(t, older)
        folded.update(new)
        if folded:
            self._evaluate(t, folded, older, now)

    def on_timers(self, t: Tables, timers: list[Timer], now: datetime) -> None:
        """A ticket's SLA deadline passed: whatever was met since cancelled or moved it."""
        tickets = [UUID(timer.key.removeprefix(_TIMER)) for timer in timers]
        self._evaluate(t, _ticket_events(t, tickets), tickets, now)

    def _evaluate(
        self,
        t: Tables,
        tickets: Mapping[UUID, list[tuple[datetime, DomainEvent]]],
        held_by: Sequence[UUID],
        now: datetime,
    ) -> None:
        """Fold the tickets, make their rows the breaches known at `now` (`held_by`: those
        that may have rows already), and set each ticket's timer at its next deadline (or
        drop it when nothing is left to breach). A breach met late stays; one an event
        recorded later shows met in time (the log lagged the clock: a catch-up's earlier
        pages, a late import) goes."""
        found: dict[tuple[UUID, str, datetime], tuple[object, ...]] = {}
        for ticket_id, events in tickets.items():
            state, earlier = fold_with_attempts(ticket_id, events, self.policies)
            for b in [*earlier, *breaches(state, self.policies, now)]:
                row = (ticket_id, b.sla, b.since, now, state.severity)
                found[(ticket_id, b.sla, b.since)] = row
            due = next_deadline(state, self.policies, after=now)
            if due is None:
                t.cancel(_TIMER + str(ticket_id))
            else:
                t.schedule(_TIMER + str(ticket_id), due)
        d = t.dialect
        held = t.fetch_in(
            "SELECT ticket_id, clock, due_at FROM {service_breaches} WHERE {in}",
            "ticket_id",
            list(held_by),
        )
        stale = [
            key for key in ((d.uuid(k), c, d.ts(due)) for k, c, due in held) if key not in found
        ]
        t.executemany(
            "DELETE FROM {service_breaches} WHERE ticket_id = ? AND clock = ? AND due_at = ?",
            stale,
        )
        t.executemany(
            f"INSERT INTO {{service_breaches}} ({', '.join(BREACH_COLUMNS)}) "
            "VALUES (?, ?, ?, ?, ?) ON CONFLICT (ticket_id, clock, due_at) DO NOTHING",
            list(found.values()),
        )


def _ticket_events(
    t: Tables, tickets: Sequence[UUID]
) -> dict[UUID, list[tuple[datetime, DomainEvent]]]:
    """The events of these tickets, from their facts (one query), in log order."""
    d = t.dialect
    rows = t.fetch_in(
        "SELECT stream_id, type, at, data FROM {service_facts} WHERE {in} ORDER BY position",
        "stream_id",
        list(tickets),
    )
    by_ticket: dict[UUID, list[tuple[datetime, DomainEvent]]] = defaultdict(list)
    for stream_id, tag, at, data in rows:
        by_ticket[d.uuid(stream_id)].append((d.ts(at), decode_fact(tag, data)))  # type: ignore[index]
    return by_ticket


def fold_with_attempts(
    ticket_id: UUID,
    events: Iterable[tuple[datetime, DomainEvent]],
    policies: Mapping[Severity, SlaPolicy] = DEFAULT_POLICIES,
) -> tuple[TicketState, list[Breach]]:
    """The ticket folded with the domain's `fold`, and the breaches of resolution attempts a
    reopening ended (the domain's `breaches` only sees the current attempt)."""
    state = TicketState(ticket_id=ticket_id)
    earlier: list[Breach] = []
    for version, (at, payload) in enumerate(events, start=1):
        if isinstance(payload, tev.TicketReopened) and state.opened:
            earlier.extend(b for b in breaches(state, policies, at) if b.sla == "resolution")
        state = fold(ticket_id, [(version, at, payload)], state)
    return state, earlier


# -- the report -------------------------------------------------------------------------


class AgentBacklog(msgspec.Struct, frozen=True, kw_only=True):
    agent: str
    total: int
    by_severity: dict[str, int]


class SlaCompliance(msgspec.Struct, frozen=True, kw_only=True):
    """Of the opened tickets (the current resolution attempt for `resolution`): met before
    the due time, breached (due time passed, met late or not yet), pending (not due yet);
    `share_met` among the decided ones."""

    severity: str  # or "all"
    sla: str
    met: int
    breached: int
    pending: int
    share_met: float | None


class Durations(msgspec.Struct, frozen=True, kw_only=True):
    """Hours from opening to the first response (or a resolution, if earlier: what stops the
    first-response SLA), and from opening to the resolution of tickets resolved now."""

    severity: str  # or "all"
    first_responses: int
    first_response_mean_hours: float | None
    first_response_median_hours: float | None
    resolutions: int
    resolution_mean_hours: float | None
    resolution_median_hours: float | None


class TicketBreach(msgspec.Struct, frozen=True, kw_only=True):
    ticket_id: UUID
    sla: str
    severity: str
    agent: str
    since: datetime
    until: datetime | None


class ServiceReport(msgspec.Struct, frozen=True, kw_only=True):
    as_of: datetime
    open_tickets: int
    backlog: list[AgentBacklog]
    compliance: list[SlaCompliance]
    durations: list[Durations]
    opened_by_category: dict[str, int]
    opened_by_kind: dict[str, int]
    breaches: list[TicketBreach]


class BreachRow(msgspec.Struct, frozen=True, kw_only=True):
    ticket_id: UUID
    clock: str
    due_at: datetime
    detected_at: datetime
    severity: str


def ticket_states(db: ProjectionDB, as_of: datetime | None = None) -> dict[UUID, TicketState]:
    """Every ticket's state at `as_of` (business time)."""
    facts = read_facts(db, "service", as_of=as_of, types=_TICKET_TAGS)
    return {k: s for k, s in fold_streams(facts, fold, TICKET_EVENTS).items() if s.opened}


def _outcome(due: datetime | None, met_at: datetime | None, at: datetime) -> str:
    if due is None:
        return "pending"
    if met_at is not None and met_at < due:
        return "met"
    return "breached" if at >= due else "pending"


def _hours(spans: list[timedelta]) -> tuple[float | None, float | None]:
    hours = [s.total_seconds() / 3600 for s in spans]
    return (statistics.fmean(hours), statistics.median(hours)) if hours else (None, None)


def service_report(
    db: ProjectionDB,
    *,
    now: datetime,
    as_of: datetime | None = None,
    policies: Mapping[Severity, SlaPolicy] = DEFAULT_POLICIES,
) -> ServiceReport:
    """Tickets as known at `as_of` (default: now; nothing dated after it counts)."""
    at = as_of or now
    states = sorted(ticket_states(db, at).values(), key=lambda s: str(s.ticket_id))
    backlog: dict[str, Counter[str]] = defaultdict(Counter)
    outcomes: dict[tuple[str, str], Counter[str]] = defaultdict(Counter)
    first: dict[str, list[timedelta]] = defaultdict(list)
    resolved: dict[str, list[timedelta]] = defaultdict(list)
    found: list[TicketBreach] = []
    for s in states:
        assert s.opened_at is not None
        agent = s.assignee or UNASSIGNED
        if s.status == "open":
            backlog[agent][s.severity] += 1
        policy = policy_for(s, policies)
        met_first = first_response_met_at(s)
        clocks = (
            ("first_response", first_response_due(s, policy), met_first),
            ("resolution", resolution_due(s, policy), s.resolved_at),
        )
        for sla, due, met_at in clocks:
            outcome = _outcome(due, met_at, at)
            outcomes[(s.severity, sla)][outcome] += 1
            outcomes[("all", sla)][outcome] += 1
        for key in (s.severity, "all"):
            if met_first is not None:
                first[key].append(met_first - s.opened_at)
            if s.resolved and s.resolved_at is not None:
                resolved[key].append(s.resolved_at - s.opened_at)
        found.extend(
            TicketBreach(
                ticket_id=s.ticket_id,
                sla=b.sla,
                severity=s.severity,
                agent=agent,
                since=b.since,
                until=b.until,
            )
            for b in breaches(s, policies, at)
        )
    compliance = []
    for severity in (*SEVERITIES, "all"):
        for sla in ("first_response", "resolution"):
            c = outcomes.get((severity, sla))
            if c is None:
                continue
            decided = c["met"] + c["breached"]
            compliance.append(
                SlaCompliance(
                    severity=severity,
                    sla=sla,
                    met=c["met"],
                    breached=c["breached"],
                    pending=c["pending"],
                    share_met=c["met"] / decided if decided else None,
                )
            )
    durations = []
    for severity in (*SEVERITIES, "all"):
        if severity != "all" and not any(s.severity == severity for s in states):
            continue
        if not states:
            continue
        fr_mean, fr_median = _hours(first[severity])
        res_mean, res_median = _hours(resolved[severity])
        durations.append(
            Durations(
                severity=severity,
                first_responses=len(first[severity]),
                first_response_mean_hours=fr_mean,
                first_response_median_hours=fr_median,
                resolutions=len(resolved[severity]),
                resolution_mean_hours=res_mean,
                resolution_median_hours=res_median,
            )
        )
    return ServiceReport(
        as_of=at,
        open_tickets=sum(sum(c.values()) for c in backlog.values()),
        backlog=[
            AgentBacklog(agent=agent, total=sum(c.values()), by_severity=dict(sorted(c.items())))
            for agent, c in sorted(backlog.items(), key=lambda x: (-x[1].total(), x[0]))
        ],
        compliance=compliance,
        durations=durations,
        opened_by_category=dict(sorted(Counter(str(s.category) for s in states).items())),
        opened_by_kind=dict(sorted(Counter(str(s.kind) for s in states).items())),
        breaches=sorted(found, key=lambda b: (b.since, str(b.ticket_id), b.sla)),
    )


def breaches_now(db: ProjectionDB) -> list[BreachRow]:
    """The live table the timers keep: every breach seen as of the projector's clock."""
    d = db.dialect
    rows = db.fetch(
        f"SELECT {', '.join(BREACH_COLUMNS)} FROM {d.qualify('service_breaches')} "
        "ORDER BY due_at, ticket_id, clock"
    )
    return [
        BreachRow(
            ticket_id=d.uuid(ticket) or UUID(int=0),
            clock=clock,
            due_at=d.ts(due) or datetime.min,
            detected_at=d.ts(detected) or datetime.min,
            severity=severity,
        )
        for ticket, clock, due, detected, severity in rows
    ]
