"""The projections' database on each backend: transactions, dialect, bulk insert, wake-ups.

Projection tables live beside the log (same database, same schema). On PostgreSQL a
transaction is one pooled connection; rows go in by COPY; a LISTEN connection wakes the
projector on the log's NOTIFY. On SQLite a write transaction is `BEGIN IMMEDIATE` (one writer
at a time, no lock upgrades), values are adapted to text, and the projector polls.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, date, datetime
from typing import Any
from uuid import UUID

import psycopg
from eventsourcing.postgres import PostgresDatastore
from eventsourcing.sqlite import SQLiteDatastore
from psycopg.rows import tuple_row
from psycopg.sql import SQL, Identifier

from infra.store.event_store import EventStore


def _sqlite_ts(value: datetime) -> str:
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).isoformat(timespec="microseconds")


# Adapters for this process's sqlite3 module: UUIDs and times are stored as sortable text.
sqlite3.register_adapter(UUID, str)
sqlite3.register_adapter(datetime, _sqlite_ts)
sqlite3.register_adapter(date, date.isoformat)


class PostgresDialect:
    name = "postgresql"
    _types = {
        "uuid": "uuid",
        "ts": "timestamptz",
        "json": "text",
        "int": "bigint",
        "real": "double precision",
        "text": "text",
        "date": "date",
        "bool": "boolean",
    }

    def __init__(self, schema: str | None) -> None:
        self.schema = schema

    def ddl_type(self, kind: str) -> str:
        return self._types[kind]

    def qualify(self, table: str) -> str:
        quoted = '"' + table.replace('"', '""') + '"'
        return f'"{self.schema}".{quoted}' if self.schema else quoted

    def any_of(self, column: str, count: int) -> tuple[str, bool]:
        return f"{column} = ANY(?)", True

    def uuid(self, value: object) -> UUID | None:
        return value if isinstance(value, UUID) or value is None else UUID(str(value))

    def ts(self, value: object) -> datetime | None:
        if value is None or isinstance(value, datetime):
            return value
        return datetime.fromisoformat(str(value))


class SqliteDialect:
    name = "sqlite"
    _types = {
        "uuid": "TEXT",
        "ts": "TEXT",
        "json": "TEXT",
        "int": "INTEGER",
        "real": "REAL",
        "text": "TEXT",
        "date": "TEXT",
        "bool": "INTEGER",
    }

    def ddl_type(self, kind: str) -> str:
        return self._types[kind]

    def qualify(self, table: str) -> str:
        return '"' + table.replace('"', '""') + '"'

    def any_of(self, column: str, count: int) -> tuple[str, bool]:
        return f"{column} IN ({', '.join('?' * count)})", False

    def uuid(self, value: object) -> UUID | None:
        return None if value is None else UUID(str(value))

    def ts(self, value: object) -> datetime | None:
        if value is None or isinstance(value, datetime):
            return value
        return datetime.fromisoformat(str(value))


class PostgresTx:
    def __init__(self, cursor: psycopg.Cursor[Any]) -> None:
        self._cur = cursor

    def execute(self, sql: str, params: Sequence[object] = ()) -> None:
        self._cur.execute(sql, params or None)

    def executemany(self, sql: str, rows: Sequence[Sequence[object]]) -> None:
        self._cur.executemany(sql, rows)

    def fetch(self, sql: str, params: Sequence[object] = ()) -> list[tuple[Any, ...]]:
        self._cur.execute(sql, params or None)
        return self._cur.fetchall()

    def insert_many(
        self,
        table: str,
        columns: Sequence[str],
        rows: Iterable[Sequence[object]],
        kinds: Sequence[str],
    ) -> int:
        """Binary COPY: values go as they are, with the columns' types."""
        n = 0
        statement = SQL("COPY {0} ({1}) FROM STDIN (FORMAT BINARY)").format(
            SQL(table), SQL(", ").join(Identifier(c) for c in columns)
        )
        with self._cur.copy(statement) as copy:
            copy.set_types([_BINARY[k] for k in kinds])
            write_row = copy.write_row
            for row in rows:
                write_row(row)
                n += 1
        return n


_BINARY = {
    "uuid": "uuid",
    "ts": "timestamptz",
    "json": "text",
    "int": "int8",
    "real": "float8",
    "text": "text",
    "date": "date",
    "bool": "bool",
}


