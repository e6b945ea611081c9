"""Scratch views: the read models as they were at a log position, built on the side.

`--recorded-as-of P|T` asks what the system knew at log position P (or record time T: the
last position recorded by then). No view keeps its history, so the answer is replayed: a
runner over a temporary SQLite database is fed only the log up to P, with the clock fixed at
that moment, and the same report or query then runs against it. The same machinery answers
a business as-of for queries that have none of their own (`crm customer show --as-of T`):
the events with `occurred_at <= T`, each stream folded in version order.

The live views are never touched; the scratch database is deleted on exit.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Container, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NamedTuple

import structlog
from eventsourcing.sqlite import SQLiteDatastore

from domain.envelope import Envelope
from infra.clock import FixedClock
from infra.codec import LogRow
from infra.errors import InfraError
from infra.projection_db import SqliteProjectionDB
from infra.store.event_store import EventStore
from projections.catalogue import all_projections
from projections.errors import UnknownProjection
from projections.runner import PAGE, Runner

log = structlog.get_logger("crm.replay")

Progress = Callable[[int, int], None]


class BadRecordedAsOf(InfraError):
    """`--recorded-as-of` is neither a log position nor an ISO time."""

    code = "bad_recorded_as_of"


class RecordedPoint(NamedTuple):
    """A moment of the log: everything up to `position` was known at `at`."""

    position: int
    at: datetime


def parse_recorded(raw: str) -> int | datetime:
    """`P` (digits: a log position) or `T` (an ISO date or time; a date means the end of that
    day, a time without zone is UTC)."""
    text = raw.strip()
    if text.isdigit():
        return int(text)
    iso = text.replace("Z", "+00:00")
    try:
        if len(iso) == 10:
            return datetime.fromisoformat(iso).replace(
                hour=23, minute=59, second=59, microsecond=999_999, tzinfo=UTC
            )
        at = datetime.fromisoformat(iso)
    except ValueError:
        raise BadRecordedAsOf(
            f"{raw!r} is neither a log position nor an ISO date or time"
        ) from None
    return at if at.tzinfo else at.replace(tzinfo=UTC)


def recorded_point(store: EventStore, when: int | datetime) -> RecordedPoint:
    """The position and record time a `--recorded-as-of` value stands for. A position's
    moment is the record time of the last event at or before it; a time's position is the
    last event recorded by then."""
    if isinstance(when, datetime):
        return RecordedPoint(store.position_recorded_by(when), when)
    at = store.recorded_at(when)
    return RecordedPoint(when, at if at is not None else datetime.min.replace(tzinfo=UTC))


class LogUpTo:
    """The log as far as `position` (a LogSource), and of it only the events that occurred
    by `occurred_by` when given, and only rows of the `topics` given (the types the replayed
    views handle: the database skips the rest, which is most of the log for one report)."""

    def __init__(
        self,
        store: EventStore,
        position: int,
        occurred_by: datetime | None = None,
        topics: Sequence[str] = (),
    ) -> None:
        self.store = store
        self.position = position
        self.occurred_by = occurred_by
        self.topics = tuple(topics)

    def read_rows(
        self, after: int = 0, limit: int = 1000, types: Sequence[str] = (), stop: int | None = None
    ) -> list[LogRow]:
        stop = self.position if stop is None else min(stop, self.position)
        if after >= stop:
            return []
        return self.store.read_rows(after, limit, types or self.topics, stop)

    def decode_rows(
        self, rows: Sequence[Any], unseal: Container[str] | None = None
    ) -> list[Envelope[Any]]:
        events = self.store.decode_rows(rows, unseal)
        if self.occurred_by is None:
            return events
        by = self.occurred_by
        return [e for e in events if e.occurred_at <= by]

    def head(self) -> int:
        return min(self.store.head(), self.position)


def _scratch_datastore(path: Path) -> SQLiteDatastore:
    """A throwaway database: no fsync (a crash loses nothing that matters)."""
    datastore = SQLiteDatastore(db_name=str(path), lock_timeout=30)
    create = datastore.pool._create_connection

    def connect() -> Any:
        conn = create()
        conn.cursor().execute("PRAGMA synchronous=OFF")
        conn.cursor().execute("PRAGMA wal_autocheckpoint=100000")
        return conn

    datastore.pool._create_connection = connect  # type: ignore[method-assign]
    return datastore


@contextmanager
def scratch_views(
    store: EventStore,
    *,
    position: int,
    now: datetime,
    projections: Sequence[str] | None = None,
    occurred_by: datetime | None = None,
    progress: Progress | None = None,
    page: int = PAGE,
) -> Iterator[SqliteProjectionDB]:
    """Views (only `projections`, default all) built from the log up to `position` with the
    clock fixed at `now`, timers due by then fired; with `occurred_by`, only the events that
    occurred by then. Yields their database for the usual queries; deleted afterwards."""
    chosen = all_projections()
    if projections is not None:
        known = {p.name for p in chosen}
        for name in projections:
            if name not in known:
                raise UnknownProjection(name, sorted(known))
        chosen = [p for p in chosen if p.name in set(projections)]
    with tempfile.TemporaryDirectory(prefix="crm-scratch-") as tmp:
        datastore = _scratch_datastore(Path(tmp) / "views.db")
        db = SqliteProjectionDB(datastore)
        topics = sorted(set().union(*(p.handles for p in chosen)))
        source = LogUpTo(store, position, occurred_by, topics)
        runner = Runner(db, source, chosen, FixedClock(now), page=page)
        try:
            runner.setup()
            applied = runner.catch_up(progress=progress)
            fired = runner.fire_timers()
            for dead in runner.dead_letters():
                log.warning(
                    "replay.dead_letter",
                    projection=dead.projection,
                    position=dead.position,
                    event_type=dead.event_type,
                    error=dead.error,
                )
            log.info(
                "replay.scratch_views",
                position=position,
                now=now.isoformat(),
                occurred_by=None if occurred_by is None else occurred_by.isoformat(),
                projections=[p.name for p in chosen],
                applied=applied,
                timers=fired,
            )
            yield db
        finally:
            runner.close()
            datastore.close()
