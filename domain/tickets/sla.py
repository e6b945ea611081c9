"""Service levels of a ticket: when a first response and a resolution are due, which are
breached at a given time, and when the next breach would happen (the timer a view sets).

Rules (calendar time, around the clock: no business hours or holidays):
- The policy is chosen by the ticket's severity (`DEFAULT_POLICIES` unless the caller gives
  its own table).
- First response is due `first_response` after the ticket was opened. The first response, or
  the first resolution if that comes earlier, meets it; reopening does not restart it.
- Resolution is due `resolution` after the clock started: at opening, and again at each
  reopening, which restarts it with the full budget (a reopened ticket is a new attempt; the
  earlier attempt's outcome stays in the views that recorded it).
- A due time is the first instant of the breach: met means done strictly before it, and a
  breach holds from `now >= due`, like the timers that fire once the clock reaches them.
A naive `now` or `after` is taken as UTC.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Literal

import msgspec

from domain.tickets.events import Severity
from domain.tickets.state import TicketState

SlaName = Literal["first_response", "resolution"]


class SlaPolicy(msgspec.Struct, frozen=True, kw_only=True):
    first_response: timedelta
    resolution: timedelta


DEFAULT_POLICIES: Mapping[Severity, SlaPolicy] = {
    "critical": SlaPolicy(first_response=timedelta(hours=1), resolution=timedelta(hours=8)),
    "high": SlaPolicy(first_response=timedelta(hours=4), resolution=timedelta(hours=24)),
    "normal": SlaPolicy(first_response=timedelta(hours=8), resolution=timedelta(hours=72)),
    "low": SlaPolicy(first_response=timedelta(hours=24), resolution=timedelta(hours=168)),
}


class Breach(msgspec.Struct, frozen=True, kw_only=True):
    """`since` is the due time that passed; `until` is when it was met late (None: still
    breached at the time asked about)."""

    sla: SlaName
    since: datetime
    until: datetime | None = None


def policy_for(
    state: TicketState, policies: Mapping[Severity, SlaPolicy] = DEFAULT_POLICIES
) -> SlaPolicy:
    return policies[state.severity]


def first_response_due(state: TicketState, policy: SlaPolicy) -> datetime | None:
    """None for a ticket not opened."""
    return state.opened_at + policy.first_response if state.opened_at is not None else None


def first_response_met_at(state: TicketState) -> datetime | None:
    """The first response or the first resolution, whichever came first."""
    times = [t for t in (state.first_response_at, state.first_resolved_at) if t is not None]
    return min(times) if times else None


def resolution_started_at(state: TicketState) -> datetime | None:
    """When the current resolution clock started: the last reopening, else the opening."""
    return state.reopened_at if state.reopened_at is not None else state.opened_at


def resolution_due(state: TicketState, policy: SlaPolicy) -> datetime | None:
    """Due time of the current attempt (kept once resolved); None for a ticket not opened."""
    start = resolution_started_at(state)
    return start + policy.resolution if start is not None else None


def _clocks(
    state: TicketState, policy: SlaPolicy
) -> list[tuple[SlaName, datetime | None, datetime | None]]:
    return [
        ("first_response", first_response_due(state, policy), first_response_met_at(state)),
        ("resolution", resolution_due(state, policy), state.resolved_at),
    ]


def _utc(t: datetime) -> datetime:
    return t if t.tzinfo is not None else t.replace(tzinfo=UTC)


def breaches(
    state: TicketState, policies: Mapping[Severity, SlaPolicy], now: datetime
) -> list[Breach]:
    """The SLAs breached as of `now`, first response first: running late (`until` None) or met
    late before `now`. Pure, so a view can ask at any time, not only when an event comes."""
    now = _utc(now)
    found: list[Breach] = []
    for name, due, met_at in _clocks(state, policy_for(state, policies)):
        if due is None or now < due or (met_at is not None and met_at < due):
            continue
        found.append(
            Breach(
                sla=name, since=due, until=met_at if met_at is not None and met_at <= now else None
            )
        )
    return found


def next_deadline(
    state: TicketState,
    policies: Mapping[Severity, SlaPolicy],
    *,
    after: datetime | None = None,
) -> datetime | None:
    """When the next breach would begin if nothing else happens: the earliest due time of an
    SLA not yet met (only those later than `after`, if given: a view firing a timer at `now`
    passes `after=now` to get the following one). None when nothing is left to breach."""
    pending = [
        due
        for _, due, met_at in _clocks(state, policy_for(state, policies))
        if due is not None and met_at is None
    ]
    if after is not None:
        pending = [due for due in pending if due > _utc(after)]
    return min(pending, default=None)
