"""Bulk append into PostgreSQL, events/s: our COPY path against a raw binary COPY.

subject   `PostgresBulkLogRecorder.insert_events` (binary COPY under the EXCLUSIVE table lock,
          ids read back from the sequence, NOTIFY), one call and one transaction per batch.
baseline  a raw psycopg binary COPY of the very same rows, batch by batch, one transaction per
          batch, into a bare table with the same DDL (created by `PostgresLogRecorder`), with no
          lock, no NOTIFY and no read-back of ids.
extra     eventsourcing's standard `insert_events` (our `PostgresLogRecorder`, the library's
          path untouched) in batches of 100, on a prefix of the same rows.

Rows are CustomerRegistered envelopes of distinct customers, encoded once by our codec with
personal fields sealed (a KeyRing over an in-memory vault) and cached under bench/.cache/.
Each repetition starts from empty tables (TRUNCATE ... RESTART IDENTITY, then CHECKPOINT);
the subject and the baseline alternate which goes first. value/baseline are the best runs.

    .venv/bin/python bench/append.py [--events 200000] [--batch 10000] [--repeat 5]
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import argparse
import statistics
from collections.abc import Iterable, Mapping, Sequence
from functools import partial
from uuid import UUID

import msgspec
import psycopg
from eventsourcing.persistence import StoredEvent
from psycopg.sql import SQL, Identifier

from bench._common import (
    CACHE_DIR,
    bench_schema,
    customer_envelopes,
    emit,
    fmt_rate,
    log,
    payload_fingerprint,
    pg_url,
    summary,
    timed,
    with_schema,
)
from domain.catalogue import EVENTS
from domain.customers.events import CustomerRegistered
from infra.codec import EventCodec
from infra.crypto import DEV_MASTER_KEY, KeyRing
from infra.store.postgres import PostgresBackend, PostgresLogRecorder
from infra.store.url import parse_store_url

FIXTURE_FORMAT = 1
BASELINE_TABLE = "baseline_events"
SUBJECT_TABLE = "stored_events"


class _MemoryVault:
    """Wrapped keys in a dict: the fixture's bytes are sealed as in production, quickly."""

    def __init__(self) -> None:
        self._keys: dict[UUID, bytes | None] = {}
        self._fingerprint: str | None = None

    def master_fingerprint(self, fingerprint: str) -> str:
        if self._fingerprint is None:
            self._fingerprint = fingerprint
        return self._fingerprint

    def load_keys(self, customer_ids: Iterable[UUID]) -> dict[UUID, bytes | None]:
        return {c: self._keys[c] for c in customer_ids if c in self._keys}

    def add_keys(self, wrapped: Mapping[UUID, bytes]) -> dict[UUID, bytes | None]:
        for c, w in wrapped.items():
            self._keys.setdefault(c, w)
        return {c: self._keys[c] for c in wrapped}

    def forget_key(self, customer_id: UUID) -> None:
        self._keys[customer_id] = None


def load_fixture(n: int, seed: int, *, sealed: bool) -> list[StoredEvent]:
    """The rows to append, encoded by our codec once and cached (generation is not timed)."""
    kind = "sealed" if sealed else "plain"
    shape = payload_fingerprint(CustomerRegistered)
    path = CACHE_DIR / f"append-v{FIXTURE_FORMAT}-{n}-{seed}-{kind}-{shape}.msgpack"
    if path.exists():
        rows = msgspec.msgpack.decode(path.read_bytes(), type=list[tuple[bytes, int, str, bytes]])
        log(f"fixture: {len(rows):,} rows from {path.relative_to(CACHE_DIR.parent.parent)}")
    else:
        log(f"fixture: generating {n:,} CustomerRegistered envelopes ({kind}) ...")
        envelopes = customer_envelopes(n, seed)
        keyring = KeyRing(_MemoryVault(), DEV_MASTER_KEY, cache_size=n + 1) if sealed else None
        codec = EventCodec(EVENTS, keyring)
        stored: list[StoredEvent] = []
        for i in range(0, n, 10_000):
            stored.extend(codec.encode_many(envelopes[i : i + 10_000]))
        rows = [
            (e.stream_id.bytes, s.originator_version, s.topic, s.state)
            for e, s in zip(envelopes, stored, strict=True)
        ]
        CACHE_DIR.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_bytes(msgspec.msgpack.encode(rows))
        tmp.replace(path)
        log(f"fixture: cached in {path.relative_to(CACHE_DIR.parent.parent)}")
    return [StoredEvent(UUID(bytes=i), v, t, s) for i, v, t, s in rows]


