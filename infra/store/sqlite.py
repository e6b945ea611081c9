"""SQLite backend (the embedded default): eventsourcing's recorders on our table definition.

Positions are an explicit `notification_id INTEGER PRIMARY KEY AUTOINCREMENT`, not the bare
rowid the library uses: VACUUM may renumber a bare rowid, and AUTOINCREMENT never reuses one.
`customer_id` is derived from the envelope bytes by a generated column, as on PostgreSQL.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any
from uuid import UUID

from eventsourcing.persistence import Notification, StoredEvent
from eventsourcing.sqlite import (
    SQLiteApplicationRecorder,
    SQLiteCursor,
    SQLiteDatastore,
    SQLiteTrackingRecorder,
    SQLiteTransaction,
)

from infra.codec import LogRow
from infra.store.event_store import Changes, GroupState, GroupWrites
from infra.store.url import StoreURL

# customer_id is the first element of the envelope's msgpack array (see infra/codec.py).
CUSTOMER_ID_EXPR = (
    "CASE WHEN length(state) >= 23 AND substr(state, 1, 1) = x'CE' "
    "AND substr(state, 5, 1) BETWEEN x'90' AND x'9F' AND substr(state, 6, 2) = x'C410' "
    "THEN lower(hex(substr(state, 8, 16))) "
    "WHEN length(state) >= 25 AND substr(state, 1, 1) = x'CE' AND substr(state, 5, 1) = x'DC' "
    "AND substr(state, 8, 2) = x'C410' THEN lower(hex(substr(state, 10, 16))) END"
)

_COLUMNS = "notification_id, originator_id, originator_version, topic, state, recorded_at"


@lru_cache(maxsize=16_384)
def _recorded_at(text: str) -> datetime:
    """The stored record time as a datetime; cached, as the rows of one append share a few
    (the demo's 310k events hold 4,862 distinct ones; a page of the log reads each often)."""
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def _chunks(values: Sequence[Any], size: int = 500) -> Iterator[Sequence[Any]]:
    for i in range(0, len(values), size):
        yield values[i : i + size]


SEAL_TABLE = "log_seal"


def append_only_ddl(events_table: str) -> list[str]:
    """The seal table beside the log, and triggers refusing UPDATE and DELETE on the log and on
    the seal table (a DELETE without WHERE fires them too: SQLite has no TRUNCATE)."""
    statements = [
        f"CREATE TABLE IF NOT EXISTS {SEAL_TABLE} (position INTEGER PRIMARY KEY, "
        "hash BLOB NOT NULL, "
        "sealed_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%d %H:%M:%f', 'now')))"
    ]
    for table in (events_table, SEAL_TABLE):
        for op in ("UPDATE", "DELETE"):
            statements.append(
                f"CREATE TRIGGER IF NOT EXISTS {table}_no_{op.lower()} BEFORE {op} ON {table} "
                f"BEGIN SELECT RAISE(ABORT, 'crm-engine: {table} is append-only: {op} refused'); "
                "END"
            )
    return statements


class _ImmediateTransaction(SQLiteTransaction):
    """BEGIN IMMEDIATE: take the write lock before the first read, so what a group commit
    reads cannot change before it writes (a deferred BEGIN could fail to upgrade)."""

    def __enter__(self) -> SQLiteCursor:
        cursor = self.connection.cursor()
        cursor.execute("BEGIN IMMEDIATE")
        return cursor


@contextmanager
def _write_transaction(datastore: SQLiteDatastore) -> Iterator[SQLiteCursor]:
    with (
        datastore.get_connection(commit=True) as conn,
        _ImmediateTransaction(conn, commit=True) as curs,
        curs,
    ):
        yield curs


class SqliteLogRecorder(SQLiteApplicationRecorder):
    """The standard append path: one INSERT per event in one transaction (the library's)."""

    def __init__(self, datastore: SQLiteDatastore, events_table_name: str = "stored_events"):
        super().__init__(datastore, events_table_name)
        t = self.events_table_name
        self.insert_events_statement = (
            f"INSERT INTO {t} (originator_id, originator_version, topic, state) VALUES (?,?,?,?)"
        )
        self.select_max_notification_id_statement = f"SELECT MAX(notification_id) FROM {t}"

    def construct_create_table_statements(self) -> list[str]:
        t = self.events_table_name
        return [
            f"CREATE TABLE IF NOT EXISTS {t} ("
            "notification_id INTEGER PRIMARY KEY AUTOINCREMENT, "
            "originator_id TEXT NOT NULL, "
            "originator_version INTEGER NOT NULL, "
            "topic TEXT, "
            "state BLOB, "
            f"customer_id TEXT GENERATED ALWAYS AS ({CUSTOMER_ID_EXPR}) STORED, "
            "recorded_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%d %H:%M:%f', 'now')), "
            "UNIQUE (originator_id, originator_version))",
            f"CREATE INDEX IF NOT EXISTS {t}_customer_idx ON {t} (customer_id, notification_id) "
            "WHERE customer_id IS NOT NULL",
            "CREATE TABLE IF NOT EXISTS crm_commands (command_id TEXT PRIMARY KEY, "
            "name TEXT NOT NULL, streams BLOB NOT NULL, "
            "recorded_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%d %H:%M:%f', 'now')))",
            "CREATE TABLE IF NOT EXISTS crm_contact_index (kind TEXT NOT NULL, "
            "digest BLOB NOT NULL, customer_id TEXT NOT NULL, PRIMARY KEY (kind, digest))",
            "CREATE INDEX IF NOT EXISTS crm_contact_index_customer ON crm_contact_index (customer_id)",
            *append_only_ddl(t),
        ]

    def _insert_events(
        self, c: SQLiteCursor, stored_events: Sequence[StoredEvent], **kwargs: Any
    ) -> Sequence[int] | None:
        self._insert_extras(c, **kwargs)
        return super()._insert_events(c, stored_events)

    def _insert_extras(self, c: SQLiteCursor, **kwargs: Any) -> None:
        """Rows that commit with the events: command records and contact claims/releases."""
        if commands := kwargs.get("commands"):
            c.executemany(
                "INSERT INTO crm_commands (command_id, name, streams) VALUES (?, ?, ?)", commands
            )
        if claims := kwargs.get("claims"):
            c.executemany(
                "INSERT INTO crm_contact_index (kind, digest, customer_id) VALUES (?, ?, ?)",
                [(k, d, cid.hex) for k, d, cid in claims],
            )
        if releases := kwargs.get("releases"):
            c.executemany(
                "DELETE FROM crm_contact_index WHERE kind = ? AND digest = ? AND customer_id = ?",
                [(k, d, cid.hex) for k, d, cid in releases],
            )

    def insert_command_group(
        self,
        stream_ids: Sequence[UUID],
        command_ids: Sequence[str],
        contact_keys: Sequence[tuple[str, bytes]],
        plan: Callable[[GroupState], GroupWrites],
    ) -> list[int]:
        """A group commit: under the write lock, read the heads, recorded commands and contact
        owners the group touches, let `plan` check the items, write what it accepted."""
        t = self.events_table_name
        with _write_transaction(self.datastore) as c:
            heads: dict[UUID, int] = {}
            for chunk in _chunks([s.hex for s in stream_ids]):
                c.execute(
                    f"SELECT originator_id, max(originator_version) FROM {t} "
                    f"WHERE originator_id IN ({','.join('?' * len(chunk))}) GROUP BY originator_id",
                    chunk,
                )
                heads.update((UUID(r[0]), r[1]) for r in c.fetchall())
            recorded: set[str] = set()
            for chunk in _chunks(command_ids):
                c.execute(
                    "SELECT command_id FROM crm_commands "
                    f"WHERE command_id IN ({','.join('?' * len(chunk))})",
                    chunk,
                )
                recorded.update(r[0] for r in c.fetchall())
            owners: dict[tuple[str, bytes], UUID] = {}
            for chunk in _chunks(contact_keys):
                c.execute(
                    "SELECT kind, digest, customer_id FROM crm_contact_index WHERE (kind, digest) "
                    f"IN (VALUES {','.join(['(?, ?)'] * len(chunk))})",
                    [v for key in chunk for v in key],
                )
                owners.update(((k, bytes(d)), UUID(o)) for k, d, o in c.fetchall())
            writes = plan(GroupState(heads, recorded, owners))
            if not writes.events:
                return []
            if writes.releases:
                c.executemany(
                    "DELETE FROM crm_contact_index WHERE kind = ? AND digest = ? AND customer_id = ?",
                    [(k, d, o.hex) for k, d, o in writes.releases],
                )
            self._insert_extras(c, commands=writes.commands, claims=writes.claims)
            c.executemany(
                self.insert_events_statement,
                [
                    (e.originator_id.hex, e.originator_version, e.topic, e.state)
                    for e in writes.events
                ],
            )
            # One writer at a time and AUTOINCREMENT: this batch's ids are contiguous.
            c.execute("SELECT last_insert_rowid()")
            last = int(c.fetchone()[0])
            return list(range(last - len(writes.events) + 1, last + 1))

    def select_command(self, command_id: str) -> tuple[str, bytes] | None:
        with self.datastore.transaction(commit=False) as c:
            c.execute("SELECT name, streams FROM crm_commands WHERE command_id = ?", (command_id,))
            row = c.fetchone()
            return None if row is None else (row[0], bytes(row[1]))

    def select_command_names(self, command_ids: Sequence[str]) -> dict[str, str]:
        """Each recorded command's name, by id (the audit names the command of an event)."""
        found: dict[str, str] = {}
        with self.datastore.transaction(commit=False) as c:
            for chunk in _chunks(list(command_ids)):
                c.execute(
                    "SELECT command_id, name FROM crm_commands "
                    f"WHERE command_id IN ({','.join('?' * len(chunk))})",
                    chunk,
                )
                found.update((r[0], r[1]) for r in c.fetchall())
        return found

    def select_position_recorded_by(self, at: datetime) -> int:
        """The last position recorded at or before `at` (recorded_at rises with position)."""
        text = at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]
        with self.datastore.transaction(commit=False) as c:
            c.execute(
                f"SELECT notification_id FROM {self.events_table_name} WHERE recorded_at <= ? "
                "ORDER BY notification_id DESC LIMIT 1",
                (text,),
            )
            row = c.fetchone()
            return 0 if row is None else int(row[0])

    def select_recorded_at(self, position: int) -> datetime | None:
        """The record time of the last event at or before `position`."""
        with self.datastore.transaction(commit=False) as c:
            c.execute(
                f"SELECT recorded_at FROM {self.events_table_name} WHERE notification_id <= ? "
                "ORDER BY notification_id DESC LIMIT 1",
                (position,),
            )
            row = c.fetchone()
            return None if row is None else _recorded_at(row[0])

    def select_recorded_commands(self, command_ids: Sequence[str]) -> set[str]:
        found: set[str] = set()
        ids = list(command_ids)
        with self.datastore.transaction(commit=False) as c:
            for i in range(0, len(ids), 500):
                chunk = ids[i : i + 500]
                c.execute(
                    f"SELECT command_id FROM crm_commands WHERE command_id IN ({','.join('?' * len(chunk))})",
                    chunk,
                )
                found.update(r[0] for r in c.fetchall())
        return found

    def positions_of(self, ranges: Sequence[tuple[UUID, int, int]]) -> list[int]:
        positions: list[int] = []
        with self.datastore.transaction(commit=False) as c:
            for stream_id, lo, hi in ranges:
                c.execute(
                    f"SELECT notification_id FROM {self.events_table_name} "
                    "WHERE originator_id = ? AND originator_version BETWEEN ? AND ?",
                    (stream_id.hex, lo, hi),
                )
                positions.extend(r[0] for r in c.fetchall())
        return sorted(positions)

    def select_customer(self, customer_id: UUID, after: int, limit: int) -> list[LogRow]:
        """Every event about one customer, across all streams, by the customer_id index."""
        with self.datastore.transaction(commit=False) as c:
            c.execute(
                f"SELECT {_COLUMNS} FROM {self.events_table_name} WHERE customer_id = ? "
                "AND notification_id > ? ORDER BY notification_id LIMIT ?",
                (customer_id.hex, after, limit),
            )
            return [self._row(r) for r in c.fetchall()]

    def select_streams(self, stream_ids: Sequence[UUID]) -> list[LogRow]:
        ids = [s.hex for s in stream_ids]
        rows: list[LogRow] = []
        with self.datastore.transaction(commit=False) as c:
            for i in range(0, len(ids), 500):
                chunk = ids[i : i + 500]
                c.execute(
                    f"SELECT {_COLUMNS} FROM {self.events_table_name} "
                    f"WHERE originator_id IN ({','.join('?' * len(chunk))}) "
                    "ORDER BY originator_id, originator_version",
                    chunk,
                )
                rows.extend(self._row(r) for r in c.fetchall())
        return rows

    def select_notifications(
        self,
        start: int | None,
        limit: int,
        stop: int | None = None,
        topics: Sequence[str] = (),
        *,
        inclusive_of_start: bool = True,
    ) -> Sequence[Notification]:
        after = None if start is None else (start - 1 if inclusive_of_start else start)
        return [
            Notification(
                id=r.position,
                originator_id=r.stream_id,
                originator_version=r.version,
                topic=r.topic,
                state=r.state,
            )
            for r in self.select_log(after if after is not None else 0, limit, topics, stop)
        ]

    def select_log(
        self,
        after: int,
        limit: int,
        topics: Sequence[str] = (),
        stop: int | None = None,
    ) -> list[LogRow]:
        """Rows with position > after (and <= stop), in position order, with recorded_at."""
        statement = f"SELECT {_COLUMNS} FROM {self.events_table_name} WHERE notification_id > ? "
        params: list[Any] = [after]
        if stop is not None:
            statement += "AND notification_id <= ? "
            params.append(stop)
        if topics:
            statement += f"AND topic IN ({','.join('?' * len(topics))}) "
            params.extend(topics)
        statement += "ORDER BY notification_id LIMIT ?"
        params.append(limit)
        with self.datastore.transaction(commit=False) as c:
            c.execute(statement, params)
            return [self._row(r) for r in c.fetchall()]

    def select_stream(self, stream_id: UUID, after_version: int = 0) -> list[LogRow]:
        with self.datastore.transaction(commit=False) as c:
            c.execute(
                f"SELECT {_COLUMNS} FROM {self.events_table_name} "
                "WHERE originator_id = ? AND originator_version > ? ORDER BY originator_version",
                (stream_id.hex, after_version),
            )
            return [self._row(r) for r in c.fetchall()]

    def select_streams_after(self, after: Sequence[tuple[UUID, int]]) -> list[LogRow]:
        """The events of many streams newer than a version each (stream, after_version)."""
        rows: list[LogRow] = []
        with self.datastore.transaction(commit=False) as c:
            for stream_id, version in sorted(after):
                c.execute(
                    f"SELECT {_COLUMNS} FROM {self.events_table_name} "
                    "WHERE originator_id = ? AND originator_version > ? ORDER BY originator_version",
                    (stream_id.hex, version),
                )
                rows.extend(self._row(r) for r in c.fetchall())
        return rows

    def select_batch_reads(
        self,
        command_ids: Sequence[str],
        after: Sequence[tuple[UUID, int]],
        contact_keys: Sequence[tuple[str, bytes]],
        gaps: Sequence[tuple[int, int]] | None = None,
    ) -> tuple[set[str], list[LogRow], dict[tuple[str, bytes], UUID], Changes | None]:
        """What a batch of commands reads before it is decided (PostgreSQL does it in one
        round trip; here each part is a local query)."""
        changes: Changes | None = None
        if gaps is not None:  # first: the streams read next hold at least what the head says
            with self.datastore.transaction(commit=False) as c:
                c.execute(self.select_max_notification_id_statement)
                head = c.fetchone()[0] or 0
                found: list[tuple[UUID, int]] = []
                for lo, hi in gaps:
                    c.execute(
                        f"SELECT originator_id, originator_version FROM {self.events_table_name} "
                        "WHERE notification_id > ? AND notification_id < ? "
                        "AND notification_id <= ?",
                        (lo, min(hi, head + 1), head),
                    )
                    found.extend((UUID(s), v) for s, v in c.fetchall())
                changes = Changes(head, found)
        recorded = self.select_recorded_commands(command_ids) if command_ids else set()
        rows = self.select_streams_after(after) if after else []
        owners: dict[tuple[str, bytes], UUID] = {}
        with self.datastore.transaction(commit=False) as c:
            for kind, digest in contact_keys:
                c.execute(
                    "SELECT customer_id FROM crm_contact_index WHERE kind = ? AND digest = ?",
                    (kind, digest),
                )
                if row := c.fetchone():
                    owners[(kind, digest)] = UUID(row[0])
        return recorded, rows, owners, changes

    def stream_heads(self, stream_ids: Iterable[UUID]) -> dict[UUID, int]:
        ids = [s.hex for s in stream_ids]
        with self.datastore.transaction(commit=False) as c:
            c.execute(
                f"SELECT originator_id, max(originator_version) FROM {self.events_table_name} "
                f"WHERE originator_id IN ({','.join('?' * len(ids))}) GROUP BY originator_id",
                ids,
            )
            return {UUID(r[0]): r[1] for r in c.fetchall()}

    def _row(self, r: Any) -> LogRow:
        return LogRow(r[0], self.convert_originator_id(r[1]), r[2], r[3], r[4], _recorded_at(r[5]))


