"""Charts of the reports (matplotlib, written to PNG files; no screen needed)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt

from projections.demand import DemandReport
from projections.equipment_view import EquipmentReport
from projections.orders_view import OrdersReport
from projections.pipeline_view import PipelineReport
from projections.retention import RetentionReport
from projections.satisfaction import SatisfactionReport
from projections.service_view import ServiceReport


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


def nps_chart(report: SatisfactionReport, path: Path) -> Path:
    """NPS per period (with the answers behind each point) beside CSAT per period."""
    fig, (nps, csat) = plt.subplots(1, 2, figsize=(11, 4.5))
    periods = [s for s in report.by_period if s.nps is not None]
    nps.plot([s.key for s in periods], [s.nps for s in periods], marker="o", color="#4C72B0")
    nps.axhline(0, color="grey", linewidth=0.8)
    nps.set_title(f"NPS per {report.period} (as of {report.as_of:%Y-%m-%d})")
    nps.set_ylabel("NPS (promoters - detractors, %)")
    nps.tick_params(axis="x", labelrotation=60, labelsize=7)
    answered = [s for s in report.by_period if s.csat is not None]
    csat.bar([s.key for s in answered], [100 * (s.csat or 0) for s in answered], color="#55A868")
    csat.set_title(f"CSAT per {report.period}: share of 4 and 5")
    csat.set_ylabel("%")
    csat.set_ylim(0, 100)
    csat.tick_params(axis="x", labelrotation=60, labelsize=7)
    return _save(fig, path)


def sla_chart(report: ServiceReport, path: Path) -> Path:
    """SLA compliance per severity for first response and resolution, beside the backlog
    per agent."""
    fig, (sla, backlog) = plt.subplots(1, 2, figsize=(11, 4.5))
    rows = [c for c in report.compliance if c.severity != "all"]
    severities = sorted({c.severity for c in rows}, key=_SEVERITY_ORDER.index)
    x = range(len(severities))
    for offset, clock, color in (
        (-0.2, "first_response", "#4C72B0"),
        (0.2, "resolution", "#C44E52"),
    ):
        share = {c.severity: c.share_met for c in rows if c.sla == clock}
        sla.bar(
            [i + offset for i in x],
            [100 * (share.get(s) or 0) for s in severities],
            0.4,
            label=clock.replace("_", " "),
            color=color,
        )
    sla.set_xticks(list(x), severities)
    sla.set_ylim(0, 100)
    sla.set_ylabel("% met")
    sla.set_title(f"SLA compliance (as of {report.as_of:%Y-%m-%d})")
    sla.legend()
    agents = report.backlog[:12]
    backlog.barh([a.agent for a in agents][::-1], [a.total for a in agents][::-1], color="#8172B2")
    backlog.set_title(f"open tickets per agent ({report.open_tickets} open)")
    backlog.set_xlabel("tickets")
    return _save(fig, path)


_SEVERITY_ORDER = ["critical", "high", "normal", "low"]


def failures_chart(report: EquipmentReport, path: Path) -> Path:
    """Failures per model (per 100 units) beside the mean time between failures."""
    fig, (fails, mtbf) = plt.subplots(1, 2, figsize=(11, 4.5))
    models = sorted(report.failures_by_model, key=lambda m: -m.failures / max(m.units, 1))
    names = [m.model for m in models]
    fails.barh(names[::-1], [100 * m.failures / max(m.units, 1) for m in models][::-1])
    fails.set_title(f"failures per 100 units (as of {report.as_of:%Y-%m-%d})")
    fails.set_xlabel("failures / 100 units")
    with_mtbf = [m for m in models if m.mtbf_days is not None]
    mtbf.barh(
        [m.model for m in with_mtbf][::-1],
        [m.mtbf_days or 0 for m in with_mtbf][::-1],
        color="#C44E52",
    )
    mtbf.set_title("mean time between failures")
    mtbf.set_xlabel("days in service per failure")
    return _save(fig, path)


def campaign_chart(
    title: str,
    funnel: Sequence[tuple[str, int]],
    conversion: Sequence[tuple[str, float | None, int]],
    path: Path,
) -> Path:
    """A campaign's funnel (customers at each step, with the share of those sent) beside the
    conversion rate of the customers sent to and of the holdout (`(group, rate, customers)`)."""
    fig, (steps, groups) = plt.subplots(1, 2, figsize=(11, 4.5))
    names = [n for n, _ in funnel]
    counts = [c for _, c in funnel]
    bars = steps.barh(names[::-1], counts[::-1], color="#4C72B0")
    top = counts[0] if counts else 0
    for bar, n in zip(bars, counts[::-1], strict=True):
        share = f"  {n / top:.0%}" if top else ""
        steps.text(bar.get_width(), bar.get_y() + bar.get_height() / 2, share, va="center")
    steps.set_title(title)
    steps.set_xlabel("customers")
    labels = [f"{g} ({n})" for g, _, n in conversion]
    rates = [100 * (r or 0) for _, r, _ in conversion]
    groups.bar(labels, rates, color=["#55A868", "#8C8C8C"])
    groups.set_ylim(0, max([*rates, 1.0]) * 1.15)
    groups.set_ylabel("% ordered within the attribution window")
    groups.set_title("conversion: sent vs holdout")
    return _save(fig, path)


def backtest_chart(rule: str, points: Sequence[tuple[object, int]], path: Path) -> Path:
    """A rule's backtest: the customers it selects at each business time (`(at, size)`)."""
    fig, ax = plt.subplots(figsize=(11, 4.5))
    ax.plot([at for at, _ in points], [n for _, n in points], marker="o", color="#4C72B0")
    ax.set_ylim(bottom=0)
    ax.set_ylabel("customers selected")
    ax.set_title(rule if len(rule) <= 90 else rule[:87] + "...", fontsize=10)
    fig.autofmt_xdate()
    return _save(fig, path)
