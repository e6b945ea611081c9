"""The seal table (`log_seal`, created with the log) on each backend: replay.seal's SealStore.

Appends insert with ON CONFLICT DO NOTHING in one transaction and report the positions another
sealer had already taken, with their stored hashes, for the sealer to compare: two sealers at
once leave one chain, never two.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

import psycopg
from eventsourcing.persistence import IntegrityError
from eventsourcing.postgres import PostgresDatastore
from eventsourcing.sqlite import SQLiteDatastore
from psycopg.rows import tuple_row
from psycopg.sql import SQL, Identifier

from infra.store.event_store import EventStore
from infra.store.postgres import SEAL_TABLE
from replay.seal import Seal


class PostgresSeals:
    def __init__(self, datastore: PostgresDatastore) -> None:
        self.datastore = datastore
        table = SQL("{0}.{1}").format(Identifier(datastore.schema), Identifier(SEAL_TABLE))
        self._last = SQL(
            "SELECT position, hash, sealed_at FROM {0} ORDER BY position DESC LIMIT 1"
        ).format(table)
        self._insert = SQL(
            "INSERT INTO {0} (position, hash) SELECT * FROM unnest(%b::int8[], %b::bytea[]) "
            "ON CONFLICT (position) DO NOTHING RETURNING position"
        ).format(table)
        self._copy = SQL("COPY {0} (position, hash) FROM STDIN (FORMAT BINARY)").format(table)
        self._taken = SQL(
            "SELECT position, hash, sealed_at FROM {0} WHERE position = ANY(%b) ORDER BY position"
        ).format(table)
        self._read = SQL(
            "SELECT position, hash, sealed_at FROM {0} WHERE position > %s AND position <= %s "
            "ORDER BY position"
        ).format(table)

    def last(self) -> Seal | None:
        rows = self._fetch(self._last, ())
        return rows[0] if rows else None

    def append(self, seals: Sequence[Seal]) -> list[Seal]:
        """Binary COPY first (one sealer: nothing is taken); if a position is taken, the
        transaction is rolled back and the seals go in with ON CONFLICT DO NOTHING instead."""
        if not seals:
            return []
        try:
            with (
                self.datastore.get_connection() as conn,
                conn.transaction(),
                conn.cursor() as curs,
                curs.copy(self._copy) as copy,
            ):
                copy.set_types(["int8", "bytea"])
                for s in seals:
                    copy.write_row((s.position, s.hash))
            return []
        except (psycopg.errors.UniqueViolation, IntegrityError):  # the pool translates it
            pass
        with (
            self.datastore.get_connection() as conn,
            conn.transaction(),
            conn.cursor(row_factory=tuple_row, binary=True) as curs,
        ):
            curs.execute(self._insert, ([s.position for s in seals], [s.hash for s in seals]))
            inserted = {r[0] for r in curs.fetchall()}
            if len(inserted) == len(seals):
                return []
            curs.execute(self._taken, ([s.position for s in seals if s.position not in inserted],))
            return [Seal(p, bytes(h), at) for p, h, at in curs.fetchall()]

    def read(self, after: int, upto: int) -> list[Seal]:
        return self._fetch(self._read, (after, upto))

    def _fetch(self, statement: Any, params: Sequence[object]) -> list[Seal]:
        with (
            self.datastore.get_connection() as conn,
            conn.cursor(row_factory=tuple_row, binary=True) as curs,
        ):
            curs.execute(statement, params)
            return [Seal(p, bytes(h), at) for p, h, at in curs.fetchall()]


def _sqlite_time(text: str | None) -> datetime | None:
    return None if text is None else datetime.fromisoformat(text).replace(tzinfo=UTC)


class SqliteSeals:
    def __init__(self, datastore: SQLiteDatastore) -> None:
        self.datastore = datastore

    def last(self) -> Seal | None:
        rows = self._fetch(
            f"SELECT position, hash, sealed_at FROM {SEAL_TABLE} ORDER BY position DESC LIMIT 1", ()
        )
        return rows[0] if rows else None

    def append(self, seals: Sequence[Seal]) -> list[Seal]:
        """Under the write lock (BEGIN IMMEDIATE): what is taken cannot change until commit."""
        if not seals:
            return []
        lo, hi = seals[0].position, seals[-1].position
        with self.datastore.get_connection(commit=True) as conn:
            c = conn.cursor()
            c.execute("BEGIN IMMEDIATE")
            try:
                c.execute(
                    f"SELECT position, hash, sealed_at FROM {SEAL_TABLE} "
                    "WHERE position BETWEEN ? AND ? ORDER BY position",
                    (lo, hi),
                )
                taken = [Seal(p, bytes(h), _sqlite_time(at)) for p, h, at in c.fetchall()]
                c.executemany(
                    f"INSERT INTO {SEAL_TABLE} (position, hash) VALUES (?, ?) "
                    "ON CONFLICT (position) DO NOTHING",
                    [(s.position, s.hash) for s in seals],
                )
            except BaseException:
                conn.rollback()
                raise
            conn.commit()
        return taken

    def read(self, after: int, upto: int) -> list[Seal]:
        return self._fetch(
            f"SELECT position, hash, sealed_at FROM {SEAL_TABLE} "
            "WHERE position > ? AND position <= ? ORDER BY position",
            (after, upto),
        )

    def _fetch(self, sql: str, params: Sequence[object]) -> list[Seal]:
        with self.datastore.transaction(commit=False) as c:
            c.execute(sql, params)
            return [Seal(p, bytes(h), _sqlite_time(at)) for p, h, at in c.fetchall()]


SEAL_STORES: dict[str, Callable[[Any], PostgresSeals | SqliteSeals]] = {
    "postgresql": PostgresSeals,
    "sqlite": SqliteSeals,
}


def seal_store(store: EventStore) -> PostgresSeals | SqliteSeals:
    """The seal table of the store's backend (chosen here, by the backend's name)."""
    return SEAL_STORES[store.backend.name](store.backend.datastore)  # type: ignore[attr-defined]