class SqliteTx:
    def __init__(self, cursor: Any) -> None:
        self._cur = cursor

    def execute(self, sql: str, params: Sequence[object] = ()) -> None:
        self._cur.execute(sql, params)

    def executemany(self, sql: str, rows: Sequence[Sequence[object]]) -> None:
        self._cur.executemany(sql, rows)

    def fetch(self, sql: str, params: Sequence[object] = ()) -> list[tuple[Any, ...]]:
        self._cur.execute(sql, params)
        return [tuple(r) for r in self._cur.fetchall()]

    def insert_many(
        self,
        table: str,
        columns: Sequence[str],
        rows: Iterable[Sequence[object]],
        kinds: Sequence[str],
    ) -> int:
        batch = list(rows)
        if batch:
            marks = ", ".join("?" * len(columns))
            cols = ", ".join(f'"{c}"' for c in columns)
            self._cur.executemany(f"INSERT INTO {table} ({cols}) VALUES ({marks})", batch)
        return len(batch)


class PostgresProjectionDB:
    def __init__(self, datastore: PostgresDatastore, channel: str) -> None:
        self.datastore = datastore
        self.dialect = PostgresDialect(datastore.schema or None)
        self._channel = channel
        self._listener: psycopg.Connection[Any] | None = None
        self._lock = threading.Lock()

    @contextmanager
    def transaction(self) -> Iterator[PostgresTx]:
        with (
            self.datastore.get_connection() as conn,
            conn.transaction(),
            conn.cursor(row_factory=tuple_row) as cur,
        ):
            yield PostgresTx(cur)

    def fetch(self, sql: str, params: Sequence[object] = ()) -> list[tuple[Any, ...]]:
        with self.transaction() as tx:
            return tx.fetch(sql, params)

    def wait(self, timeout: float) -> bool:
        """Sleep on LISTEN until the log's NOTIFY or the timeout; True if notified."""
        with self._lock:
            if self._listener is None or self._listener.closed:
                self._listener = psycopg.connect(autocommit=True, **_connect_kwargs(self.datastore))
                self._listener.execute(SQL("LISTEN {0}").format(Identifier(self._channel)))
            listener = self._listener
        try:
            for _ in listener.notifies(timeout=max(timeout, 0.001), stop_after=1):
                return True
        except psycopg.OperationalError:
            with self._lock:
                self._listener = None
            time.sleep(min(timeout, 0.5))
        return False

    def is_transient(self, error: BaseException) -> bool:
        """Dropped connections, deadlocks, serialization failures, lock timeouts."""
        return isinstance(error, psycopg.OperationalError | psycopg.InterfaceError)

    def close(self) -> None:
        with self._lock:
            if self._listener is not None:
                self._listener.close()
                self._listener = None


def _connect_kwargs(datastore: PostgresDatastore) -> dict[str, Any]:
    pool = datastore.pool
    kwargs = dict(getattr(pool, "kwargs", {}) or {})
    keep = ("dbname", "host", "port", "user", "password")
    return {k: v for k, v in kwargs.items() if k in keep and v not in (None, "")}


class SqliteProjectionDB:
    def __init__(self, datastore: SQLiteDatastore, poll: float = 0.05) -> None:
        self.datastore = datastore
        self.dialect = SqliteDialect()
        self._poll = poll

    @contextmanager
    def transaction(self) -> Iterator[SqliteTx]:
        with self.datastore.get_connection(commit=True) as conn:
            cur = conn.cursor()
            cur.execute("BEGIN IMMEDIATE")
            try:
                yield SqliteTx(cur)
            except BaseException:
                conn.rollback()
                raise
            conn.commit()

    def fetch(self, sql: str, params: Sequence[object] = ()) -> list[tuple[Any, ...]]:
        with self.datastore.get_connection(commit=False) as conn:
            cur = conn.cursor()
            cur.execute(sql, params)
            return [tuple(r) for r in cur.fetchall()]

    def wait(self, timeout: float) -> bool:
        time.sleep(min(timeout, self._poll))
        return False

    def is_transient(self, error: BaseException) -> bool:
        """`database is locked` and the like: another writer, try again."""
        return isinstance(error, sqlite3.OperationalError) and "locked" in str(error)

    def close(self) -> None:
        return None


def projection_db(store: EventStore) -> PostgresProjectionDB | SqliteProjectionDB:
    backend = store.backend
    if backend.name == "postgresql":
        return PostgresProjectionDB(backend.datastore, backend.standard.channel_name)  # type: ignore[attr-defined]
    return SqliteProjectionDB(backend.datastore)  # type: ignore[arg-type]
