"""Forecast error of the demand view's model over the last 8 weeks of the demo history, MAPE in
percent, against the seasonal-naive forecast of the same weeks.

setup     (not timed) the demo history (`infra.history`, commerce included: webshop orders,
          won deals, returns, cancellations; `--customers` customers over `--years` years
          ending at `--now`, a Monday so the last week is whole) with seed `--seed` (11, not
          the demo's 7: the models were chosen on seeds 7 and 13), its lines but the
          interactions (which the view does not read) imported into a fresh PostgreSQL schema
          by the bulk importer; the `demand` projection caught up from position 0.
subject   `projections.demand.demand_report(period="week", as_of=now, horizon=8)`: units
          sold per ISO week (net of returns, cancelled orders left out) and its backtest: the
          model chosen and refit without the last 8 weeks (`projections.forecast`), MAPE of
          its forecast of them.
baseline  in the same report, the seasonal-naive forecast of those 8 weeks (each week's units
          52 weeks before), MAPE over the same weeks.
value     the model's MAPE (lower is better); ratio = baseline / value (>= 1: the model is
          better). Extra keys: the models chosen, the same for months (horizon 8) and per price
          segment (weekly), the catch-up and report seconds, the history's size.

    .venv/bin/python bench/forecast.py [--customers 2000] [--years 3] [--seed 11]
        [--now 2025-01-06]
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import argparse
import time
from datetime import UTC, datetime
from typing import Any

from bench._common import bench_schema, emit, log, pg_url, with_schema
from bench.catchup import load, maintain
from infra.engine import open_engine
from infra.history import HistoryConfig, history
from infra.projection_db import projection_db
from projections.demand import Demand, DemandReport, demand_report
from projections.forecast import Forecast
from projections.runner import Runner

INTERACTION = b'{"command":"interaction.'
"""Interaction lines (four lines in five) are not imported: the demand view reads none."""
PLACE, WIN = b'{"command":"order.place"', b'{"command":"deal.win"'


def rounded(x: float | None) -> float | None:
    return None if x is None else round(x, 2)


def describe(f: Forecast) -> dict[str, Any]:
    bt = f.backtest
    return {
        "model": f.model,
        "history": f.history,
        "backtest_model": bt.model if bt else None,
        "mape": rounded(bt.mape) if bt else None,
        "baseline_mape": rounded(bt.baseline_mape) if bt else None,
    }


def show(report: DemandReport) -> None:
    f = report.forecast
    bt = f.backtest
    log(f"  {report.period}s: {f.history} complete, model {f.model}")
    if bt is not None:
        log(f"  backtest ({bt.model}) vs {bt.baseline}, last {bt.horizon}:")
        for start, a, p, b in zip(
            bt.starts,
            bt.actual,
            bt.predicted,
            bt.baseline_predicted or [None] * bt.horizon,
            strict=True,
        ):
            naive = "-" if b is None else f"{b:8.0f}"
            log(f"    {start}  actual {a:8.0f}  model {p:8.1f}  seasonal-naive {naive}")
        log(f"    MAPE model {bt.mape}  seasonal-naive {bt.baseline_mape}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--customers", type=int, default=2000)
    parser.add_argument("--years", type=float, default=3.0)
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--now", default="2025-01-06", help="where the history ends (UTC)")
    args = parser.parse_args()
    now = datetime.fromisoformat(args.now).replace(tzinfo=UTC)

    t0 = time.perf_counter()
    config = HistoryConfig(now=now, customers=args.customers, years=args.years, seed=args.seed)
    lines = [line for line in history(config) if not line.startswith(INTERACTION)]
    orders = sum(1 for line in lines if line.startswith((PLACE, WIN)))
    log(f"history: {len(lines):,} lines, {orders:,} orders ({time.perf_counter() - t0:.1f} s)")
    if not orders:
        raise SystemExit("the demo history has no orders: nothing to forecast")
    with (
        bench_schema("forecast") as schema,
        open_engine(with_schema(pg_url(), schema), env={}) as engine,
    ):
        t0 = time.perf_counter()
        appended = load(engine, lines)
        del lines
        maintain(schema, analyze=True)
        log(f"setup: {appended:,} events imported in {time.perf_counter() - t0:.1f} s")
        with Runner(projection_db(engine.store), engine.store, [Demand()], engine.clock) as r:
            r.setup()
            t0 = time.perf_counter()
            r.catch_up()
            catch_up = time.perf_counter() - t0
            (status,) = r.status()
            if status.lag or status.state != "live" or status.dead_letters:
                raise SystemExit(f"the demand view did not catch up: {status}")
            t0 = time.perf_counter()
            week = demand_report(r.db, period="week", as_of=now, horizon=8)
            report_seconds = time.perf_counter() - t0
            month = demand_report(r.db, period="month", as_of=now, horizon=8)
        log(f"demand caught up in {catch_up:.1f} s; weekly report in {report_seconds:.2f} s")
    show(week)
    show(month)
    bt = week.forecast.backtest
    if bt is None or bt.mape is None or bt.baseline_mape is None:
        raise SystemExit(f"no backtest over {week.forecast.history} weeks: {bt}")
    units = sum(p.units for p in week.periods)
    emit(
        {
            "bench": "forecast",
            "value": round(bt.mape, 2),
            "unit": "% MAPE (8 weeks)",
            "baseline": round(bt.baseline_mape, 2),
            "ratio": round(bt.baseline_mape / bt.mape, 3),
            "model": week.forecast.model,
            "backtest_model": bt.model,
            "weeks": week.forecast.history,
            "month": describe(month.forecast),
            "segments": {s: describe(f) for s, f in week.segment_forecasts.items()},
            "orders": orders,
            "units": units,
            "events": appended,
            "catch_up_seconds": round(catch_up, 2),
            "report_seconds": round(report_seconds, 2),
            "customers": args.customers,
            "years": args.years,
            "seed": args.seed,
            "now": now.isoformat(),
        }
    )


if __name__ == "__main__":
    main()