def batches(events: Sequence[StoredEvent], size: int) -> list[Sequence[StoredEvent]]:
    return [events[i : i + size] for i in range(0, len(events), size)]


class Bench:
    def __init__(self, schema: str, target: str) -> None:
        self.schema = schema
        self.backend = PostgresBackend(parse_store_url(with_schema(target, schema)), pool_size=2)
        PostgresLogRecorder(self.backend.datastore, events_table_name=BASELINE_TABLE).create_table()
        self.conn = psycopg.connect(target, autocommit=True)
        self.copy_sql = SQL(
            "COPY {s}.{t} (originator_id, originator_version, topic, state) "
            "FROM STDIN (FORMAT BINARY)"
        ).format(s=Identifier(schema), t=Identifier(BASELINE_TABLE))
        try:
            self.conn.execute("CHECKPOINT")
            self.can_checkpoint = True
        except psycopg.Error:
            self.can_checkpoint = False

    def close(self) -> None:
        self.conn.close()
        self.backend.close()

    def reset(self) -> None:
        """Both tables empty, sequences restarted; dirty pages flushed so no run pays for another.
        The log refuses TRUNCATE (append-only triggers): the bench owns its schema and lifts
        them around the reset only."""
        for table in (SUBJECT_TABLE, BASELINE_TABLE):
            t = SQL("{s}.{t}").format(s=Identifier(self.schema), t=Identifier(table))
            self.conn.execute(SQL("ALTER TABLE {t} DISABLE TRIGGER USER").format(t=t))
            self.conn.execute(SQL("TRUNCATE {t} RESTART IDENTITY").format(t=t))
            self.conn.execute(SQL("ALTER TABLE {t} ENABLE TRIGGER USER").format(t=t))
        if self.can_checkpoint:
            self.conn.execute("CHECKPOINT")

    def subject(self, chunks: list[Sequence[StoredEvent]]) -> None:
        insert = self.backend.bulk.insert_events
        for chunk in chunks:
            insert(chunk)

    def baseline(self, chunks: list[Sequence[StoredEvent]]) -> None:
        conn = self.conn
        for chunk in chunks:
            with conn.transaction(), conn.cursor() as curs, curs.copy(self.copy_sql) as copy:
                copy.set_types(["uuid", "int8", "text", "bytea"])
                write_row = copy.write_row
                for e in chunk:
                    write_row((e.originator_id, e.originator_version, e.topic, e.state))

    def standard(self, chunks: list[Sequence[StoredEvent]]) -> None:
        insert = self.backend.standard.insert_events
        for chunk in chunks:
            insert(chunk)

    def measure(
        self, chunks: list[Sequence[StoredEvent]], repeat: int
    ) -> tuple[list[float], list[float]]:
        """Rates of the subject and the baseline, alternating which goes first."""
        n = sum(len(c) for c in chunks)
        # Warm up (not timed): pool connections, prepared statements, catalog caches.
        self.reset()
        self.subject(chunks[:1])
        self.baseline(chunks[:1])
        rates: dict[str, list[float]] = {"subject": [], "baseline": []}
        for r in range(repeat):
            for side in ("subject", "baseline") if r % 2 == 0 else ("baseline", "subject"):
                self.reset()
                run, table = (
                    (self.subject, SUBJECT_TABLE)
                    if side == "subject"
                    else (self.baseline, BASELINE_TABLE)
                )
                seconds = timed(partial(run, chunks))
                self.check(table, n)
                rates[side].append(n / seconds)
                log(f"  run {r + 1} {side:<8} {fmt_rate(n / seconds)}  ({seconds:.2f} s)")
        return rates["subject"], rates["baseline"]

    def measure_standard(self, chunks: list[Sequence[StoredEvent]], repeat: int) -> list[float]:
        """Rates of the library's standard insert_events (one call per small batch)."""
        n = sum(len(c) for c in chunks)
        self.reset()
        self.standard(chunks[:2])
        rates: list[float] = []
        for r in range(repeat):
            self.reset()
            seconds = timed(lambda: self.standard(chunks))
            self.check(SUBJECT_TABLE, n)
            rates.append(n / seconds)
            log(
                f"  run {r + 1} standard insert_events x{len(chunks[0])} "
                f"{fmt_rate(n / seconds)}  ({n:,} events, {seconds:.2f} s)"
            )
        return rates

    def check(self, table: str, n: int) -> None:
        row = self.conn.execute(
            SQL("SELECT count(*), max(notification_id), count(customer_id) FROM {s}.{t}").format(
                s=Identifier(self.schema), t=Identifier(table)
            )
        ).fetchone()
        assert row is not None
        if tuple(row) != (n, n, n):
            raise SystemExit(f"{table}: expected {n} rows with ids 1..{n}, got {row}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=200_000, help="rows per run")
    parser.add_argument("--batch", type=int, default=10_000, help="rows per bulk call")
    parser.add_argument("--repeat", type=int, default=5, help="runs of each side")
    parser.add_argument(
        "--standard-events",
        type=int,
        default=20_000,
        help="rows (a prefix) appended by the library's standard insert_events",
    )
    parser.add_argument("--standard-batch", type=int, default=100)
    parser.add_argument("--standard-repeat", type=int, default=3)
    parser.add_argument("--plain", action="store_true", help="personal fields not sealed")
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args()

    events = load_fixture(args.events, args.seed, sealed=not args.plain)
    chunks = batches(events, args.batch)
    standard_events = events[: min(args.standard_events, len(events))]
    standard_chunks = batches(standard_events, args.standard_batch)
    n, n_std = len(events), len(standard_events)
    mean_bytes = statistics.fmean(len(e.state) for e in events)
    log(
        f"append: {n:,} events in batches of {args.batch:,}, state {mean_bytes:.0f} bytes "
        f"on average, best of {args.repeat}"
    )

    with bench_schema("append") as schema:
        bench = Bench(schema, parse_store_url(pg_url()).target)
        try:
            subject_rates, baseline_rates = bench.measure(chunks, args.repeat)
            standard_rates = bench.measure_standard(standard_chunks, args.standard_repeat)
        finally:
            bench.close()

    subject, baseline, standard = (
        summary(subject_rates),
        summary(baseline_rates),
        summary(standard_rates),
    )
    ratio = subject["best"] / baseline["best"]
    log(
        f"bulk append {fmt_rate(subject['best'])}, raw COPY {fmt_rate(baseline['best'])}, "
        f"ratio {ratio:.2f} (target >= 0.5); standard x{args.standard_batch} "
        f"{fmt_rate(standard['best'])}"
    )
    emit(
        {
            "bench": "append",
            "value": round(subject["best"]),
            "unit": "events/s",
            "baseline": round(baseline["best"]),
            "ratio": round(ratio, 3),
            "median_value": round(subject["median"]),
            "median_baseline": round(baseline["median"]),
            "median_ratio": round(subject["median"] / baseline["median"], 3),
            f"eventsourcing_insert_events_{args.standard_batch}": round(standard["best"]),
            "eventsourcing_insert_events_events": n_std,
            "bulk_vs_eventsourcing": round(subject["best"] / standard["best"], 1),
            "events": n,
            "batch": args.batch,
            "repeat": args.repeat,
            "mean_state_bytes": round(mean_bytes, 1),
            "sealed": not args.plain,
        }
    )


if __name__ == "__main__":
    main()