class SqliteBulkLogRecorder(SqliteLogRecorder):
    """The bulk path: one executemany per batch in one transaction; ids from last_insert_rowid.

    SQLite admits one writer at a time, and AUTOINCREMENT draws ids in insert order, so the
    ids of one transaction's batch are contiguous.
    """

    def _insert_events(
        self, c: SQLiteCursor, stored_events: Sequence[StoredEvent], **kwargs: Any
    ) -> Sequence[int] | None:
        self._insert_extras(c, **kwargs)
        if not stored_events:
            return []
        c.executemany(
            self.insert_events_statement,
            [
                (
                    s.originator_id.hex if isinstance(s.originator_id, UUID) else s.originator_id,
                    s.originator_version,
                    s.topic,
                    s.state,
                )
                for s in stored_events
            ],
        )
        c.execute("SELECT last_insert_rowid()")
        last = int(c.fetchone()[0])
        return list(range(last - len(stored_events) + 1, last + 1))


class SqliteKeyVault:
    """Wrapped data keys and the master-key fingerprint, in tables beside the log."""

    def __init__(self, datastore: SQLiteDatastore) -> None:
        self.datastore = datastore

    def create_tables(self) -> None:
        with self.datastore.transaction(commit=True) as c:
            c.execute(
                "CREATE TABLE IF NOT EXISTS crm_data_keys (customer_id TEXT PRIMARY KEY, "
                "wrapped BLOB, created_at TEXT NOT NULL DEFAULT (datetime('now')), forgotten_at TEXT)"
            )
            c.execute(
                "CREATE TABLE IF NOT EXISTS crm_key_meta (name TEXT PRIMARY KEY, value TEXT NOT NULL)"
            )

    def master_fingerprint(self, fingerprint: str) -> str:
        with self.datastore.transaction(commit=True) as c:
            c.execute(
                "INSERT INTO crm_key_meta (name, value) VALUES ('master_fingerprint', ?) "
                "ON CONFLICT (name) DO NOTHING",
                (fingerprint,),
            )
            c.execute("SELECT value FROM crm_key_meta WHERE name = 'master_fingerprint'")
            return str(c.fetchone()[0])

    def load_keys(self, customer_ids: Iterable[UUID]) -> dict[UUID, bytes | None]:
        ids = [c.hex for c in customer_ids]
        found: dict[UUID, bytes | None] = {}
        with self.datastore.transaction(commit=False) as c:
            for i in range(0, len(ids), 500):
                chunk = ids[i : i + 500]
                c.execute(
                    "SELECT customer_id, wrapped FROM crm_data_keys "
                    f"WHERE customer_id IN ({','.join('?' * len(chunk))})",
                    chunk,
                )
                found.update({UUID(r[0]): r[1] for r in c.fetchall()})
        return found

    def add_keys(self, wrapped: Mapping[UUID, bytes]) -> dict[UUID, bytes | None]:
        with self.datastore.transaction(commit=True) as c:
            c.executemany(
                "INSERT INTO crm_data_keys (customer_id, wrapped) VALUES (?, ?) "
                "ON CONFLICT (customer_id) DO NOTHING",
                [(cid.hex, w) for cid, w in wrapped.items()],
            )
        return self.load_keys(wrapped)

    def forget_key(self, customer_id: UUID) -> None:
        with self.datastore.transaction(commit=True) as c:
            c.execute(
                "INSERT INTO crm_data_keys (customer_id, wrapped, forgotten_at) "
                "VALUES (?, NULL, datetime('now')) ON CONFLICT (customer_id) "
                "DO UPDATE SET wrapped = NULL, forgotten_at = coalesce(forgotten_at, datetime('now'))",
                (customer_id.hex,),
            )


