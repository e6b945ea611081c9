"""Rebuild of every projection over 1,000,000 events on PostgreSQL, events/s, against a raw
server-side-cursor read of the same log in the same run (issue 10).

setup     (not timed) the demo history (`infra.history`, commerce and service included) for
          enough customers to give `--events` events (about 150 per customer over 2 years),
          cut at `--events` import lines (a prefix in time of the history) and imported into a
          fresh schema by the bulk importer. The store's tables (log, data keys, contact
          hashes, command records) are then saved with binary COPY under
          `bench/.cache/rebuild_all-v1-<events>-<seed>-<schema fingerprint>/`, and later runs
          restore them by COPY instead of generating and importing again. Measured here (2 shared
          cores), 1M events: history 7-15 s + import 52-98 s + save 3 s, once per store shape;
          a restore takes 18 s. Then ANALYZE. A default run takes 3-7 minutes with the cache
          (two runs of 60-130 s each) and about 2 more the first time.
subject   every projection of `projections.catalogue.all_projections()` rebuilt from position
          0: all their tables, views and the runner's system tables dropped, then one catch-up
          of all of them from nothing through `infra.projector.open_runner` (each page of the
          log read once and decoded once for all of them; each view writes its rows, timers
          and checkpoint in a transaction of its own). This is what a rebuild of everything
          costs: `Runner.rebuild(NAME)` runs the same catch-up into a shadow generation, one
          projection at a time. events/s = events in the log / seconds.
baseline  in the same run, a raw server-side (named) cursor read of the whole log, binary,
          nothing decoded (bench/catchup.py's `raw_read`), rows/s.
value     the best of `--repeat` runs (medians as extra keys); ratio = value / baseline
          (target >= 0.25).

    .venv/bin/python bench/rebuild_all.py [--events 1000000] [--repeat 2] [--seed 7]
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import argparse
import hashlib
import math
import time

import psycopg
from psycopg.sql import SQL, Identifier

from bench._common import CACHE_DIR, bench_schema, emit, log, pg_url, summary, with_schema
from bench._rebuild import measure
from bench.catchup import history_lines, load, log_size, maintain
from infra.engine import open_engine
from projections.catalogue import all_projections
from projections.runner import PAGE

FIXTURE_FORMAT = 1
EVENTS_PER_CUSTOMER = 150  # the demo history's, over 2 years (measured: 76,552 lines / 500)
YEARS = 2.0


def _tables(conn: psycopg.Connection, schema: str) -> dict[str, list[str]]:
    """The store's base tables and their stored (not generated) columns, in order."""
    rows = conn.execute(
        "SELECT c.table_name, c.column_name FROM information_schema.columns c "
        "JOIN information_schema.tables t USING (table_schema, table_name) "
        "WHERE c.table_schema = %s AND t.table_type = 'BASE TABLE' AND c.is_generated = 'NEVER' "
        "ORDER BY c.table_name, c.ordinal_position",
        (schema,),
    ).fetchall()
    found: dict[str, list[str]] = {}
    for table, column in rows:
        found.setdefault(table, []).append(column)
    return found


def _fingerprint(schema: str) -> str:
    """Changes when the store's tables change shape: a cache of another shape is not used."""
    with psycopg.connect(pg_url()) as conn:
        shape = sorted(_tables(conn, schema).items())
    return hashlib.sha256(repr(shape).encode()).hexdigest()[:10]


def _copy(sql: SQL, path: Path, out: bool) -> None:
    with psycopg.connect(pg_url()) as conn, conn.cursor() as cur:
        with cur.copy(sql) as copy, path.open("wb" if out else "rb") as fh:
            if out:
                for block in copy:
                    fh.write(block)
            else:
                while block := fh.read(1 << 20):
                    copy.write(block)
        conn.commit()


