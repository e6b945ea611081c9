"""Catch-up of customer_profile + timeline over the demo history, events/s, against a raw read.

setup     (not timed) the demo history (`infra.history.history(HistoryConfig(...))`, what
          `crm demo` imports: `--customers` customers over `--years` years ending at a fixed
          date, seed `--seed`) generated in memory (a few seconds; not cached) and imported
          into a fresh schema by `handlers.importer` (bulk path); then ANALYZE, CHECKPOINT.
subject   a fresh `infra.projector.open_runner(engine, page=--page)` (projection tables,
          views and checkpoint rows created before timing, nothing applied) and `catch_up()` of
          both projections from position 0 to the head, timed. Both projections read the same
          pages: each page of `--page` rows is read once (binary), the rows of the topics they
          handle decoded once (personal fields opened with AES-GCM per customer), and each
          projection applies its share and its checkpoint in one transaction of its own.
          Before every run the projections' tables, views and system tables are dropped, so
          each run starts from nothing. events/s = events in the log / seconds (every event,
          handled or not).
baseline  in the same run, a raw read of the same log: one psycopg server-side (named) cursor,
          binary, `SELECT notification_id, originator_id, originator_version, topic, state
          FROM <schema>.stored_events ORDER BY notification_id`, fetched with
          `fetchmany(--page)` until empty, nothing decoded; rows/s.
value     the best of `--repeat` subject runs (medians as extra keys); baseline: the best of
          as many raw reads (they alternate with the subject runs); ratio = value / baseline
          (target >= 0.3).
extra     events, customers (registered), seconds (of the best run), pages (read per run),
          applications (events applied, summed over the projections: an event both handle
          counts twice), the views' row counts; `--profile` adds a cProfile of one more
          catch-up (not timed).

    .venv/bin/python bench/catchup.py [--customers 2000] [--years 2] [--seed 7] [--page 10000]
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import argparse
import contextlib
import cProfile
import io
import pstats
import re
import time
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

import psycopg
from psycopg.sql import SQL, Identifier

from bench._common import (
    bench_schema,
    emit,
    fmt_rate,
    log,
    pg_url,
    summary,
    timed,
    with_schema,
)
from handlers.decision import CommandContext
from handlers.importer import Importer
from infra.engine import Engine, open_engine
from infra.history import HistoryConfig, history
from infra.projector import open_runner
from projections.catalogue import all_projections
from projections.runner import PAGE, SYSTEM_TABLES

NOW = datetime(2025, 1, 1, tzinfo=UTC)
"""Where the history ends: fixed, so a seed always gives the same log."""


def history_lines(customers: int, years: float, seed: int) -> list[bytes]:
    """The import lines of the demo history."""
    config = HistoryConfig(customers=customers, years=years, seed=seed, now=NOW)
    return list(history(config))


def load(engine: Engine, lines: Iterable[bytes]) -> int:
    """Import the lines (bulk path); events appended."""
    importer = Importer(engine.bus, engine.store, batch_size=5000, pipeline=True)
    report = importer.run(lines, CommandContext(actor="import:demo", channel="import"))
    if report.errors:
        log(f"  import: {len(report.errors):,} lines rejected, first: {report.errors[:3]}")
    if not report.events:
        raise SystemExit("the import appended nothing")
    return report.events


def sql(
    conn: psycopg.Connection[Any], statement: str, schema: str, params: tuple[Any, ...] = ()
) -> list[tuple[Any, ...]]:
    """`statement` with `{s}` standing for the schema."""
    cur = conn.execute(SQL(statement).format(s=Identifier(schema)), params or None)
    return cur.fetchall() if cur.description else []


def log_size(schema: str) -> tuple[int, int, int]:
    """(events, customers registered, bytes of the log's table with its TOAST)."""
    with psycopg.connect(pg_url()) as conn:
        ((events, size),) = sql(
            conn,
            "SELECT count(*), pg_total_relation_size(%s::regclass) FROM {s}.stored_events",
            schema,
            (f'"{schema}".stored_events',),
        )
        ((customers,),) = sql(
            conn,
            "SELECT count(*) FROM {s}.stored_events WHERE topic = 'customer.registered'",
            schema,
        )
    return int(events), int(customers), int(size)


def maintain(schema: str, analyze: bool = False) -> None:
    """ANALYZE (after the import), then flush dirty pages so no run pays for the one before."""
    with psycopg.connect(pg_url(), autocommit=True) as conn:
        if analyze:
            sql(conn, "ANALYZE {s}.stored_events", schema)
        with contextlib.suppress(psycopg.Error):
            conn.execute("CHECKPOINT")


def drop_views(schema: str) -> None:
    """Every table and view of the projections and the runner's system tables: a fresh start."""
    tables = {t for p in all_projections() for t in p.tables}
    generation = re.compile(r"^(.*)__g\d+$")
    with psycopg.connect(pg_url(), autocommit=True) as conn:
        rows = sql(
            conn,
            "SELECT c.relname, c.relkind FROM pg_class c JOIN pg_namespace n "
            "ON n.oid = c.relnamespace WHERE n.nspname = %s AND c.relkind IN ('r', 'v')",
            schema,
            (schema,),
        )
        for name, kind in rows:
            if kind == "v" and name in tables:
                sql(conn, f"DROP VIEW IF EXISTS {{s}}.{Identifier(name).as_string()}", schema)
        for name, kind in rows:
            m = generation.match(name)
            if kind == "r" and ((m and m.group(1) in tables) or name in SYSTEM_TABLES):
                target = Identifier(name).as_string()
                sql(conn, f"DROP TABLE IF EXISTS {{s}}.{target} CASCADE", schema)


VIEWS = ("customer_profile", "timeline")


def catch_up(
    engine: Engine, page: int, profile: bool = False, names: tuple[str, ...] = VIEWS
) -> tuple[float, int, int, str]:
    """A fresh runner's catch-up from 0 of `names`: (seconds, events applied, pages, profile)."""
    pages = 0
    applied = 0

    def tick(position: int, head: int) -> None:
        nonlocal pages
        pages += 1

    with open_runner(engine, page=page) as runner:
        profiler = cProfile.Profile() if profile else None

        def run() -> None:
            nonlocal applied
            if profiler is not None:
                profiler.enable()
            applied = runner.catch_up(list(names), progress=tick)
            if profiler is not None:
                profiler.disable()

        seconds = timed(run)
        lagging = [
            s
            for s in runner.status()
            if s.name in names and (s.lag or s.state != "live" or s.dead_letters)
        ]
        if lagging:
            raise SystemExit(f"catch-up left projections behind: {lagging}")
    text = ""
    if profiler is not None:
        out = io.StringIO()
        stats = pstats.Stats(profiler, stream=out)
        stats.sort_stats("cumulative").print_stats(35)
        stats.sort_stats("tottime").print_stats(25)
        text = out.getvalue()
    return seconds, applied, pages, text


def raw_read(schema: str, page: int) -> tuple[float, int]:
    """The baseline: (seconds, rows) of a server-side cursor over the whole log."""
    statement = SQL(
        "SELECT notification_id, originator_id, originator_version, topic, state "
        "FROM {0}.stored_events ORDER BY notification_id"
    ).format(Identifier(schema))
    rows = 0
    with psycopg.connect(pg_url()) as conn:

        def run() -> None:
            nonlocal rows
            with conn.cursor(name="bench_raw_read", binary=True) as cur:
                cur.execute(statement)
                while chunk := cur.fetchmany(page):
                    rows += len(chunk)

        seconds = timed(run)
        conn.rollback()
    return seconds, rows


def view_rows(schema: str) -> tuple[int, int]:
    """(rows in customer_profile, rows in timeline)."""
    with psycopg.connect(pg_url()) as conn:
        ((profiles,),) = sql(conn, "SELECT count(*) FROM {s}.customer_profile", schema)
        ((timeline,),) = sql(conn, "SELECT count(*) FROM {s}.timeline", schema)
    return int(profiles), int(timeline)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--customers", type=int, default=2000)
    parser.add_argument("--years", type=float, default=2.0)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--page", type=int, default=PAGE, help="log rows read per page")
    parser.add_argument("--repeat", type=int, default=3, help="runs of each side")
    parser.add_argument("--profile", action="store_true", help="cProfile one more catch-up")
    args = parser.parse_args()

    t0 = time.perf_counter()
    lines = history_lines(args.customers, args.years, args.seed)
    log(
        f"history: {len(lines):,} lines for {args.customers:,} customers "
        f"({time.perf_counter() - t0:.1f} s)"
    )
    with (
        bench_schema("catchup") as schema,
        open_engine(with_schema(pg_url(), schema), env={}) as engine,
    ):
        t0 = time.perf_counter()
        appended = load(engine, lines)
        del lines
        maintain(schema, analyze=True)
        events, customers, size = log_size(schema)
        log(
            f"setup: {appended:,} events imported in {time.perf_counter() - t0:.1f} s; log "
            f"{events:,} events, {customers:,} customers, {size / 1e6:,.0f} MB"
        )
        rates: list[float] = []
        base_rates: list[float] = []
        runs: list[tuple[float, int, int]] = []
        base_seconds: list[float] = []
        for i in range(args.repeat):
            drop_views(schema)
            maintain(schema)
            seconds, rows = raw_read(schema, args.page)
            if rows != events:
                raise SystemExit(f"the raw read gave {rows:,} rows, the log has {events:,}")
            base_rates.append(rows / seconds)
            base_seconds.append(seconds)
            seconds, applied, pages = catch_up(engine, args.page)[:3]
            rates.append(events / seconds)
            runs.append((seconds, applied, pages))
            log(
                f"  run {i + 1}: catch-up {fmt_rate(rates[-1])} ({seconds:.2f} s, {applied:,} "
                f"applied, {pages} pages); raw read {fmt_rate(base_rates[-1])}"
            )
        profiles, timeline = view_rows(schema)
        if args.profile:
            drop_views(schema)
            maintain(schema)
            log(catch_up(engine, args.page, profile=True)[3])

    subject, base = summary(rates), summary(base_rates)
    best = max(range(len(rates)), key=rates.__getitem__)
    seconds, applied, pages = runs[best]
    ratio = subject["best"] / base["best"]
    log(
        f"catch-up {fmt_rate(subject['best'])} best, {fmt_rate(subject['median'])} median; "
        f"raw read {fmt_rate(base['best'])} best, {fmt_rate(base['median'])} median"
    )
    log(
        f"views: {profiles:,} customer_profile rows, {timeline:,} timeline rows; "
        f"ratio {ratio:.3f} (target >= 0.3)"
    )
    emit(
        {
            "bench": "catchup",
            "value": round(subject["best"]),
            "unit": "events/s",
            "baseline": round(base["best"]),
            "ratio": round(ratio, 3),
            "median": round(subject["median"]),
            "baseline_median": round(base["median"]),
            "ratio_median": round(subject["median"] / base["median"], 3),
            "events": events,
            "applications": applied,
            "customers": customers,
            "seconds": round(seconds, 3),
            "baseline_seconds": round(min(base_seconds), 3),
            "pages": pages,
            "page": args.page,
            "repeat": args.repeat,
            "log_mb": round(size / 1e6, 1),
            "profile_rows": profiles,
            "timeline_rows": timeline,
            "seed": args.seed,
            "years": args.years,
        }
    )


if __name__ == "__main__":
    main()