class SqliteContactIndex:
    """Unique e-mail and phone by keyed hash (HMAC digest), never by plaintext. Its table is
    created with the log recorder's, which claims contacts in the append transaction."""

    def __init__(self, datastore: SQLiteDatastore) -> None:
        self.datastore = datastore

    def claim(self, kind: str, digest: bytes, customer_id: UUID) -> UUID:
        with self.datastore.transaction(commit=True) as c:
            c.execute(
                "INSERT INTO crm_contact_index (kind, digest, customer_id) VALUES (?, ?, ?) "
                "ON CONFLICT (kind, digest) DO NOTHING",
                (kind, digest, customer_id.hex),
            )
            c.execute(
                "SELECT customer_id FROM crm_contact_index WHERE kind = ? AND digest = ?",
                (kind, digest),
            )
            return UUID(c.fetchone()[0])

    def owner(self, kind: str, digest: bytes) -> UUID | None:
        with self.datastore.transaction(commit=False) as c:
            c.execute(
                "SELECT customer_id FROM crm_contact_index WHERE kind = ? AND digest = ?",
                (kind, digest),
            )
            row = c.fetchone()
            return None if row is None else UUID(row[0])

    def owners(self, keys: Sequence[tuple[str, bytes]]) -> dict[tuple[str, bytes], UUID]:
        """Owners of many (kind, digest) keys; keys nobody holds are left out."""
        found: dict[tuple[str, bytes], UUID] = {}
        with self.datastore.transaction(commit=False) as c:
            for kind, digest in keys:
                c.execute(
                    "SELECT customer_id FROM crm_contact_index WHERE kind = ? AND digest = ?",
                    (kind, digest),
                )
                if row := c.fetchone():
                    found[(kind, digest)] = UUID(row[0])
        return found

    def release(
        self, customer_id: UUID, kind: str | None = None, digest: bytes | None = None
    ) -> None:
        statement = "DELETE FROM crm_contact_index WHERE customer_id = ?"
        params: list[Any] = [customer_id.hex]
        if kind is not None and digest is not None:
            statement += " AND kind = ? AND digest = ?"
            params += [kind, digest]
        with self.datastore.transaction(commit=True) as c:
            c.execute(statement, params)


