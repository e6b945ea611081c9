"""The sealed log on both backends: the chain, concurrent sealers, the append-only triggers,
tampering found by verify, forgotten customers, the views against a fresh rebuild."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID, uuid4

import psycopg
import pytest

from domain.envelope import Envelope
from handlers.decision import CommandContext
from infra.clock import FixedClock
from infra.engine import Engine, open_engine
from infra.projection_db import projection_db
from infra.projector import open_runner
from infra.sealer import seal_until_head, sealer_for
from infra.store.event_store import EventStore
from infra.store.seal import seal_store
from infra.store.url import parse_store_url
from projections.catalogue import all_projections
from projections.projection import physical
from replay.seal import GENESIS, Seal, SealMismatch, chain, seal_hash
from replay.verify import Check, compare_projections, first_bad, scan_log
from tests.integration.test_event_store import forgotten_event, registered

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
CTX = CommandContext(actor="employee:test", channel="test")
RAW_ERRORS = (psycopg.Error, sqlite3.Error)


def customers(n: int) -> list[Envelope]:
    return [registered() for _ in range(n)]


def checks_by_name(store: EventStore, anchors: dict[int, bytes] | None = None) -> dict[str, Check]:
    return {c.name: c for c in scan_log(store, seal_store(store), anchors, page=7)}


@pytest.fixture
def raw(store: EventStore, store_url: str) -> Iterator[Any]:
    """A connection of our own to the store's database, beside the engine's pool."""
    backend: Any = store.backend
    if backend.name == "sqlite":
        conn = sqlite3.connect(parse_store_url(store_url).target, isolation_level=None)
        try:
            yield conn
        finally:
            conn.close()
        return
    kwargs = backend.datastore.pool.kwargs
    params = {k: v for k, v in kwargs.items() if k in ("dbname", "host", "port", "user") and v}
    with psycopg.connect(autocommit=True, **params) as conn:
        conn.execute(f'SET search_path TO "{backend.datastore.schema}"')
        yield conn


def tamper(store: EventStore, raw: Any, position: int, at: int) -> None:
    """Flip one byte of a stored event with the append-only trigger out of the way."""
    [row] = store.read_rows(position - 1, 1)
    state = bytearray(row.state)
    state[at] ^= 0x01
    if store.backend.name == "sqlite":
        raw.execute("DROP TRIGGER stored_events_no_update")
        raw.execute(
            "UPDATE stored_events SET state = ? WHERE notification_id = ?", (bytes(state), position)
        )
        return
    raw.execute("ALTER TABLE stored_events DISABLE TRIGGER stored_events_append_only")
    raw.execute(
        "UPDATE stored_events SET state = %s WHERE notification_id = %s", (bytes(state), position)
    )
    raw.execute("ALTER TABLE stored_events ENABLE TRIGGER stored_events_append_only")


class TestChain:
    def test_every_position_is_sealed_in_order_and_sealing_resumes(self, store: EventStore) -> None:
        store.append(customers(30), bulk=True)
        assert seal_until_head(store, page=7) == 30
        seals = seal_store(store)
        rows = store.read_rows(0, 1000)
        assert seals.read(0, 10**9) == [
            Seal(s.position, s.hash, t.sealed_at)
            for s, t in zip(chain(GENESIS, rows), seals.read(0, 10**9), strict=True)
        ]
        assert seal_until_head(store) == 0  # nothing new
        store.append(customers(12))
        assert seal_until_head(store, page=5) == 12
        rows = store.read_rows(0, 1000)
        stored = seals.read(0, 10**9)
        assert [s.position for s in stored] == [r.position for r in rows]
        assert [s.hash for s in stored] == [s.hash for s in chain(GENESIS, rows)]
        assert stored[30].hash == seal_hash(stored[29].hash, rows[30])
        assert all(s.sealed_at is not None for s in stored)
        assert all(c.ok for c in checks_by_name(store).values())

    def test_two_sealers_at_once_give_one_chain(self, store: EventStore) -> None:
        store.append(customers(300), bulk=True)
        errors: list[BaseException] = []

        def seal() -> None:
            try:
                sealer_for(store, page=11).seal_until()
            except BaseException as e:
                errors.append(e)

        threads = [threading.Thread(target=seal) for _ in range(3)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert errors == []
        rows = store.read_rows(0, 1000)
        stored = seal_store(store).read(0, 10**9)
        assert [(s.position, s.hash) for s in stored] == [
            (s.position, s.hash) for s in chain(GENESIS, rows)
        ]

    def test_a_different_hash_already_stored_is_a_mismatch(self, store: EventStore) -> None:
        store.append(customers(3))
        [row] = store.read_rows(0, 1)
        seal_store(store).append([Seal(row.position, b"\x00" * 32)])
        sealer = sealer_for(store)
        sealer.seals = _Forgetful(sealer.seals)  # type: ignore[assignment]
        with pytest.raises(SealMismatch, match=f"position {row.position}"):
            sealer.seal_page()


class _Forgetful:
    """A seal store that does not see its last seal: its sealer starts from genesis again."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner

    def last(self) -> None:
        return None

    def append(self, seals: list[Seal]) -> list[Seal]:
        return self.inner.append(seals)


