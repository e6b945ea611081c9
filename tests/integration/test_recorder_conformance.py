"""eventsourcing's own recorder conformance cases, run on our recorders.

Both backends, both append paths (the library's standard path and our bulk path), with our
extra columns in place: the cases insert raw bytes such as b"state1", so `customer_id` must
be derivable (NULL) from any StoredEvent.
"""

from __future__ import annotations

import tempfile
import threading
from pathlib import Path
from typing import Any

import eventsourcing.tests.persistence as conformance
from eventsourcing.postgres import PostgresDatastore, PostgresTrackingRecorder
from eventsourcing.sqlite import SQLiteDatastore, SQLiteTrackingRecorder
from psycopg.conninfo import conninfo_to_dict

from infra.store.postgres import PostgresBulkLogRecorder, PostgresLogRecorder
from infra.store.sqlite import SqliteBulkLogRecorder, SqliteLogRecorder
from tests.pg import PG_URL, create_schema, drop_schema


def join_test_threads(before: set[threading.Thread]) -> None:
    """The library's concurrency cases leave reader threads running past the test; closing a
    datastore under a running SQLite statement crashes the interpreter, so wait for them."""
    for thread in set(threading.enumerate()) - before:
        if thread.daemon:  # pool workers and listeners live until their datastore closes
            continue
        thread.join(timeout=30)


class PostgresCase:
    """A schema of its own per test; every datastore made is closed before it is dropped."""

    def setUp(self) -> None:
        self.schema = create_schema("conf")
        self.datastores: list[PostgresDatastore] = []
        self.threads = set(threading.enumerate())
        super().setUp()  # type: ignore[misc]

    def tearDown(self) -> None:
        super().tearDown()  # type: ignore[misc]
        join_test_threads(self.threads)
        for ds in self.datastores:
            ds.close()
        drop_schema(self.schema)

    def datastore(self) -> PostgresDatastore:
        params: dict[str, Any] = conninfo_to_dict(PG_URL)
        ds = PostgresDatastore(
            dbname=params.get("dbname", "test"),
            host=params.get("host", "127.0.0.1"),
            port=params.get("port", "5432"),
            user=params.get("user", ""),
            password=params.get("password", ""),
            schema=self.schema,
            pool_size=4,
            max_overflow=16,
        )
        self.datastores.append(ds)
        return ds


class SqliteCase:
    def setUp(self) -> None:
        self.tmp = tempfile.TemporaryDirectory()
        self.datastores: list[SQLiteDatastore] = []
        self.threads = set(threading.enumerate())
        super().setUp()  # type: ignore[misc]

    def tearDown(self) -> None:
        super().tearDown()  # type: ignore[misc]
        join_test_threads(self.threads)
        for ds in self.datastores:
            ds.close()
        self.tmp.cleanup()

    def datastore(self) -> SQLiteDatastore:
        ds = SQLiteDatastore(str(Path(self.tmp.name) / "log.db"), lock_timeout=30)
        self.datastores.append(ds)
        return ds


# -- PostgreSQL -----------------------------------------------------------------------------


class TestPostgresStandardPath(PostgresCase, conformance.ApplicationRecorderTestCase):
    def create_recorder(self) -> PostgresLogRecorder:
        recorder = PostgresLogRecorder(self.datastore())
        recorder.create_table()
        return recorder

    def test_insert_subscribe(self) -> None:
        self.optional_test_insert_subscribe()


class TestPostgresBulkPath(PostgresCase, conformance.ApplicationRecorderTestCase):
    def create_recorder(self) -> PostgresBulkLogRecorder:
        recorder = PostgresBulkLogRecorder(self.datastore())
        recorder.create_table()
        return recorder

    def test_insert_subscribe(self) -> None:
        self.optional_test_insert_subscribe()


class TestPostgresStandardNonInterleaving(
    PostgresCase, conformance.NonInterleavingNotificationIDsBaseCase
):
    def create_recorder(self) -> PostgresLogRecorder:
        recorder = PostgresLogRecorder(self.datastore())
        recorder.create_table()
        return recorder


class TestPostgresBulkNonInterleaving(
    PostgresCase, conformance.NonInterleavingNotificationIDsBaseCase
):
    def create_recorder(self) -> PostgresBulkLogRecorder:
        recorder = PostgresBulkLogRecorder(self.datastore())
        recorder.create_table()
        return recorder


class TestPostgresTracking(PostgresCase, conformance.TrackingRecorderTestCase):
    def create_recorder(self) -> PostgresTrackingRecorder:
        recorder = PostgresTrackingRecorder(self.datastore())
        recorder.create_table()
        return recorder


# -- SQLite ---------------------------------------------------------------------------------


class TestSqliteStandardPath(SqliteCase, conformance.ApplicationRecorderTestCase):
    def create_recorder(self) -> SqliteLogRecorder:
        recorder = SqliteLogRecorder(self.datastore())
        recorder.create_table()
        return recorder


class TestSqliteBulkPath(SqliteCase, conformance.ApplicationRecorderTestCase):
    def create_recorder(self) -> SqliteBulkLogRecorder:
        recorder = SqliteBulkLogRecorder(self.datastore())
        recorder.create_table()
        return recorder


class TestSqliteStandardNonInterleaving(
    SqliteCase, conformance.NonInterleavingNotificationIDsBaseCase
):
    def create_recorder(self) -> SqliteLogRecorder:
        recorder = SqliteLogRecorder(self.datastore())
        recorder.create_table()
        return recorder


class TestSqliteBulkNonInterleaving(SqliteCase, conformance.NonInterleavingNotificationIDsBaseCase):
    def create_recorder(self) -> SqliteBulkLogRecorder:
        recorder = SqliteBulkLogRecorder(self.datastore())
        recorder.create_table()
        return recorder


class TestSqliteTracking(SqliteCase, conformance.TrackingRecorderTestCase):
    def create_recorder(self) -> SQLiteTrackingRecorder:
        recorder = SQLiteTrackingRecorder(self.datastore())
        recorder.create_table()
        return recorder
