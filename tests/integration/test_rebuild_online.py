"""Rebuild without downtime (issue 10, part 1): while `Runner.rebuild` fills a new generation
over a few thousand events, readers of the stable view never get an error, an empty or a
partial answer; the swap is atomic; a new projection version builds beside the old one
(blue/green) and is swapped in only when it has caught up. Both backends.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

import psycopg
import pytest

from handlers.decision import CommandContext
from handlers.importer import Importer
from infra.engine import Engine, open_engine
from infra.projection_db import projection_db
from projections.customer_profile import CustomerProfile
from projections.projection import Projection
from projections.runner import Runner
from tests.pg import PG_URL

NOW = datetime(2026, 2, 1, tzinfo=UTC)
CTX = CommandContext(actor="import:test", channel="import")
CUSTOMERS = 1500  # a registration and a call each, plus the product-free rest: ~3,000 events


def history(n: int, start: int = 0) -> list[bytes]:
    lines = []
    for i in range(start, start + n):
        cid = str(UUID(int=i + 1))
        at = (NOW - timedelta(days=400) + timedelta(minutes=i)).isoformat()
        lines.append(
            json.dumps(
                {
                    "command": "customer.register",
                    "data": {"customer_id": cid, "name": f"Customer {i}", "occurred_at": at},
                }
            ).encode()
        )
        lines.append(
            json.dumps(
                {
                    "command": "interaction.log_call",
                    "data": {
                        "customer_id": cid,
                        "direction": "in",
                        "duration_min": 5,
                        "occurred_at": at,
                    },
                }
            ).encode()
        )
    return lines


def load(engine: Engine, lines: list[bytes]) -> None:
    report = Importer(engine.bus, engine.store, batch_size=1000).run(lines, CTX)
    assert not report.errors, report.errors[:3]


def runner_for(engine: Engine, projections: list[Projection], page: int = 200) -> Runner:
    runner = Runner(projection_db(engine.store), engine.store, projections, engine.clock, page=page)
    runner.setup()
    return runner


@contextmanager
def reader_connection(url: str) -> Iterator[Callable[[str, tuple[Any, ...]], list[Any]]]:
    """A consumer's own connection to the stable views (not the engine's)."""
    if url.startswith("sqlite"):
        conn = sqlite3.connect(url.removeprefix("sqlite:///"), timeout=30, check_same_thread=False)

        def query(sql: str, params: tuple[Any, ...]) -> list[Any]:
            return conn.execute(sql, params).fetchall()

        try:
            yield query
        finally:
            conn.close()
        return
    schema = url.split("schema=")[1]
    with psycopg.connect(PG_URL, autocommit=True, options=f"-c search_path={schema}") as pg:

        def query(sql: str, params: tuple[Any, ...]) -> list[Any]:
            return pg.execute(sql.replace("?", "%s"), params).fetchall()

        yield query


@dataclass
class Readers:
    """Keeps querying `customer_profile` (count and one row by key) until stopped."""

    url: str
    floor: int
    key: UUID
    reads: int = 0
    lowest: int | None = None
    errors: list[str] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        key: Any = self.key if "postgresql" in self.url else str(self.key)
        with reader_connection(self.url) as query:
            while not self.stop.is_set():
                try:
                    (n,) = query("SELECT count(*) FROM customer_profile", ())[0]
                    row = query("SELECT name FROM customer_profile WHERE customer_id = ?", (key,))
                except Exception as e:
                    self.errors.append(f"{type(e).__name__}: {e}")
                    continue
                self.reads += 1
                self.lowest = n if self.lowest is None else min(self.lowest, n)
                if n < self.floor or not row or row[0][0] != "Customer 0":
                    self.errors.append(f"read {self.reads}: count {n}, row {row}")

    @contextmanager
    def running(self) -> Iterator[Readers]:
        thread = threading.Thread(target=self.run, name="view-reader")
        thread.start()
        try:
            yield self
        finally:
            self.stop.set()
            thread.join(30)


def view_target(engine: Engine, view: str) -> str:
    """The SQL the stable view is defined by (which generation it reads)."""
    db = projection_db(engine.store)
    if db.dialect.name == "postgresql":
        rows = db.fetch("SELECT pg_get_viewdef(%s::regclass)", (db.dialect.qualify(view),))
    else:
        rows = db.fetch("SELECT sql FROM sqlite_master WHERE type = 'view' AND name = ?", (view,))
    assert rows, f"no view {view}"
    return str(rows[0][0])


@pytest.fixture
def engine(store_url: str) -> Iterator[Engine]:
    with open_engine(store_url, env={"CRM_NOW": NOW.isoformat()}) as e:
        load(e, history(CUSTOMERS))
        yield e


def indexes_of(engine: Engine, table: str) -> set[str]:
    db = projection_db(engine.store)
    if db.dialect.name == "postgresql":
        rows = db.fetch(
            "SELECT i.relname FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid "
            "WHERE x.indrelid = %s::regclass AND NOT x.indisprimary",
            (db.dialect.qualify(table),),
        )
    else:
        rows = db.fetch(
            "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = ? "
            "AND sql IS NOT NULL",
            (table,),
        )
    return {str(r[0]).removeprefix(table) for r in rows}


def count(engine: Engine) -> int:
    db = projection_db(engine.store)
    return int(db.fetch(f"SELECT count(*) FROM {db.dialect.qualify('customer_profile')}")[0][0])


class TestRebuildOnline:
    def test_readers_never_see_an_error_or_a_partial_view(
        self, engine: Engine, store_url: str
    ) -> None:
        live = runner_for(engine, [CustomerProfile()])
        live.catch_up()
        assert count(engine) == CUSTOMERS
        assert "customer_profile__g1" in view_target(engine, "customer_profile")
        rebuilding = runner_for(engine, [CustomerProfile()])
        progress: list[int] = []
        done = threading.Event()
        failure: list[BaseException] = []

        def rebuild() -> None:
            try:
                rebuilding.rebuild("customer_profile", lambda pos, head: progress.append(pos))
            except BaseException as e:
                failure.append(e)
            finally:
                done.set()

        readers = Readers(store_url, CUSTOMERS, UUID(int=1))
        with readers.running():
            time.sleep(0.2)  # reads before the rebuild starts
            worker = threading.Thread(target=rebuild, name="rebuild")
            worker.start()
            # more events arrive meanwhile: the rebuild catches up to them before its swap
            load(engine, history(50, start=CUSTOMERS))
            live.catch_up()
            assert done.wait(120)
            worker.join()
            reads_during = readers.reads
            time.sleep(0.2)  # and after the swap
        assert not failure, failure
        assert readers.errors == [], readers.errors[:5]
        assert reads_during > 10 and len(progress) > 5  # the readers really ran meanwhile
        assert readers.lowest is not None and readers.lowest >= CUSTOMERS
        assert count(engine) == CUSTOMERS + 50
        target = view_target(engine, "customer_profile")
        assert "customer_profile__g2" in target and "__g1" not in target
        status = {s.name: s for s in rebuilding.status()}["customer_profile"]
        assert (status.generation, status.lag, status.state) == (2, 0, "live")
        # the new generation has the projection's indexes, as the first one had
        assert indexes_of(engine, "customer_profile__g2") == {"_merged_into"}
        # the runner that fed the old generation moves on with the new one
        load(engine, history(5, start=CUSTOMERS + 50))
        assert live.catch_up() == 10
        assert count(engine) == CUSTOMERS + 55


class TestIndexes:
    def test_a_generation_built_from_the_start_gets_its_indexes_at_the_head(
        self, engine: Engine
    ) -> None:
        runner = runner_for(engine, [CustomerProfile()])
        stop = threading.Event()
        assert runner.catch_up(progress=lambda pos, head: stop.set(), stop=stop) == 200
        # still behind after one page: no secondary index to keep up row by row yet
        assert indexes_of(engine, "customer_profile__g1") == set()
        # a process starting on a view it did not finish building does not build them either
        again = runner_for(engine, [CustomerProfile()])
        assert indexes_of(engine, "customer_profile__g1") == set()
        assert again.catch_up() == 2 * CUSTOMERS - 200
        assert indexes_of(engine, "customer_profile__g1") == {"_merged_into"}
        assert count(engine) == CUSTOMERS
        assert again.catch_up() == 0  # once there, nothing more to build
        assert indexes_of(engine, "customer_profile__g1") == {"_merged_into"}


class CustomerProfileV2(CustomerProfile):
    """The next version of the view's code (same tables here; a real one may change them)."""

    version = 2


