"""PostgreSQL backend: eventsourcing's recorders plus `customer_id`, `recorded_at` and COPY.

The log is the library's `stored_events` table with two derived columns:
- `customer_id`, GENERATED from a fixed offset of our envelope bytes (NULL for foreign bytes),
  so any plain StoredEvent, including the library's conformance cases, can be inserted;
- `recorded_at`, a `clock_timestamp()` default evaluated by the INSERT that runs under the
  table lock, hence in step with `notification_id` (our position).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime
from functools import partial
from typing import Any
from uuid import UUID

import msgspec
import psycopg
from eventsourcing.persistence import (
    InterfaceError,
    OperationalError,
    StoredEvent,
)
from eventsourcing.postgres import (
    PostgresApplicationRecorder,
    PostgresDatastore,
    PostgresTrackingRecorder,
)
from eventsourcing.utils import retry
from psycopg import Cursor
from psycopg.adapt import PyFormat
from psycopg.conninfo import conninfo_to_dict
from psycopg.copy import QueuedLibpqWriter
from psycopg.rows import DictRow, tuple_row
from psycopg.sql import SQL, Composed, Identifier, Literal

from infra.codec import LogRow, PageRow
from infra.store.event_store import Changes, GroupState, GroupWrites
from infra.store.url import StoreURL

_json = msgspec.json.Encoder()
_DDL_LOCK = 0x43524D5F444444  # "CRM_DDD": the advisory lock the engine's DDL runs under

# customer_id is the first element of the envelope's msgpack array, right after the 4-byte
# prefix: a fixarray (0x90-0x9F) or array16 (0xDC nn nn) header, then bin8 of 16 (0xC4 0x10).
CUSTOMER_ID_EXPR = (
    "CASE WHEN length(state) < 23 OR get_byte(state, 0) <> 206 THEN NULL "
    "WHEN get_byte(state, 4) BETWEEN 144 AND 159 AND get_byte(state, 5) = 196 "
    "AND get_byte(state, 6) = 16 THEN encode(substring(state from 8 for 16), 'hex')::uuid "
    "WHEN length(state) >= 25 AND get_byte(state, 4) = 220 AND get_byte(state, 7) = 196 "
    "AND get_byte(state, 8) = 16 THEN encode(substring(state from 10 for 16), 'hex')::uuid END"
)


def _columns(rows: Sequence[tuple[Any, ...]]) -> list[list[Any]]:
    """Rows as one list per column, the parameters of an unnest(...) statement."""
    return [list(col) for col in zip(*rows, strict=True)]


def _changes(rows: Sequence[tuple[Any, ...]]) -> Changes:
    """The rows of `_select_changes`: the head on each, a (stream, version) where not null."""
    return Changes(rows[0][0], [(s, v) for _, s, v in rows if s is not None])


SEAL_TABLE = "log_seal"
_BYTES_DUMPER = psycopg.adapters.get_dumper(bytes, PyFormat.BINARY)  # psycopg's own (in C)


def append_only_ddl(schema: str, events_table: str) -> list[Composed]:
    """The seal table beside the log, and triggers refusing UPDATE, DELETE and TRUNCATE on the
    log and on the seal table (created once: a trigger already there is left alone, so opening
    a store takes no lock on the log)."""
    s = Identifier(schema)
    statements: list[Composed] = [
        SQL(
            "CREATE TABLE IF NOT EXISTS {s}.{seal} (position bigint PRIMARY KEY, "
            "hash bytea NOT NULL, sealed_at timestamptz NOT NULL DEFAULT clock_timestamp())"
        ).format(s=s, seal=Identifier(SEAL_TABLE)),
        SQL(
            "CREATE OR REPLACE FUNCTION {s}.crm_append_only() RETURNS trigger "
            "LANGUAGE plpgsql AS $crm$ BEGIN "
            "RAISE EXCEPTION 'crm-engine: % is append-only: % refused', TG_TABLE_NAME, TG_OP "
            "USING HINT = 'the log is never rewritten; forgetting deletes a key instead'; "
            "END $crm$"
        ).format(s=s),
    ]
    for table in (events_table, SEAL_TABLE):
        for suffix, when, each in (
            ("append_only", "UPDATE OR DELETE", "ROW"),
            ("no_truncate", "TRUNCATE", "STATEMENT"),
        ):
            name = f"{table}_{suffix}"
            statements.append(
                SQL(
                    "DO $crm$ BEGIN IF NOT EXISTS (SELECT 1 FROM pg_trigger t "
                    "JOIN pg_class c ON c.oid = t.tgrelid "
                    "JOIN pg_namespace n ON n.oid = c.relnamespace "
                    "WHERE n.nspname = {schema_name} AND c.relname = {table_name} "
                    "AND t.tgname = {trigger_name}) THEN "
                    "CREATE TRIGGER {trigger} BEFORE {when} ON {s}.{table} "
                    "FOR EACH {each} EXECUTE FUNCTION {s}.crm_append_only(); "
                    "END IF; END $crm$"
                ).format(
                    schema_name=Literal(schema),
                    table_name=Literal(table),
                    trigger_name=Literal(name),
                    trigger=Identifier(name),
                    when=SQL(when),
                    s=s,
                    table=Identifier(table),
                    each=SQL(each),
                )
            )
    return statements


# The owners of a list of contact keys: one index probe per key (see `_positions_of`).
_CONTACT_OWNERS = (
    "SELECT c.kind, c.digest, c.customer_id FROM unnest(%b::text[], %b::bytea[]) "
    "AS k(kind, digest) CROSS JOIN LATERAL (SELECT x.kind, x.digest, x.customer_id "
    "FROM {s}.crm_contact_index x WHERE x.kind = k.kind AND x.digest = k.digest OFFSET 0) c"
)


def log_rows(cursor: object) -> Callable[[Sequence[Any]], LogRow]:
    """psycopg row factory: each row built as a LogRow by the driver's own loop
    (`tuple.__new__` is a C call; `LogRow._make` per row was a Python one)."""
    return partial(tuple.__new__, LogRow)  # type: ignore[arg-type]


def page_rows(cursor: object) -> Callable[[Sequence[Any]], PageRow]:
    """`log_rows` for PageRow (the stream id read as its 16 bytes)."""
    return partial(tuple.__new__, PageRow)  # type: ignore[arg-type]


class PostgresLogRecorder(PostgresApplicationRecorder):
    """The standard append path (the library's, untouched) on our table definition."""

    def __init__(self, datastore: PostgresDatastore, *, events_table_name: str = "stored_events"):
        super().__init__(datastore, events_table_name=events_table_name)
        schema = Identifier(self.datastore.schema)
        table = Identifier(self.events_table_name)
        self.sql_create_statements[self.create_table_statement_index] = SQL(
            "CREATE TABLE IF NOT EXISTS {schema}.{table} ("
            "originator_id uuid NOT NULL, "
            "originator_version bigint NOT NULL, "
            "topic text, "
            "state bytea, "
            "notification_id bigserial, "
            "customer_id uuid GENERATED ALWAYS AS (" + CUSTOMER_ID_EXPR + ") STORED, "
            "recorded_at timestamptz NOT NULL DEFAULT clock_timestamp(), "
            "PRIMARY KEY (originator_id, originator_version)) "
            "WITH (autovacuum_vacuum_threshold = 100000000, autovacuum_vacuum_scale_factor = 0.5)"
        ).format(schema=schema, table=table)
        self.sql_create_statements.append(
            SQL(
                "CREATE INDEX IF NOT EXISTS {index} ON {schema}.{table} "
                "(customer_id, notification_id) WHERE customer_id IS NOT NULL"
            ).format(
                index=Identifier(f"{self.events_table_name}_customer_idx"),
                schema=schema,
                table=table,
            )
        )
        self.sql_create_statements.append(
            SQL(
                "CREATE TABLE IF NOT EXISTS {schema}.crm_commands ("
                "command_id text PRIMARY KEY, name text NOT NULL, streams bytea NOT NULL, "
                "recorded_at timestamptz NOT NULL DEFAULT clock_timestamp())"
            ).format(schema=schema)
        )
        self.sql_create_statements.append(
            SQL(
                "CREATE TABLE IF NOT EXISTS {schema}.crm_contact_index ("
                "kind text NOT NULL, digest bytea NOT NULL, customer_id uuid NOT NULL, "
                "PRIMARY KEY (kind, digest))"
            ).format(schema=schema)
        )
        self.sql_create_statements.append(
            SQL(
                "CREATE INDEX IF NOT EXISTS crm_contact_index_customer "
                "ON {schema}.crm_contact_index (customer_id)"
            ).format(schema=schema)
        )
        self.sql_create_statements.extend(
            append_only_ddl(self.datastore.schema, self.events_table_name)
        )
        self._insert_commands = SQL(
            "INSERT INTO {schema}.crm_commands (command_id, name, streams) "
            "SELECT * FROM unnest(%b::text[], %b::text[], %b::bytea[])"
        ).format(schema=schema)
        self._copy_commands = SQL(
            "COPY {schema}.crm_commands (command_id, name, streams) FROM STDIN (FORMAT BINARY)"
        ).format(schema=schema)
        self._insert_claims = SQL(
            "INSERT INTO {schema}.crm_contact_index (kind, digest, customer_id) "
            "SELECT * FROM unnest(%b::text[], %b::bytea[], %b::uuid[])"
        ).format(schema=schema)
        self._delete_claims = SQL(
            "DELETE FROM {schema}.crm_contact_index c "
            "USING unnest(%b::text[], %b::bytea[], %b::uuid[]) AS r(kind, digest, customer_id) "
            "WHERE c.kind = r.kind AND c.digest = r.digest AND c.customer_id = r.customer_id"
        ).format(schema=schema)
        self._select_command = SQL(
            "SELECT name, streams FROM {schema}.crm_commands WHERE command_id = %s"
        ).format(schema=schema)
        # The ids travel as one JSON text: psycopg dumps a list element by element in Python.
        self._select_commands = SQL(
            "SELECT command_id FROM {schema}.crm_commands WHERE command_id = "
            "ANY(ARRAY(SELECT json_array_elements_text(%s::json)))"
        ).format(schema=schema)
        # Lookups by a list of keys are written as a LATERAL subquery that cannot be flattened
        # (OFFSET 0): one index probe per key, whatever the plan cache holds. As a join, the
        # generic plan psycopg's prepared statement settles on early (a small log, 100 rows
        # assumed of the function) is a hash join over a sequential scan of the whole table:
        # a group commit's read then grew with the log (seconds into a load, most of a batch).
        self._positions_of = SQL(
            "SELECT e.notification_id FROM unnest(%b::uuid[], %b::int8[], %b::int8[]) "
            "AS r(id, lo, hi) CROSS JOIN LATERAL (SELECT x.notification_id FROM {schema}.{table} "
            "x WHERE x.originator_id = r.id AND x.originator_version BETWEEN r.lo AND r.hi "
            "OFFSET 0) e ORDER BY e.notification_id"
        ).format(schema=schema, table=table)
        columns = SQL(
            "SELECT notification_id, originator_id, originator_version, topic, state, recorded_at "
            "FROM {schema}.{table} "
        ).format(schema=schema, table=table)
        self._select_streams = columns + SQL(
            "WHERE originator_id = ANY(%b) ORDER BY originator_id, originator_version"
        )
        self._select_customer = columns + SQL(
            "WHERE customer_id = %s AND notification_id > %s ORDER BY notification_id LIMIT %s"
        )
        # A page of the log: the stream id as its bytes (see PageRow).
        self._select_log = SQL(
            "SELECT notification_id, uuid_send(originator_id), originator_version, topic, "
            "state, recorded_at FROM {schema}.{table} WHERE notification_id > %s "
        ).format(schema=schema, table=table)
        self._select_stream = columns + SQL(
            "WHERE originator_id = %s AND originator_version > %s ORDER BY originator_version"
        )
        self._select_streams_after = SQL(
            "SELECT e.notification_id, e.originator_id, e.originator_version, e.topic, e.state, "
            "e.recorded_at FROM json_to_recordset(%s::json) AS r(id uuid, after bigint) "
            "CROSS JOIN LATERAL (SELECT * FROM {schema}.{table} x WHERE x.originator_id = r.id "
            "AND x.originator_version > r.after OFFSET 0) e "
            "ORDER BY e.originator_id, e.originator_version"
        ).format(schema=schema, table=table)
        # The log's head, and the (stream, version) of every event after `after` outside the
        # caller's own ranges: one snapshot, so each event at or below the head is in it (the
        # log lock makes positions commit in order). Each gap between own ranges is one index
        # range scan; the caller's own events are never read.
        self._select_changes = SQL(
            "WITH h AS MATERIALIZED (SELECT coalesce(max(notification_id), 0) AS head "
            "FROM {schema}.{table}) SELECT h.head, c.originator_id, c.originator_version FROM h "
            "LEFT JOIN LATERAL (SELECT x.originator_id, x.originator_version "
            "FROM unnest(%b::int8[], %b::int8[]) AS g(lo, hi) CROSS JOIN LATERAL ("
            "SELECT originator_id, originator_version FROM {schema}.{table} y "
            "WHERE y.notification_id > g.lo AND y.notification_id < g.hi "
            "AND y.notification_id <= h.head OFFSET 0) x) c ON true"
        ).format(schema=schema, table=table)
        self._stream_heads = SQL(
            "SELECT originator_id, max(originator_version) FROM {schema}.{table} "
            "WHERE originator_id = ANY(%b) GROUP BY originator_id"
        ).format(schema=schema, table=table)
        self._contact_owners = SQL(_CONTACT_OWNERS).format(s=schema)
        # ORDER BY n: ids are drawn in the order of the arrays, i.e. of the group's items.
        self._insert_group_events = SQL(
            "INSERT INTO {schema}.{table} (originator_id, originator_version, topic, state) "
            "SELECT i, v, t, s FROM unnest(%b::uuid[], %b::int8[], %b::text[], %b::bytea[]) "
            "WITH ORDINALITY AS r(i, v, t, s, n) ORDER BY n RETURNING notification_id"
        ).format(schema=schema, table=table)

    @retry((InterfaceError, OperationalError), max_attempts=10, wait=0.2)
    def select_log(
        self, after: int, limit: int, topics: Sequence[str] = (), stop: int | None = None
    ) -> list[PageRow]:
        """Rows with position > after (and <= stop), in position order, with recorded_at."""
        statement: Composed = self._select_log
        params: list[Any] = [after]
        if stop is not None:
            statement += SQL("AND notification_id <= %s ")
            params.append(stop)
        if topics:
            statement += SQL("AND topic = ANY(%s) ")
            params.append(list(topics))
        statement += SQL("ORDER BY notification_id LIMIT %s")
        params.append(limit)
        with (
            self.datastore.get_connection() as conn,
            conn.cursor(row_factory=page_rows, binary=True) as curs,
        ):
            curs.execute(statement, params, prepare=True)
            return curs.fetchall()

    def _insert_events(
        self, curs: Cursor[DictRow], stored_events: Sequence[StoredEvent], **kwargs: Any
    ) -> None:
        """Rows that commit with the events: command records and contact claims/releases."""
        if commands := kwargs.get("commands"):
            curs.execute(self._insert_commands, [list(col) for col in zip(*commands, strict=True)])
        if claims := kwargs.get("claims"):
            curs.execute(self._insert_claims, [list(col) for col in zip(*claims, strict=True)])
        if releases := kwargs.get("releases"):
            curs.execute(self._delete_claims, [list(col) for col in zip(*releases, strict=True)])

    @retry((InterfaceError, OperationalError), max_attempts=10, wait=0.2)
    def select_command(self, command_id: str) -> tuple[str, bytes] | None:
        with self.datastore.get_connection() as conn, conn.cursor(row_factory=tuple_row) as curs:
            curs.execute(self._select_command, (command_id,), prepare=True)
            row = curs.fetchone()
            return None if row is None else (row[0], bytes(row[1]))

    @retry((InterfaceError, OperationalError), max_attempts=10, wait=0.2)
    def select_command_names(self, command_ids: Sequence[str]) -> dict[str, str]:
        """Each recorded command's name, by id (the audit names the command of an event)."""
        statement = SQL(
            "SELECT command_id, name FROM {schema}.crm_commands WHERE command_id = "
            "ANY(ARRAY(SELECT json_array_elements_text(%s::json)))"
        ).format(schema=Identifier(self.datastore.schema))
        with self.datastore.get_connection() as conn, conn.cursor(row_factory=tuple_row) as curs:
            curs.execute(statement, (_json.encode(list(command_ids)).decode(),))
            return dict(curs.fetchall())

    @retry((InterfaceError, OperationalError), max_attempts=10, wait=0.2)
    def select_position_recorded_by(self, at: datetime) -> int:
        """The last position recorded at or before `at` (recorded_at rises with position)."""
        statement = SQL(
            "SELECT notification_id FROM {schema}.{table} WHERE recorded_at <= %s "
            "ORDER BY notification_id DESC LIMIT 1"
        ).format(schema=Identifier(self.datastore.schema), table=Identifier(self.events_table_name))
        with self.datastore.get_connection() as conn, conn.cursor(row_factory=tuple_row) as curs:
            curs.execute(statement, (at,))
            row = curs.fetchone()
            return 0 if row is None else int(row[0])

    @retry((InterfaceError, OperationalError), max_attempts=10, wait=0.2)
    def select_recorded_at(self, position: int) -> datetime | None:
        """The record time of the last event at or before `position`."""
        statement = SQL(
            "SELECT recorded_at FROM {schema}.{table} WHERE notification_id <= %s "
            "ORDER BY notification_id DESC LIMIT 1"
        ).format(schema=Identifier(self.datastore.schema), table=Identifier(self.events_table_name))
        with self.datastore.get_connection() as conn, conn.cursor(row_factory=tuple_row) as curs:
            curs.execute(statement, (position,))
            row = curs.fetchone()
            return None if row is None else row[0]

    @retry((InterfaceError, OperationalError), max_attempts=10, wait=0.2)
    def select_recorded_commands(self, command_ids: Sequence[str]) -> set[str]:
        with self.datastore.get_connection() as conn, conn.cursor(row_factory=tuple_row) as curs:
            curs.execute(self._select_commands, (_json.encode(list(command_ids)).decode(),))
            return {r[0] for r in curs.fetchall()}

    @retry((InterfaceError, OperationalError), max_attempts=10, wait=0.2)
    def positions_of(self, ranges: Sequence[tuple[UUID, int, int]]) -> list[int]:
        with self.datastore.get_connection() as conn, conn.cursor(row_factory=tuple_row) as curs:
            curs.execute(self._positions_of, [list(col) for col in zip(*ranges, strict=True)])
            return [r[0] for r in curs.fetchall()]

    @retry((InterfaceError, OperationalError), max_attempts=10, wait=0.2)
    def select_customer(self, customer_id: UUID, after: int, limit: int) -> list[LogRow]:
        """Every event about one customer, across all streams, by the customer_id index."""
        with (
            self.datastore.get_connection() as conn,
            conn.cursor(row_factory=log_rows, binary=True) as curs,
        ):
            curs.execute(self._select_customer, (customer_id, after, limit), prepare=True)
            return curs.fetchall()

    @retry((InterfaceError, OperationalError), max_attempts=10, wait=0.2)
    def select_streams(self, stream_ids: Sequence[UUID]) -> list[LogRow]:
        with (
            self.datastore.get_connection() as conn,
            conn.cursor(row_factory=log_rows, binary=True) as curs,
        ):
            curs.execute(self._select_streams, (list(stream_ids),))
            return curs.fetchall()

    @retry((InterfaceError, OperationalError), max_attempts=10, wait=0.2)
    def select_streams_after(self, after: Sequence[tuple[UUID, int]]) -> list[LogRow]:
        """The events of many streams newer than a version each (stream, after_version)."""
        with (
            self.datastore.get_connection() as conn,
            conn.cursor(row_factory=log_rows, binary=True) as curs,
        ):
            pairs = [{"id": i, "after": v} for i, v in after]
            curs.execute(self._select_streams_after, (_json.encode(pairs).decode(),))
            return curs.fetchall()

    @retry((InterfaceError, OperationalError), max_attempts=10, wait=0.2)
    def select_batch_reads(
        self,
        command_ids: Sequence[str],
        after: Sequence[tuple[UUID, int]],
        contact_keys: Sequence[tuple[str, bytes]],
        gaps: Sequence[tuple[int, int]] | None = None,
    ) -> tuple[set[str], list[LogRow], dict[tuple[str, bytes], UUID], Changes | None]:
        """What a batch of commands reads before it is decided, in one pipelined round trip:
        the recorded command ids, the streams' newer events, the contacts' owners and, given
        `gaps` (open position intervals), the log's head and the events in those gaps (read
        first: the streams read after it hold at least every event up to that head)."""
        with self.datastore.get_connection() as conn, conn.pipeline() as pipeline:
            changes = conn.cursor(row_factory=tuple_row)
            if gaps is not None:
                changes.execute(self._select_changes, _columns(gaps) if gaps else ([], []))
            recorded = conn.cursor(row_factory=tuple_row)
            if command_ids:
                recorded.execute(self._select_commands, (_json.encode(list(command_ids)).decode(),))
            newer = conn.cursor(row_factory=log_rows, binary=True)
            if after:
                pairs = [{"id": i, "after": v} for i, v in after]
                newer.execute(self._select_streams_after, (_json.encode(pairs).decode(),))
            owners = conn.cursor(row_factory=tuple_row)
            if contact_keys:
                owners.execute(self._contact_owners, _columns(contact_keys))
            pipeline.sync()
            return (
                {r[0] for r in recorded.fetchall()} if command_ids else set(),
                newer.fetchall() if after else [],
                {(k, bytes(d)): c for k, d, c in owners.fetchall()} if contact_keys else {},
                _changes(changes.fetchall()) if gaps is not None else None,
            )

    @retry((InterfaceError, OperationalError), max_attempts=10, wait=0.2)
    def select_stream(self, stream_id: UUID, after_version: int = 0) -> list[LogRow]:
        with (
            self.datastore.get_connection() as conn,
            conn.cursor(row_factory=log_rows, binary=True) as curs,
        ):
            curs.execute(self._select_stream, (stream_id, after_version), prepare=True)
            return curs.fetchall()

    @retry((InterfaceError, OperationalError), max_attempts=10, wait=0.2)
    def stream_heads(self, stream_ids: Iterable[UUID]) -> dict[UUID, int]:
        with self.datastore.get_connection() as conn, conn.cursor(row_factory=tuple_row) as curs:
            curs.execute(self._stream_heads, (list(stream_ids),))
            return dict(curs.fetchall())

    @retry((InterfaceError, OperationalError), max_attempts=10, wait=0.2)
    def insert_command_group(
        self,
        stream_ids: Sequence[UUID],
        command_ids: Sequence[str],
        contact_keys: Sequence[tuple[str, bytes]],
        plan: Callable[[GroupState], GroupWrites],
    ) -> list[int]:
        """A group commit: under the table lock, read the heads, recorded commands and
        contact owners the group touches (one pipelined round), let `plan` check the items
        against them, then write what it accepted and commit (a second round: the COMMIT is
        queued behind the writes, and the ids are read once both came back).

        A retry after a dropped connection starts over and plans again from what committed."""
        with self.datastore.get_connection() as conn:
            with conn.pipeline() as pipeline, conn.transaction():
                with conn.cursor() as curs:
                    self._lock_table(curs)
                heads = conn.cursor(row_factory=tuple_row)
                heads.execute(self._stream_heads, (list(stream_ids),), prepare=True)
                recorded = conn.cursor(row_factory=tuple_row)
                if command_ids:
                    recorded.execute(
                        self._select_commands, (_json.encode(list(command_ids)).decode(),)
                    )
                owners = conn.cursor(row_factory=tuple_row)
                if contact_keys:
                    owners.execute(self._contact_owners, _columns(contact_keys), prepare=True)
                pipeline.sync()
                writes = plan(
                    GroupState(
                        heads=dict(heads.fetchall()),
                        recorded={r[0] for r in recorded.fetchall()} if command_ids else set(),
                        owners={(k, bytes(d)): c for k, d, c in owners.fetchall()}
                        if contact_keys
                        else {},
                    )
                )
                if not writes.events:
                    return []
                with conn.cursor() as curs:
                    if writes.releases:
                        curs.execute(self._delete_claims, _columns(writes.releases))
                    if writes.claims:
                        curs.execute(self._insert_claims, _columns(writes.claims))
                    if writes.commands:
                        curs.execute(self._insert_commands, _columns(writes.commands))
                    self._notify_channel(curs)
                inserted = conn.cursor(row_factory=tuple_row)
                events = writes.events
                inserted.execute(
                    self._insert_group_events,
                    (
                        [e.originator_id for e in events],
                        [e.originator_version for e in events],
                        [e.topic for e in events],
                        [e.state for e in events],
                    ),
                    prepare=True,
                )
            return sorted(r[0] for r in inserted.fetchall())


class PostgresBulkLogRecorder(PostgresLogRecorder):
    """The bulk path: binary COPY under the same table lock, ids read back from the sequence.

    psycopg refuses COPY in pipeline mode, so this overrides `insert_events` whole. Every
    writer takes the EXCLUSIVE table lock before drawing ids, so the ids this transaction
    draws are contiguous: the last one (currval) and the count give them all.
    """

    def __init__(self, datastore: PostgresDatastore, *, events_table_name: str = "stored_events"):
        super().__init__(datastore, events_table_name=events_table_name)
        schema = Identifier(self.datastore.schema)
        table = Identifier(self.events_table_name)
        self._copy = SQL(
            "COPY {schema}.{table} (originator_id, originator_version, topic, state) "
            "FROM STDIN (FORMAT BINARY)"
        ).format(schema=schema, table=table)
        self._last_id = SQL("SELECT currval(pg_get_serial_sequence(%s, 'notification_id'))")
        self._qualified_name = f'"{self.datastore.schema}"."{self.events_table_name}"'

    @retry((InterfaceError, OperationalError), max_attempts=10, wait=0.2)
    def insert_events(
        self, stored_events: Sequence[StoredEvent], **kwargs: Any
    ) -> Sequence[int] | None:
        if not stored_events:
            return []
        commands = kwargs.pop("commands", None)
        with self.datastore.get_connection() as conn, conn.transaction(), conn.cursor() as curs:
            # `set_types([..., "bytea"])` finds the dumper by oid, and the last one registered
            # for bytea is the DB-API `Binary` wrapper's, in Python: half the cost of a row.
            conn.adapters.register_dumper(bytes, _BYTES_DUMPER)
            self._lock_table(curs)
            self._insert_events(curs, stored_events, **kwargs)
            if commands:
                with curs.copy(self._copy_commands) as copy:
                    copy.set_types(["text", "text", "bytea"])
                    write_row = copy.write_row
                    for command in commands:
                        write_row(command)
            # A queued writer hands the buffers to a thread, so the server takes rows while
            # this one formats the next ones.
            with curs.copy(self._copy, writer=QueuedLibpqWriter(curs)) as copy:
                copy.set_types(["uuid", "int8", "text", "bytea"])
                write_row = copy.write_row
                for e in stored_events:
                    write_row((e.originator_id, e.originator_version, e.topic, e.state))
            curs.execute(self._last_id, (self._qualified_name,))
            row = curs.fetchone()
            assert row is not None
            last = int(next(iter(row.values())))
            self._notify_channel(curs)
        return list(range(last - len(stored_events) + 1, last + 1))


class PostgresKeyVault:
    """Wrapped data keys and the master-key fingerprint, in tables beside the log."""

    def __init__(self, datastore: PostgresDatastore) -> None:
        self.datastore = datastore
        s = Identifier(datastore.schema)
        self._ddl = [
            SQL(
                "CREATE TABLE IF NOT EXISTS {s}.crm_data_keys ("
                "customer_id uuid PRIMARY KEY, wrapped bytea, "
                "created_at timestamptz NOT NULL DEFAULT now(), forgotten_at timestamptz)"
            ).format(s=s),
            SQL(
                "CREATE TABLE IF NOT EXISTS {s}.crm_key_meta (name text PRIMARY KEY, value text NOT NULL)"
            ).format(s=s),
        ]
        self._s = s

    def create_tables(self) -> None:
        with self.datastore.transaction(commit=True) as curs:
            for statement in self._ddl:
                curs.execute(statement)

    def master_fingerprint(self, fingerprint: str) -> str:
        with self.datastore.transaction(commit=True) as curs:
            curs.execute(
                SQL(
                    "INSERT INTO {s}.crm_key_meta (name, value) VALUES ('master_fingerprint', %s) "
                    "ON CONFLICT (name) DO NOTHING"
                ).format(s=self._s),
                (fingerprint,),
            )
            curs.execute(
                SQL("SELECT value FROM {s}.crm_key_meta WHERE name = 'master_fingerprint'").format(
                    s=self._s
                )
            )
            row = curs.fetchone()
            assert row is not None
            return str(row["value"])

    def load_keys(self, customer_ids: Iterable[UUID]) -> dict[UUID, bytes | None]:
        ids = list(customer_ids)
        with self.datastore.get_connection() as conn, conn.cursor(row_factory=tuple_row) as curs:
            curs.execute(
                SQL(
                    "SELECT customer_id, wrapped FROM {s}.crm_data_keys WHERE customer_id = ANY(%b)"
                ).format(s=self._s),
                (ids,),
            )
            return {cid: (bytes(w) if w is not None else None) for cid, w in curs.fetchall()}

    def add_keys(self, wrapped: Mapping[UUID, bytes]) -> dict[UUID, bytes | None]:
        """One statement, one round trip: the keys it inserted (RETURNING) and those already
        stored (the statement's snapshot). A key another transaction committed after that
        snapshot is in neither: read once more for those."""
        ids = list(wrapped)
        with self.datastore.get_connection() as conn, conn.cursor(row_factory=tuple_row) as curs:
            curs.execute(
                SQL(
                    "WITH added AS (INSERT INTO {s}.crm_data_keys (customer_id, wrapped) "
                    "SELECT * FROM unnest(%b::uuid[], %b::bytea[]) "
                    "ON CONFLICT (customer_id) DO NOTHING RETURNING customer_id, wrapped) "
                    "SELECT customer_id, wrapped FROM added UNION ALL "
                    "SELECT customer_id, wrapped FROM {s}.crm_data_keys WHERE customer_id = ANY(%b)"
                ).format(s=self._s),
                (ids, list(wrapped.values()), ids),
            )
            stored = {cid: (bytes(w) if w is not None else None) for cid, w in curs.fetchall()}
        missing = [c for c in ids if c not in stored]
        if missing:
            stored.update(self.load_keys(missing))
        return stored

    def forget_key(self, customer_id: UUID) -> None:
        with self.datastore.transaction(commit=True) as curs:
            curs.execute(
                SQL(
                    "INSERT INTO {s}.crm_data_keys (customer_id, wrapped, forgotten_at) "
                    "VALUES (%s, NULL, now()) ON CONFLICT (customer_id) "
                    "DO UPDATE SET wrapped = NULL, forgotten_at = coalesce({s}.crm_data_keys.forgotten_at, now())"
                ).format(s=self._s),
                (customer_id,),
            )


class PostgresContactIndex:
    """Unique e-mail and phone by keyed hash (HMAC digest), never by plaintext. Its table is
    created with the log recorder's, which claims contacts in the append transaction."""

    def __init__(self, datastore: PostgresDatastore) -> None:
        self.datastore = datastore
        self._s = Identifier(datastore.schema)

    def claim(self, kind: str, digest: bytes, customer_id: UUID) -> UUID:
        with self.datastore.transaction(commit=True) as curs:
            curs.execute(
                SQL(
                    "INSERT INTO {s}.crm_contact_index (kind, digest, customer_id) VALUES (%s, %s, %s) "
                    "ON CONFLICT (kind, digest) DO NOTHING"
                ).format(s=self._s),
                (kind, digest, customer_id),
            )
            curs.execute(
                SQL(
                    "SELECT customer_id FROM {s}.crm_contact_index WHERE kind = %s AND digest = %s"
                ).format(s=self._s),
                (kind, digest),
            )
            row = curs.fetchone()
            assert row is not None
            return UUID(str(row["customer_id"]))

    def owner(self, kind: str, digest: bytes) -> UUID | None:
        with self.datastore.transaction(commit=False) as curs:
            curs.execute(
                SQL(
                    "SELECT customer_id FROM {s}.crm_contact_index WHERE kind = %s AND digest = %s"
                ).format(s=self._s),
                (kind, digest),
            )
            row = curs.fetchone()
            return None if row is None else UUID(str(row["customer_id"]))

    def owners(self, keys: Sequence[tuple[str, bytes]]) -> dict[tuple[str, bytes], UUID]:
        """Owners of many (kind, digest) keys in one query; keys nobody holds are left out."""
        if not keys:
            return {}
        with self.datastore.get_connection() as conn, conn.cursor(row_factory=tuple_row) as curs:
            curs.execute(
                SQL(_CONTACT_OWNERS).format(s=self._s),
                [list(c) for c in zip(*keys, strict=True)],
            )
            return {(k, bytes(d)): cid for k, d, cid in curs.fetchall()}

    def release(
        self, customer_id: UUID, kind: str | None = None, digest: bytes | None = None
    ) -> None:
        statement = SQL("DELETE FROM {s}.crm_contact_index WHERE customer_id = %s").format(
            s=self._s
        )
        params: list[Any] = [customer_id]
        if kind is not None and digest is not None:
            statement += SQL(" AND kind = %s AND digest = %s")
            params += [kind, digest]
        with self.datastore.transaction(commit=True) as curs:
            curs.execute(statement, params)


class PostgresBackend:
    """The recorders, tracking recorder and key vault of one PostgreSQL database (and schema)."""

    name = "postgresql"

    def __init__(self, url: StoreURL, *, pool_size: int = 4, max_overflow: int = 8) -> None:
        params = conninfo_to_dict(url.target)
        # Every insert path takes the log's EXCLUSIVE lock before it draws positions, so
        # positions become visible in order (readers, the sealer and the importer's watermark
        # rely on it). eventsourcing's `enable_db_functions` inserts without that lock: keep
        # it off.
        self.datastore = PostgresDatastore(
            dbname=str(params.get("dbname", "postgres")),
            host=str(params.get("host", "127.0.0.1")),
            port=str(params.get("port", "5432")),
            user=str(params.get("user", "")),
            password=str(params.get("password", "")),
            pool_size=pool_size,
            max_overflow=max_overflow,
            schema=url.schema,
            idle_in_transaction_session_timeout=60,
        )
        # Sessions in UTC, whatever the server's default: time windows are UTC (DESIGN.md),
        # and psycopg then loads timestamptz into datetimes of `timezone.utc` in C, where a
        # zone such as `Etc/UTC` costs a Python `astimezone` per value (a catch-up reads one
        # per event: a tenth of its time).
        self.datastore.pool.kwargs["options"] = "-c TimeZone=UTC"  # type: ignore[index]
        self.standard = PostgresLogRecorder(self.datastore)
        self.bulk = PostgresBulkLogRecorder(self.datastore)
        self.tracking = PostgresTrackingRecorder(
            self.datastore, tracking_table_name="notification_tracking"
        )
        self.vault = PostgresKeyVault(self.datastore)
        self.contacts = PostgresContactIndex(self.datastore)
        # Processes that start together on a fresh database (compose: handlers, projector,
        # relay) would race on CREATE ... IF NOT EXISTS ("tuple concurrently updated"): one
        # creates while the others wait on a session lock, then find everything in place.
        with psycopg.connect(url.target, autocommit=True) as lock:
            lock.execute("SELECT pg_advisory_lock(%s)", (_DDL_LOCK,))
            try:
                if url.schema:
                    lock.execute(
                        SQL("CREATE SCHEMA IF NOT EXISTS {0}").format(Identifier(url.schema))
                    )
                self.standard.create_table()
                self.tracking.create_table()
                self.vault.create_tables()
            finally:
                lock.execute("SELECT pg_advisory_unlock(%s)", (_DDL_LOCK,))

    def close(self) -> None:
        self.datastore.close()
