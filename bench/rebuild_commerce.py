"""Rebuild of pipeline + orders + demand + retention over the demo history, events/s, against
a raw read of the same log.

setup     (not timed) the demo history (`infra.history`, commerce included: products, deals,
          orders, invoices, returns, subscriptions; `--customers` customers over `--years`
          years, seed `--seed`) imported into a fresh PostgreSQL schema by the bulk importer.
subject   the commerce views rebuilt from position 0: their tables, views and the runner's
          system tables dropped, then one catch-up of all of them from nothing (each page of
          the log read once and decoded once for all of them; each view writes its rows and
          checkpoint in a transaction of its own). events/s = events in the log / seconds.
baseline  in the same run, a raw server-side cursor read of the whole log (binary, nothing
          decoded), rows/s: see bench/catchup.py.
value     the best of `--repeat` runs (medians as extra keys); ratio = value / baseline
          (target >= 0.25). Views not built yet (demand, retention until their issue step
          lands) are listed under `missing` and left out.

    .venv/bin/python bench/rebuild_commerce.py [--customers 2000] [--years 2] [--seed 7]
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import argparse
import time

from bench._common import bench_schema, emit, fmt_rate, log, pg_url, summary, with_schema
from bench.catchup import catch_up, drop_views, history_lines, load, log_size, maintain, raw_read
from infra.engine import open_engine
from projections.catalogue import all_projections
from projections.runner import PAGE

WANTED = ("pipeline", "orders", "demand", "retention")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--customers", type=int, default=2000)
    parser.add_argument("--years", type=float, default=2.0)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--page", type=int, default=PAGE)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    present = {p.name for p in all_projections()}
    names = tuple(n for n in WANTED if n in present)
    missing = [n for n in WANTED if n not in present]
    t0 = time.perf_counter()
    lines = history_lines(args.customers, args.years, args.seed)
    log(
        f"history: {len(lines):,} lines ({time.perf_counter() - t0:.1f} s); views: {', '.join(names)}"
    )
    rates: list[float] = []
    base: list[float] = []
    with (
        bench_schema("rebuild_commerce") as schema,
        open_engine(with_schema(pg_url(), schema), env={}) as engine,
    ):
        load(engine, lines)
        del lines
        maintain(schema, analyze=True)
        events, customers, size = log_size(schema)
        log(f"setup: log {events:,} events, {customers:,} customers, {size / 1e6:,.0f} MB")
        for i in range(args.repeat):
            drop_views(schema)
            maintain(schema)
            seconds, rows = raw_read(schema, args.page)
            base.append(rows / seconds)
            seconds, applied, pages = catch_up(engine, args.page, names=names)[:3]
            rates.append(events / seconds)
            log(
                f"  run {i + 1}: rebuild {fmt_rate(rates[-1])} ({seconds:.2f} s, {applied:,} applied, "
                f"{pages} pages); raw read {fmt_rate(base[-1])}"
            )
    subject, baseline = summary(rates), summary(base)
    ratio = subject["best"] / baseline["best"]
    log(f"rebuild / raw read = {ratio:.3f} (target >= 0.25)")
    emit(
        {
            "bench": "rebuild_commerce",
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


if __name__ == "__main__":
    main()