class TestBlueGreen:
    def test_a_new_version_builds_beside_the_old_one_and_swaps(
        self, engine: Engine, store_url: str
    ) -> None:
        blue = runner_for(engine, [CustomerProfile()])
        blue.catch_up()
        green = runner_for(engine, [CustomerProfileV2()])  # the new code starts up
        assert green.outdated() == ["customer_profile"]
        assert {s.name: s.state for s in green.status()}["customer_profile"] == "outdated"
        load(engine, history(10, start=CUSTOMERS))
        assert green.catch_up() == 0  # the new code never writes into the old tables
        assert blue.catch_up() == 20  # the old code keeps the old generation live
        assert count(engine) == CUSTOMERS + 10
        assert "customer_profile__g1" in view_target(engine, "customer_profile")

        readers = Readers(store_url, CUSTOMERS + 10, UUID(int=1))
        with readers.running():
            assert green.upgrade() == ["customer_profile"]
        assert readers.errors == [], readers.errors[:5]
        assert readers.reads > 0
        assert "customer_profile__g2" in view_target(engine, "customer_profile")
        assert green.outdated() == []
        status = {s.name: s for s in green.status()}["customer_profile"]
        assert (status.version, status.generation, status.state) == (2, 2, "live")

        load(engine, history(5, start=CUSTOMERS + 10))
        assert blue.catch_up() == 0  # now the old code is the outdated one
        assert blue.outdated() == ["customer_profile"]
        assert green.catch_up() == 10
        assert count(engine) == CUSTOMERS + 15
        assert green.wait_for(engine.store.head(), timeout=1)