class TestAppendOnly:
    def test_update_and_delete_of_the_log_are_refused(self, store: EventStore, raw: Any) -> None:
        store.append(customers(2))
        mark = "%s" if store.backend.name == "postgresql" else "?"
        for sql in (
            f"UPDATE stored_events SET state = {mark} WHERE notification_id = 1",
            f"DELETE FROM stored_events WHERE notification_id = {mark}",
        ):
            params = (b"x",) if "UPDATE" in sql else (1,)
            with pytest.raises(RAW_ERRORS, match="append-only"):
                raw.execute(sql, params)
        with pytest.raises(RAW_ERRORS, match="append-only"):
            raw.execute("DELETE FROM stored_events")
        if store.backend.name == "postgresql":
            with pytest.raises(RAW_ERRORS, match="append-only"):
                raw.execute("TRUNCATE stored_events")
        assert len(store.read_rows(0, 10)) == 2

    def test_the_seal_table_is_append_only_too(self, store: EventStore, raw: Any) -> None:
        store.append(customers(2))
        seal_until_head(store)
        with pytest.raises(RAW_ERRORS, match="append-only"):
            raw.execute("DELETE FROM log_seal")
        assert len(seal_store(store).read(0, 10)) == 2

    def test_reopening_the_store_keeps_one_trigger(self, store_url: str, raw: Any) -> None:
        from infra.store.backends import open_store

        open_store(store_url, env={}).close()
        open_store(store_url, env={}).close()
        if "sqlite" in store_url:
            rows = raw.execute(
                "SELECT name FROM sqlite_master WHERE type = 'trigger' ORDER BY name"
            ).fetchall()
        else:
            rows = raw.execute(
                "SELECT tgname FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid "
                "WHERE c.relnamespace = current_schema()::regnamespace AND NOT t.tgisinternal "
                "ORDER BY tgname"
            ).fetchall()
        assert len(rows) == 4


class TestVerifyFindsTampering:
    def test_one_altered_byte_is_named_by_its_position(self, store: EventStore, raw: Any) -> None:
        store.append(customers(20), bulk=True)
        seal_until_head(store)
        positions = [r.position for r in store.read_rows(0, 100)]
        bad = positions[12]
        tamper(store, raw, bad, at=-1)  # the last byte: sealed personal data, still "decodable"
        checks = checks_by_name(store)
        assert checks["seal chain"].status == "failed"
        assert checks["seal chain"].first_bad == bad
        assert f"first bad position {bad}" in checks["seal chain"].details
        assert first_bad(checks.values()) == bad
        assert checks["stream versions"].ok

    def test_an_altered_byte_in_the_envelope_fails_decoding_too(
        self, store: EventStore, raw: Any
    ) -> None:
        store.append(customers(5))
        seal_until_head(store)
        bad = store.read_rows(0, 100)[2].position
        tamper(store, raw, bad, at=0)  # the magic byte
        checks = checks_by_name(store)
        assert checks["seal chain"].first_bad == bad
        assert checks["events decode"].first_bad == bad

    def test_a_deleted_row_is_named(self, store: EventStore, raw: Any) -> None:
        store.append(customers(6))
        seal_until_head(store)
        gone = store.read_rows(0, 100)[3].position
        if store.backend.name == "sqlite":
            raw.execute("DROP TRIGGER stored_events_no_delete")
            raw.execute("DELETE FROM stored_events WHERE notification_id = ?", (gone,))
        else:
            raw.execute("ALTER TABLE stored_events DISABLE TRIGGER stored_events_append_only")
            raw.execute("DELETE FROM stored_events WHERE notification_id = %s", (gone,))
        checks = checks_by_name(store)
        assert checks["seal chain"].first_bad == gone
        assert "missing from the log" in checks["seal chain"].details

    def test_an_unsealed_tail_is_counted_not_failed(self, store: EventStore) -> None:
        store.append(customers(4))
        seal_until_head(store)
        store.append(customers(3))
        checks = checks_by_name(store)
        assert checks["unsealed tail"].ok
        assert checks["unsealed tail"].details.startswith("3 positions after the last seal")
        assert checks["seal chain"].ok

    def test_a_rewritten_chain_fails_against_the_anchors(self, store: EventStore) -> None:
        store.append(customers(5))
        seal_until_head(store)
        stored = seal_store(store).read(0, 100)
        anchors = {stored[2].position: stored[2].hash}
        assert checks_by_name(store, anchors)["anchors"].ok
        forged = {stored[2].position: bytes(32)}
        assert checks_by_name(store, forged)["anchors"].first_bad == stored[2].position
        missing = {10**6: bytes(32)}
        assert "missing from the log" in checks_by_name(store, missing)["anchors"].details
        assert checks_by_name(store)["anchors"].status == "not anchored"

    def test_a_stream_with_a_version_gap_is_named(self, store: EventStore) -> None:
        cid = uuid4()
        store.append([registered(cid)])
        [pos] = store.append([forgotten_event(cid, 3)])  # version 2 never written
        checks = checks_by_name(store)
        assert checks["stream versions"].first_bad == pos