def _pragmas(datastore: SQLiteDatastore, mode: str) -> None:
    """Every connection of the pool (the log's and the views', which share it) gets
    `PRAGMA secure_delete=ON`, so a row blanked when a customer is forgotten leaves no old
    plaintext in free pages (some builds default to it, not all), and `synchronous=<mode>`."""
    create = datastore.pool._create_connection

    def connect() -> Any:
        conn = create()
        conn.cursor().execute("PRAGMA secure_delete=ON")
        if mode != "full":  # SQLite's default
            conn.cursor().execute(f"PRAGMA synchronous={mode.upper()}")
            conn.cursor().execute("PRAGMA wal_autocheckpoint=50000")
        return conn

    datastore.pool._create_connection = connect  # type: ignore[method-assign]


class SqliteBackend:
    """The recorders, tracking recorder and key vault of one SQLite file."""

    name = "sqlite"

    def __init__(self, url: StoreURL) -> None:
        if url.target != ":memory:":
            url.path.parent.mkdir(parents=True, exist_ok=True)
        self.datastore = SQLiteDatastore(db_name=url.target, lock_timeout=30)
        _pragmas(self.datastore, url.synchronous)
        self.standard = SqliteLogRecorder(self.datastore)
        self.bulk = SqliteBulkLogRecorder(self.datastore)
        self.tracking = SQLiteTrackingRecorder(self.datastore)
        self.vault = SqliteKeyVault(self.datastore)
        self.contacts = SqliteContactIndex(self.datastore)
        self.standard.create_table()
        self.tracking.create_table()
        self.vault.create_tables()

    def close(self) -> None:
        self.datastore.close()
