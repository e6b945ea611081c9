"""The rebuild benches' shared run: views rebuilt from position 0 over the demo history on
PostgreSQL, against a raw read of the same log in the same run (see bench/rebuild_commerce.py
for the method)."""

from __future__ import annotations

import argparse
import math
import time

from bench._common import bench_schema, emit, fmt_rate, log, pg_url, summary, with_schema
from bench.catchup import catch_up, drop_views, history_lines, load, log_size, maintain, raw_read
from infra.engine import Engine, open_engine
from projections.catalogue import all_projections
from projections.runner import PAGE


def measure(
    engine: Engine, schema: str, events: int, names: tuple[str, ...], *, page: int, repeat: int
) -> tuple[list[float], list[float], float]:
    """`repeat` runs of: the views dropped, a raw read of the log (baseline, rows/s), then a
    catch-up of `names` from nothing (events/s). Returns both rates and the fastest rebuild's
    seconds."""
    rates: list[float] = []
    base: list[float] = []
    fastest = math.inf
    for i in range(repeat):
        drop_views(schema)
        maintain(schema)
        seconds, rows = raw_read(schema, page)
        if rows != events:
            raise SystemExit(f"the raw read gave {rows:,} rows, the log has {events:,}")
        base.append(rows / seconds)
        seconds, applied, pages = catch_up(engine, page, names=names)[:3]
        fastest = min(fastest, seconds)
        rates.append(events / seconds)
        log(
            f"  run {i + 1}: rebuild {fmt_rate(rates[-1])} ({seconds:.2f} s, {applied:,} applied, "
            f"{pages} pages); raw read {fmt_rate(base[-1])}"
        )
    return rates, base, fastest


def run(bench: str, wanted: tuple[str, ...], target: float, description: str) -> None:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--customers", type=int, default=2000)
    parser.add_argument("--years", type=float, default=2.0)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--page", type=int, default=PAGE)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    present = {p.name for p in all_projections()}
    names = tuple(n for n in wanted if n in present)
    missing = [n for n in wanted if n not in present]
    t0 = time.perf_counter()
    lines = history_lines(args.customers, args.years, args.seed)
    log(
        f"history: {len(lines):,} lines ({time.perf_counter() - t0:.1f} s); views: {', '.join(names)}"
    )
    with (
        bench_schema(bench) as schema,
        open_engine(with_schema(pg_url(), schema), env={}) as engine,
    ):
        load(engine, lines)
        del lines
        maintain(schema, analyze=True)
        events, customers, size = log_size(schema)
        log(f"setup: log {events:,} events, {customers:,} customers, {size / 1e6:,.0f} MB")
        rates, base, _ = measure(engine, schema, events, names, page=args.page, repeat=args.repeat)
    subject, baseline = summary(rates), summary(base)
    ratio = subject["best"] / baseline["best"]
    log(f"rebuild / raw read = {ratio:.3f} (target >= {target})")
    emit(
        {
            "bench": bench,
            "value": round(subject["best"]),
            "unit": "events/s",
            "baseline": round(baseline["best"]),
            "ratio": round(ratio, 3),
            "median": round(subject["median"]),
            "baseline_median": round(baseline["median"]),
            "events": events,
            "customers": customers,
            "views": list(names),
            "missing": missing,
            "seed": args.seed,
        }
    )