class TestForgotten:
    def test_a_forgotten_customer_still_verifies(self, store: EventStore) -> None:
        gone, kept = uuid4(), uuid4()
        store.append([registered(gone), registered(kept)])
        seal_until_head(store)
        store.forget_keys(gone)
        store.append([forgotten_event(gone, 2)])
        seal_until_head(store)
        checks = checks_by_name(store)
        assert all(c.ok for c in checks.values()), checks
        assert "1 with personal fields forgotten (4 fields)" in checks["events decode"].details


# -- projections against a fresh rebuild -----------------------------------------------------


@pytest.fixture
def engine(store_url: str) -> Iterator[Engine]:
    with open_engine(store_url, env={}, clock=FixedClock(T0)) as e:
        yield e


def run(engine: Engine, command: str, /, **data: Any) -> None:
    engine.bus.execute_json(
        command, {k: str(v) if isinstance(v, UUID) else v for k, v in data.items()}, CTX
    )


def history(engine: Engine, n: int = 8) -> list[UUID]:
    ids = [uuid4() for _ in range(n)]
    for i, c in enumerate(ids):
        run(
            engine,
            "customer.register",
            customer_id=c,
            name=f"Customer {i}",
            email=f"c{i}-{c.hex[:6]}@x.org",
            occurred_at=(T0 - timedelta(days=300)).isoformat(),
        )
        for k in range(3):
            run(
                engine,
                "interaction.log_call",
                customer_id=c,
                interaction_id=uuid4(),
                direction="out",
                duration_min=5 + k,
                occurred_at=(T0 - timedelta(days=10 * k + i)).isoformat(),
            )
    run(engine, "customer.forget", customer_id=ids[0])
    return ids


def compare(engine: Engine, *, fixed_clock: bool = True) -> dict[str, Check]:
    from infra.cli.verify import scratch_db

    live = projection_db(engine.store)
    try:
        found = compare_projections(
            live,
            engine.store,
            all_projections(),
            engine.clock,
            lambda: scratch_db(engine.store),
            fixed_clock=fixed_clock,
        )
    finally:
        live.close()
    return {c.name: c for c in found}


class TestProjections:
    def test_every_view_equals_a_fresh_rebuild(self, engine: Engine) -> None:
        history(engine)
        runner = open_runner(engine)
        runner.catch_up()
        runner.fire_timers()
        found = compare(engine)
        assert len(found) == len(all_projections())
        assert all(c.ok for c in found.values()), [c for c in found.values() if not c.ok]
        assert "rows equal a rebuild" in found["projection customer_profile"].details

    def test_a_changed_view_row_is_found(self, engine: Engine) -> None:
        history(engine)
        runner = open_runner(engine)
        runner.catch_up()
        [generation] = [s.generation for s in runner.status() if s.name == "customer_profile"]
        table = runner.db.dialect.qualify(physical("customer_profile", generation))
        with runner.db.transaction() as tx:
            tx.execute(f"UPDATE {table} SET name = 'Mallory' WHERE name = 'Customer 3'")
        found = compare(engine)
        assert found["projection customer_profile"].status == "failed"
        assert "customer_profile" in found["projection customer_profile"].details
        assert found["projection timeline"].ok

    def test_nothing_built_is_skipped(self, engine: Engine) -> None:
        history(engine, 1)
        assert [c.status for c in compare(engine).values()] == ["skipped"]

    def test_rows_made_by_timers_are_compared_only_with_a_fixed_clock(self, engine: Engine) -> None:
        """A table a view declares clock-dependent (its rows hold when timers fired) differs
        from its rebuild: with the clock fixed (CRM_NOW) that fails; with a running clock the
        table is left out and the check says so. Working tables are never compared."""
        from infra.cli.verify import scratch_db
        from projections.customer_profile import CustomerProfile

        class Timed(CustomerProfile):
            clock_dependent = frozenset({"customer_profile"})

        history(engine)
        runner = open_runner(engine)
        runner.catch_up()
        [generation] = [s.generation for s in runner.status() if s.name == "customer_profile"]
        table = runner.db.dialect.qualify(physical("customer_profile", generation))
        with runner.db.transaction() as tx:
            tx.execute(f"UPDATE {table} SET name = 'Mallory' WHERE name = 'Customer 3'")
        live = projection_db(engine.store)
        try:
            checks = {
                fixed: compare_projections(
                    live,
                    engine.store,
                    [Timed()],
                    engine.clock,
                    lambda: scratch_db(engine.store),
                    fixed_clock=fixed,
                )
                for fixed in (True, False)
            }
        finally:
            live.close()
        assert checks[True][0].status == "failed"
        assert checks[False][0].status == "ok"
        assert "customer_profile not compared" in checks[False][0].details
