"""Charts of the reports (matplotlib, written to PNG files; no screen needed)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt

from projections.demand import DemandReport
from projections.orders_view import OrdersReport
from projections.pipeline_view import PipelineReport
from projections.retention import RetentionReport


def _save(fig: plt.Figure, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def pipeline_chart(report: PipelineReport, path: Path) -> Path:
    """Funnel of the deals that reached each stage with the conversion to the next, beside
    the median and mean days per stage."""
    fig, (funnel, days) = plt.subplots(1, 2, figsize=(11, 4.5))
    steps = [c.from_stage for c in report.conversion] + ["won"]
    reached = [c.reached for c in report.conversion]
    reached.append(report.conversion[-1].converted if report.conversion else 0)
    bars = funnel.barh(steps[::-1], reached[::-1], color="#4C72B0")
    for bar, conv in zip(bars[::-1][:-1], report.conversion, strict=False):
        rate = "" if conv.rate is None else f"  → {conv.rate:.0%}"
        funnel.text(bar.get_width(), bar.get_y() + bar.get_height() / 2, rate, va="center")
    funnel.set_title(
        f"{report.pipeline}: deals reaching each stage (as of {report.as_of:%Y-%m-%d})"
    )
    funnel.set_xlabel("deals")
    names = [d.stage for d in report.days]
    x = range(len(names))
    days.bar([i - 0.2 for i in x], [d.median_days or 0 for d in report.days], 0.4, label="median")
    days.bar([i + 0.2 for i in x], [d.mean_days or 0 for d in report.days], 0.4, label="mean")
    days.set_xticks(list(x), names)
    days.set_ylabel("days in stage")
    days.set_title("days per stage")
    days.legend()
    return _save(fig, path)


def spend_chart(report: OrdersReport, spends: Sequence[float], path: Path) -> Path:
    """Distribution of net spend per customer, with the payment mix."""
    fig, (hist, mix) = plt.subplots(1, 2, figsize=(11, 4.5))
    hist.hist(spends, bins=30, color="#55A868")
    currency = report.totals[0].currency if report.totals else ""
    hist.set_title(f"net spend per customer (as of {report.as_of:%Y-%m-%d})")
    hist.set_xlabel(f"net spend, {currency}")
    hist.set_ylabel("customers")
    mix.pie(
        [p.orders for p in report.payment_mix],
        labels=[p.method for p in report.payment_mix],
        autopct="%1.0f%%",
    )
    mix.set_title("payment mix (orders)")
    return _save(fig, path)


def cohort_chart(report: RetentionReport, path: Path) -> Path:
    """Cohort retention heat map: a row per first-order month, a column per month after it."""
    cohorts = report.cohorts
    width = max((len(c.shares) for c in cohorts), default=1)
    grid = [[*c.shares, *([float("nan")] * (width - len(c.shares)))] for c in cohorts]
    fig, ax = plt.subplots(figsize=(min(2 + width * 0.55, 16), 1.5 + len(cohorts) * 0.32))
    image = ax.imshow(grid, cmap="YlGnBu", vmin=0, vmax=1, aspect="auto")
    for i, c in enumerate(cohorts):
        for k, share in enumerate(c.shares):
            ax.text(k, i, f"{share:.0%}", ha="center", va="center", fontsize=7)
    ax.set_yticks(range(len(cohorts)), [f"{c.month} ({c.customers})" for c in cohorts])
    ax.set_xticks(range(width))
    ax.set_xlabel("months after the first order")
    ax.set_title(f"Cohort retention as of {report.as_of:%Y-%m-%d}")
    fig.colorbar(image, ax=ax, format=lambda x, _: f"{x:.0%}")
    return _save(fig, path)


def demand_chart(report: DemandReport, path: Path) -> Path:
    """Units per period with the backtest and the forecast band; units per segment."""
    fig, (total, segments) = plt.subplots(2, 1, figsize=(11, 7), sharex=True)
    done = [p for p in report.periods if p.complete]
    total.plot([p.period for p in done], [p.units for p in done], color="#4C72B0", label="units")
    f = report.forecast
    bt = f.backtest
    if bt is not None and bt.starts:
        total.plot(bt.starts, bt.predicted, "--", color="#DD8452", label=f"backtest {bt.model}")
        if bt.baseline_predicted:
            total.plot(bt.starts, bt.baseline_predicted, ":", color="#8C8C8C", label=bt.baseline)
    if f.starts:
        total.plot(f.starts, f.values, color="#DD8452", label=f"forecast ({f.model})")
        total.fill_between(f.starts, f.lower, f.upper, color="#DD8452", alpha=0.2)
    title = f"units per {report.period}"
    if bt is not None and bt.mape is not None and bt.baseline_mape is not None:
        title += f"; backtest MAPE {bt.mape:.1f}% vs seasonal-naive {bt.baseline_mape:.1f}%"
    total.set_title(title)
    total.legend(loc="upper left")
    by: dict[str, dict[object, int]] = {}
    for s in report.segments:
        by.setdefault(s.segment, {})[s.period] = by.get(s.segment, {}).get(s.period, 0) + s.units
    periods = [p.period for p in done]
    bottom = [0] * len(periods)
    for segment, units in sorted(by.items()):
        values = [units.get(p, 0) for p in periods]
        segments.bar(
            periods,
            values,
            bottom=bottom,
            label=segment,
            width=5 if report.period == "week" else 25,
        )
        bottom = [a + b for a, b in zip(bottom, values, strict=True)]
    segments.set_title("units per price segment")
    segments.legend(loc="upper left")
    return _save(fig, path)
