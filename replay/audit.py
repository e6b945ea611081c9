"""The audit trail: every change of a stream or of a customer, in log order, with who made it,
through which channel, its business and record time, the command behind it and the chain of
commands that led to it.

Pure logic over a small port (`AuditLog`, which the event store implements): an auditor must be
able to trust that what is printed is the log itself, not a view of it. Personal data never
leaves this module: a personal field is named when an event set it, never shown; a forgotten
customer's fields read "forgotten".
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any, Protocol
from uuid import UUID

import msgspec

from domain.catalogue import EVENTS
from domain.envelope import Envelope
from domain.events import FORGOTTEN

ABSORBED = "customer.absorbed"
MERGED_INTO = "customer.merged_into"
FORGOTTEN_TYPE = "customer.forgotten"
_VALUE_WIDTH = 40


class AuditLog(Protocol):
    """What the audit reads: whole streams, a customer's events by its indexed column, and
    the names of recorded commands."""

    def read_stream(self, stream_id: UUID, after_version: int = 0) -> list[Envelope[Any]]: ...

    def read_customer(
        self, customer_id: UUID, after: int = 0, limit: int = 10_000
    ) -> list[Envelope[Any]]: ...

    def command_names(self, command_ids: Iterable[str]) -> dict[str, str]: ...


class AuditEntry(msgspec.Struct, frozen=True, kw_only=True):
    """One change as the log recorded it. `late`: its business time is earlier than that of a
    change recorded before it in this trail (it arrived late). `depth`: how many commands of
    the trail lie between it and the start of its causation chain."""

    position: int
    stream_type: str
    stream_id: UUID
    version: int
    event_type: str
    customer_id: UUID | None
    actor: str
    channel: str
    occurred_at: datetime
    recorded_at: datetime | None
    late: bool
    command_id: str | None
    command: str | None
    correlation_id: str | None
    causation_id: str | None
    caused_by: str | None
    depth: int
    changes: tuple[str, ...]
    forgotten: bool


class Chain(msgspec.Struct, frozen=True, kw_only=True):
    """The commands that share a correlation id, in log order, each with what caused it."""

    correlation_id: str | None
    commands: tuple[str, ...]
    first_position: int
    last_position: int
    events: int


class AuditTrail(msgspec.Struct, frozen=True, kw_only=True):
    subject: str
    customers: tuple[UUID, ...]
    notes: tuple[str, ...]
    entries: tuple[AuditEntry, ...]
    chains: tuple[Chain, ...]
    next_after: int | None  # pass as `after` for the next page; None: this was the last


def changes(event: Envelope[Any]) -> tuple[str, ...]:
    """What the event set: `field=value` for public fields, the bare name for personal ones
    ("field: forgotten" once the customer's key is gone). Values are cut to a short width."""
    spec = EVENTS.get(event.type)
    personal = set(spec.personal) if spec is not None else set()
    forgotten = set(event.forgotten)
    out: list[str] = []
    for name, value in msgspec.structs.asdict(event.payload).items():
        if name in forgotten:
            out.append(f"{name}: forgotten")
        elif name in personal:
            if value not in (None, "", [], (), FORGOTTEN):
                out.append(f"{name} (personal)")
        elif value not in (None, "", [], ()):
            text = _text(value)
            cut = text if len(text) <= _VALUE_WIDTH else text[: _VALUE_WIDTH - 1] + "\u2026"
            out.append(f"{name}={cut}")
    return tuple(out)


def _text(value: Any) -> str:
    if isinstance(value, str | int | float | bool | UUID):
        return str(value)
    if isinstance(value, datetime):
        return value.isoformat()
    return msgspec.json.encode(value).decode()


def audit_stream(
    log: AuditLog, stream_id: UUID, *, after: int = 0, limit: int = 1000
) -> AuditTrail:
    """Every change of one stream after log position `after`, at most `limit` of them."""
    events = log.read_stream(stream_id)
    return build_trail(
        log, f"stream {stream_id}", customers=(), notes=(), events=events, after=after, limit=limit
    )


def merged_in(log: AuditLog, customer_id: UUID) -> tuple[list[UUID], list[str]]:
    """The customer and every customer merged into it (its stream's `customer.absorbed`
    events, followed transitively, released ones included: their history was part of this
    customer's for a while); and notes on what was followed."""
    found, notes = [customer_id], []
    seen = {customer_id}
    at = 0
    while at < len(found):
        current = found[at]
        at += 1
        for e in log.read_stream(current):
            p = e.payload
            if e.type == ABSORBED and p.merged_id not in seen:
                seen.add(p.merged_id)
                found.append(p.merged_id)
                notes.append(
                    f"customer {p.merged_id} was merged into {current} at position {e.position}"
                )
            elif e.type == MERGED_INTO and current == customer_id:
                notes.append(
                    f"customer {current} was merged into {p.survivor_id} at position {e.position}"
                    " (audit the survivor for what followed)"
                )
            elif e.type == FORGOTTEN_TYPE:
                notes.append(f"customer {current} was forgotten at position {e.position}")
    return found, notes


def audit_customer(
    log: AuditLog, customer_id: UUID, *, after: int = 0, limit: int = 1000
) -> AuditTrail:
    """Every change of every stream that touches the customer (the log's customer_id column),
    the customers merged into it included, after position `after`, at most `limit`."""
    customers, notes = merged_in(log, customer_id)
    per_customer = [_customer_events(log, c, after, limit) for c in customers]
    merged: list[Envelope[Any]] = []
    seen: set[int] = set()
    for e in heapq.merge(*per_customer, key=lambda e: e.position or 0):
        if e.position not in seen:
            seen.add(e.position or 0)
            merged.append(e)
    return build_trail(
        log,
        f"customer {customer_id}",
        customers=tuple(customers),
        notes=notes,
        events=merged,
        after=after,
        limit=limit,
    )


def _customer_events(
    log: AuditLog, customer_id: UUID, after: int, limit: int, page: int = 10_000
) -> list[Envelope[Any]]:
    """The customer's events from the start (what came before `after` decides whether a
    later one arrived late and what caused it) up to `limit + 1` after `after`."""
    events: list[Envelope[Any]] = []
    at = 0
    while True:
        rows = log.read_customer(customer_id, at, page)
        events.extend(rows)
        if len(rows) < page or sum((e.position or 0) > after for e in events) > limit:
            return events
        at = rows[-1].position or 0


def build_trail(
    log: AuditLog,
    subject: str,
    *,
    customers: tuple[UUID, ...],
    notes: Sequence[str],
    events: Sequence[Envelope[Any]],
    after: int = 0,
    limit: int | None = None,
) -> AuditTrail:
    """Entries after `after` (at most `limit`) with command names, lateness and causation
    depth, judged against every event given (those before `after` included), and the
    correlation chains of the entries."""
    names = log.command_names(
        [i for e in events for i in (e.command_id, e.causation_id) if i is not None]
    )
    by_position = {e.position: e for e in events}
    depth_of_command: dict[str, int] = {}
    depth_of_position: dict[int, int] = {}
    latest: datetime | None = None
    entries: list[AuditEntry] = []
    for e in events:
        depth, caused_by = _cause(e, names, by_position, depth_of_command, depth_of_position)
        if e.command_id is not None:
            depth_of_command.setdefault(e.command_id, depth)
        depth_of_position[e.position or 0] = depth
        late = latest is not None and e.occurred_at < latest
        latest = e.occurred_at if latest is None else max(latest, e.occurred_at)
        entries.append(
            AuditEntry(
                position=e.position or 0,
                stream_type=e.stream_type,
                stream_id=e.stream_id,
                version=e.version,
                event_type=e.type,
                customer_id=e.customer_id,
                actor=e.actor,
                channel=e.channel,
                occurred_at=e.occurred_at,
                recorded_at=e.recorded_at,
                late=late,
                command_id=e.command_id,
                command=names.get(e.command_id) if e.command_id else None,
                correlation_id=e.correlation_id,
                causation_id=e.causation_id,
                caused_by=caused_by,
                depth=depth,
                changes=changes(e),
                forgotten=bool(e.forgotten),
            )
        )
    shown = [x for x in entries if x.position > after]
    more = limit is not None and len(shown) > limit
    if limit is not None:
        shown = shown[:limit]
    return AuditTrail(
        subject=subject,
        customers=customers,
        notes=tuple(notes) + _forgotten_notes(events, customers),
        entries=tuple(shown),
        chains=chains(shown),
        next_after=shown[-1].position if more and shown else None,
    )


def _cause(
    e: Envelope[Any],
    names: dict[str, str],
    by_position: dict[int | None, Envelope[Any]],
    depth_of_command: dict[str, int],
    depth_of_position: dict[int, int],
) -> tuple[int, str | None]:
    """How deep in its causation chain the event is, and what its causation id names: a
    recorded command, an event of this trail (by position), or something outside the log."""
    cause = e.causation_id
    if cause is None:
        return 0, None
    depth = depth_of_command.get(cause)
    if cause in names:
        return (1 if depth is None else depth + 1), f"command {names[cause]} ({cause})"
    if cause.isdigit() and int(cause) in by_position:
        parent = by_position[int(cause)]
        return depth_of_position.get(int(cause), 0) + 1, f"event {parent.type} at {cause}"
    return 1, f"{cause} (not a recorded command)"


def chains(entries: Sequence[AuditEntry]) -> tuple[Chain, ...]:
    """Entries grouped by correlation id (an event without one is a chain of its own
    command), in order of first appearance; each chain lists its commands in log order as
    `name (id)`, with `<- cause` when another command caused it."""
    groups: dict[str, list[AuditEntry]] = {}
    for x in entries:
        key = x.correlation_id or x.command_id or f"@{x.position}"
        groups.setdefault(key, []).append(x)
    out: list[Chain] = []
    for group in groups.values():
        commands: dict[str, str] = {}
        for x in group:
            cid = x.command_id or f"position {x.position}"
            if cid not in commands:
                label = f"{x.command or x.event_type} ({cid})"
                if x.caused_by:
                    label += f" <- {x.caused_by}"
                commands[cid] = label
        out.append(
            Chain(
                correlation_id=group[0].correlation_id,
                commands=tuple(commands.values()),
                first_position=group[0].position,
                last_position=group[-1].position,
                events=len(group),
            )
        )
    return tuple(out)


def _forgotten_notes(
    events: Sequence[Envelope[Any]], known: Iterable[UUID] = ()
) -> tuple[str, ...]:
    """A note for each customer whose personal data in this trail can no longer be read,
    unless `merged_in` already said they were forgotten (customers in `known`)."""
    skip = set(known)
    gone = {e.customer_id for e in events if e.forgotten and e.customer_id not in skip}
    return tuple(
        f"customer {c}: personal data forgotten" for c in sorted(gone, key=str) if c is not None
    )