def save(schema: str, folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    with psycopg.connect(pg_url()) as conn:
        tables = _tables(conn, schema)
    for table, columns in tables.items():
        cols = SQL(", ").join(map(Identifier, columns))
        statement = SQL("COPY (SELECT {c} FROM {s}.{t}) TO STDOUT (FORMAT binary)").format(
            c=cols, s=Identifier(schema), t=Identifier(table)
        )
        _copy(statement, folder / f"{table}.copy", out=True)
    (folder / "done").write_text("ok\n")


def restore(schema: str, folder: Path) -> None:
    """The cached tables into the fresh store's (created by `open_engine`; the rows it wrote,
    the master key's fingerprint, deleted first)."""
    with psycopg.connect(pg_url()) as conn:
        tables = _tables(conn, schema)
        for table in tables:  # only the key meta row (the log's tables refuse TRUNCATE)
            rel = SQL("{s}.{t}").format(s=Identifier(schema), t=Identifier(table))
            if conn.execute(SQL("SELECT EXISTS (SELECT 1 FROM {0})").format(rel)).fetchone()[0]:
                conn.execute(SQL("DELETE FROM {0}").format(rel))
        conn.commit()
    for table, columns in tables.items():
        path = folder / f"{table}.copy"
        if not path.exists():
            continue
        cols = SQL(", ").join(map(Identifier, columns))
        statement = SQL("COPY {s}.{t} ({c}) FROM STDIN (FORMAT binary)").format(
            c=cols, s=Identifier(schema), t=Identifier(table)
        )
        _copy(statement, path, out=False)
    with psycopg.connect(pg_url(), autocommit=True) as conn:
        conn.execute(
            SQL(
                "SELECT setval(pg_get_serial_sequence(%s, 'notification_id'), "
                "(SELECT coalesce(max(notification_id), 1) FROM {s}.stored_events))"
            ).format(s=Identifier(schema)),
            (f'"{schema}".stored_events',),
        )


def fixture(schema: str, events: int, seed: int) -> None:
    """Fill the store in `schema` from the cache, or generate, import and cache it."""
    folder = CACHE_DIR / f"rebuild_all-v{FIXTURE_FORMAT}-{events}-{seed}-{_fingerprint(schema)}"
    t0 = time.perf_counter()
    if (folder / "done").exists():
        restore(schema, folder)
        log(
            f"fixture: restored from {folder.relative_to(CACHE_DIR.parent.parent)} "
            f"in {time.perf_counter() - t0:.1f} s"
        )
        return
    customers = max(10, math.ceil(events * 1.05 / EVENTS_PER_CUSTOMER))
    lines = history_lines(customers, YEARS, seed)[:events]
    log(
        f"fixture: {len(lines):,} lines of {customers:,} customers' history "
        f"({time.perf_counter() - t0:.1f} s)"
    )
    t1 = time.perf_counter()
    with open_engine(with_schema(pg_url(), schema), env={}) as engine:
        load(engine, lines)
    del lines
    log(f"fixture: imported in {time.perf_counter() - t1:.1f} s")
    save(schema, folder)
    log(
        f"fixture: cached in {folder.relative_to(CACHE_DIR.parent.parent)} "
        f"({time.perf_counter() - t0:.1f} s in all)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=1_000_000, help="import lines (~events)")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--page", type=int, default=PAGE)
    parser.add_argument("--repeat", type=int, default=2)
    args = parser.parse_args()
    names = tuple(p.name for p in all_projections())
    with bench_schema("rebuild_all") as schema:
        with open_engine(with_schema(pg_url(), schema), env={}):
            pass  # the store's tables, so their shape names the cache
        fixture(schema, args.events, args.seed)
        maintain(schema, analyze=True)
        events, customers, size = log_size(schema)
        log(
            f"setup: log {events:,} events, {customers:,} customers, {size / 1e6:,.0f} MB; "
            f"{len(names)} views"
        )
        with open_engine(with_schema(pg_url(), schema), env={}) as engine:
            rates, base, seconds_best = measure(
                engine, schema, events, names, page=args.page, repeat=args.repeat
            )
    subject, baseline = summary(rates), summary(base)
    ratio = subject["best"] / baseline["best"]
    log(f"rebuild all / raw read = {ratio:.3f} (target >= 0.25)")
    emit(
        {
            "bench": "rebuild_all",
            "value": round(subject["best"]),
            "unit": "events/s",
            "baseline": round(baseline["best"]),
            "ratio": round(ratio, 3),
            "median": round(subject["median"]),
            "baseline_median": round(baseline["median"]),
            "seconds": round(seconds_best, 2),
            "events": events,
            "customers": customers,
            "log_mb": round(size / 1e6, 1),
            "views": list(names),
            "page": args.page,
            "repeat": args.repeat,
            "seed": args.seed,
        }
    )


if __name__ == "__main__":
    main()
