"""Fact tables: one row per event of chosen types, placed at business time, for reports that
answer "as of any date" by folding each stream with the domain's own `fold`.

DESIGN's as-of (business time): the events whose `occurred_at <= T`, each stream folded in
version order. Lifecycle streams (deals, orders, subscriptions) refuse events older than their
last one, so folding the facts up to T in log order gives each stream's state at T. Personal
fields are left out of the facts (the log keeps them sealed; a report never needs them).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from typing import Any, TypeVar
from uuid import UUID

import msgspec

from domain.envelope import Envelope
from domain.events import EVENTS, DomainEvent
from projections.ports import ProjectionDB
from projections.projection import Index, Projection, Tables, _resolve

S = TypeVar("S")
_enc = msgspec.json.Encoder(decimal_format="string")
FACT_COLUMNS = ("position", "stream_id", "customer_id", "type", "at", "data")


class FactTable(Projection):
    """Subclass with `name`, `event_types` (payload classes); the table is `<name>_facts`."""

    event_types: tuple[type[DomainEvent], ...] = ()
    reads_personal = False  # facts leave personal fields out
    extra_tables: dict[str, str] = {}  # tables of its own beside the facts

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if not getattr(cls, "event_types", ()):
            return
        cls.handles = frozenset(t.__struct_config__.tag for t in cls.event_types)  # type: ignore[misc]
        table = f"{cls.name}_facts"
        cls.tables = {  # type: ignore[misc]
            table: (
                "position {int} PRIMARY KEY, stream_id {uuid} NOT NULL, customer_id {uuid}, "
                "type {text} NOT NULL, at {ts} NOT NULL, data {json} NOT NULL"
            ),
            **cls.extra_tables,
        }
        cls.indexes = (Index("at", table, "at"), Index("stream", table, "stream_id, position"))
        cls._personal = {  # type: ignore[attr-defined]
            t.__struct_config__.tag: set(EVENTS.spec_of(t).personal) for t in cls.event_types
        }

    def apply(self, t: Tables, events: list[Envelope[Any]], now: datetime) -> None:
        personal: dict[str, set[str]] = self._personal  # type: ignore[attr-defined]
        rows = []
        for e in events:
            tag = e.type
            hidden = personal.get(tag)
            if hidden:
                data = {
                    k: v for k, v in msgspec.structs.asdict(e.payload).items() if k not in hidden
                }
                data["type"] = tag
                blob = _enc.encode(data)
            else:
                blob = _enc.encode(e.payload)
            rows.append((e.position, e.stream_id, e.customer_id, tag, e.occurred_at, blob.decode()))
        t.insert_many(f"{self.name}_facts", FACT_COLUMNS, rows)


class Fact(msgspec.Struct, frozen=True):
    position: int
    stream_id: UUID
    customer_id: UUID | None
    at: datetime
    payload: DomainEvent


def read_facts(
    db: ProjectionDB,
    name: str,
    *,
    as_of: datetime | None = None,
    types: Iterable[str] = (),
) -> list[Fact]:
    """The facts of `name` in log order, those at or before `as_of` (business time) only."""
    d = db.dialect
    sql = f"SELECT position, stream_id, customer_id, type, at, data FROM {{{name}_facts}}"
    params: list[object] = []
    where = []
    if as_of is not None:
        where.append("at <= ?")
        params.append(as_of)
    wanted = list(types)
    if wanted:
        test, as_list = d.any_of("type", len(wanted))
        where.append(test)
        params.extend([wanted] if as_list else wanted)
    if where:
        sql += " WHERE " + " AND ".join(where)
    sql += " ORDER BY position"
    rows = db.fetch(_resolve(sql, {f"{name}_facts": d.qualify(f"{name}_facts")}, d), params)
    return [
        Fact(
            int(position), d.uuid(stream_id), d.uuid(customer_id), d.ts(at), decode_fact(tag, data)
        )  # type: ignore[arg-type]
        for position, stream_id, customer_id, tag, at, data in rows
    ]


def decode_fact(tag: str, data: object) -> DomainEvent:
    """A fact's payload. Facts leave personal fields out, and some are required (a ticket's
    subject): they read as forgotten, spliced in ahead of the fact's own keys."""
    raw = data.encode() if isinstance(data, str) else data
    if not isinstance(raw, bytes):  # a JSON column some drivers hand back decoded
        raw = msgspec.json.encode(raw)
    head = _PLACEHOLDERS.get(tag)
    if head is None:
        spec = EVENTS.get(tag)
        assert spec is not None, tag
        head = _PLACEHOLDERS[tag] = msgspec.json.encode(spec.placeholders)[:-1]
    if len(head) > 1:  # '{"subject":"..."' + ',' + '"type":...}'
        raw = head + b"," + raw[1:]
    return msgspec.json.decode(raw, type=_CLASSES.get(tag) or _cls(tag))  # type: ignore[no-any-return]


_PLACEHOLDERS: dict[str, bytes] = {}
_CLASSES: dict[str, type[DomainEvent]] = {}


def _cls(tag: str) -> type[DomainEvent]:
    spec = EVENTS.get(tag)
    assert spec is not None, tag
    _CLASSES[tag] = spec.cls
    return spec.cls


def fold_streams(
    facts: Sequence[Fact],
    fold: Callable[[UUID, list[tuple[int, datetime, DomainEvent]]], S],
    types: Iterable[type[DomainEvent]],
) -> dict[UUID, S]:
    """Each stream of these event types folded with the domain's `fold`, in log order."""
    wanted = tuple(types)
    by_stream: dict[UUID, list[tuple[int, datetime, DomainEvent]]] = defaultdict(list)
    for f in facts:
        if isinstance(f.payload, wanted):
            events = by_stream[f.stream_id]
            events.append((len(events) + 1, f.at, f.payload))
    return {stream_id: fold(stream_id, events) for stream_id, events in by_stream.items()}


def survivors(facts: Sequence[Fact]) -> dict[UUID, UUID]:
    """merged customer -> the customer it lives on in (merges and unmerges up to the facts'
    end, followed through chains)."""
    from domain.customers import events as cev

    into: dict[UUID, UUID] = {}
    for f in facts:
        if isinstance(f.payload, cev.CustomerMergedInto):
            into[f.stream_id] = f.payload.survivor_id
        elif isinstance(f.payload, cev.CustomerUnmerged):
            into.pop(f.stream_id, None)
    resolved = {}
    for merged, first in into.items():
        target, seen = first, {merged}
        while target in into and target not in seen:
            seen.add(target)
            target = into[target]
        resolved[merged] = target
    return resolved
