"""`crm pipeline report`, `crm orders report`: as of any date, as tables, JSON or CSV, and charts."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from uuid import UUID

import typer
from rich.console import Console

from infra.cli.output import Format, emit, pct
from infra.cli.projections import RECORDED_AS_OF, views_at
from projections.demand import demand_report
from projections.orders_view import customer_orders, orders_report
from projections.pipeline_view import pipeline_report
from projections.retention import retention_report

console = Console()
err_console = Console(stderr=True)

pipeline_app = typer.Typer(no_args_is_help=True, help="The sales pipeline.")
orders_app = typer.Typer(no_args_is_help=True, help="Orders, invoices, returns.")

AS_OF = typer.Option(
    None, "--as-of", help="Business time, e.g. 2026-03-31 or 2026-03-31T18:00:00Z."
)
FORMAT = typer.Option(Format.table, "--format")
CHART = typer.Option(None, "--chart", help="Write a chart to this PNG file.")


def parse_as_of(raw: str | None, option: str = "--as-of") -> datetime | None:
    """A date means the end of that day (UTC); a time without zone is UTC."""
    if raw is None:
        return None
    text = raw.strip().replace("Z", "+00:00")
    try:
        if len(text) == 10:
            return datetime.fromisoformat(text).replace(hour=23, minute=59, second=59, tzinfo=UTC)
        at = datetime.fromisoformat(text)
    except ValueError:
        raise typer.BadParameter(f"{raw!r} is not an ISO date or time", param_hint=option) from None
    return at if at.tzinfo else at.replace(tzinfo=UTC)


@pipeline_app.command("report")
def pipeline(
    name: str = typer.Option("sales", "--pipeline", help="Which pipeline."),
    as_of: str | None = AS_OF,
    fmt: Format = FORMAT,
    chart: Path | None = CHART,
    recorded_as_of: str | None = RECORDED_AS_OF,
) -> None:
    """Open amounts per stage and owner, weighted forecast, conversion, days per stage, win
    rates by source, owner and month, losses per competitor."""
    at = parse_as_of(as_of)
    with views_at(recorded_as_of, ["pipeline"]) as (db, now):
        r = pipeline_report(db, now=now, pipeline=name, as_of=at)
    cur = r.currency or ""
    if fmt is Format.table:
        console.print(
            f"[bold]{r.pipeline}[/bold] as of {r.as_of:%Y-%m-%d %H:%M}: {r.open_deals} open "
            f"deals, {r.open_amount} {cur} open, weighted forecast {r.weighted_forecast} {cur}"
        )
    emit(
        console,
        "open by stage",
        ("stage", "probability", "deals", "amount", "weighted"),
        [(s.stage, s.probability, s.deals, s.amount, s.weighted) for s in r.by_stage],
        fmt,
    )
    emit(
        console,
        "open by owner",
        ("owner", "deals", "amount", "weighted"),
        [(o.owner, o.deals, o.amount, o.weighted) for o in r.by_owner],
        fmt,
    )
    emit(
        console,
        "conversion",
        ("from", "to", "reached", "converted", "rate"),
        [(c.from_stage, c.to_stage, c.reached, c.converted, pct(c.rate)) for c in r.conversion],
        fmt,
    )
    emit(
        console,
        "days per stage",
        ("stage", "stays", "median", "mean"),
        [(d.stage, d.stays, d.median_days, d.mean_days) for d in r.days],
        fmt,
    )
    for title, rows in (
        ("win rate by source", r.win_rate_by_source),
        ("win rate by owner", r.win_rate_by_owner),
        ("win rate by month closed", r.win_rate_by_month),
    ):
        emit(
            console,
            title,
            ("key", "won", "lost", "rate"),
            [(w.key, w.won, w.lost, pct(w.rate)) for w in rows],
            fmt,
        )
    emit(
        console,
        "losses per competitor",
        ("competitor", "deals", "amount"),
        [(x.competitor, x.deals, x.amount) for x in r.losses],
        fmt,
    )
    if chart is not None:
        from infra.charts import pipeline_chart

        err_console.print(f"chart: {pipeline_chart(r, chart)}")


@orders_app.command("report")
def orders(
    customer: UUID | None = typer.Option(None, "--customer", help="One customer's order history."),
    as_of: str | None = AS_OF,
    top: int = typer.Option(10, help="How many customers in the top list."),
    fmt: Format = FORMAT,
    chart: Path | None = CHART,
    recorded_as_of: str | None = RECORDED_AS_OF,
) -> None:
    """Spend net of returns, order count, average order value, payment mix, overdue
    invoices, return rate per product, top customers (or one customer's history)."""
    at = parse_as_of(as_of)
    with views_at(recorded_as_of, ["orders"], timers=True) as (db, now):
        if customer is not None:
            rows = customer_orders(db, customer, now=now, as_of=at)
            emit(
                console,
                f"orders of {customer}",
                ("placed_at", "order_id", "status", "total", "net", "payment", "paid", "overdue"),
                [
                    (
                        o.placed_at,
                        o.order_id,
                        o.status,
                        o.total,
                        o.net,
                        o.payment_method,
                        o.paid,
                        o.overdue,
                    )
                    for o in rows
                ],
                fmt,
            )
            return
        r = orders_report(db, now=now, as_of=at, top=1_000_000)
    emit(
        console,
        f"orders as of {r.as_of:%Y-%m-%d %H:%M}",
        ("currency", "orders", "customers", "gross", "refunds", "net", "average_order_value"),
        [
            (t.currency, t.orders, t.customers, t.gross, t.refunds, t.net, t.average_order_value)
            for t in r.totals
        ],
        fmt,
    )
    emit(
        console,
        "payment mix",
        ("method", "orders", "share"),
        [(p.method, p.orders, pct(p.share)) for p in r.payment_mix],
        fmt,
    )
    emit(
        console,
        "overdue invoices",
        ("due_date", "order_id", "customer_id", "number", "outstanding", "currency"),
        [
            (o.due_date, o.order_id, o.customer_id, o.number, o.outstanding, o.currency)
            for o in r.overdue
        ],
        fmt,
    )
    emit(
        console,
        "returns per product",
        ("sku", "sold", "returned", "rate"),
        [(x.sku, x.sold, x.returned, pct(x.rate)) for x in r.returns],
        fmt,
    )
    emit(
        console,
        "top customers (net spend)",
        ("customer_id", "orders", "net", "currency", "last_order_at"),
        [
            (c.customer_id, c.orders, c.net, c.currency, c.last_order_at)
            for c in r.top_customers[:top]
        ],
        fmt,
    )
    if chart is not None:
        from infra.charts import spend_chart

        err_console.print(
            f"chart: {spend_chart(r, [float(c.net) for c in r.top_customers], chart)}"
        )


retention_app = typer.Typer(
    no_args_is_help=True, help="Acquisition, cohorts, churn, lifetime value."
)


@retention_app.command("report")
def retention(
    as_of: str | None = AS_OF,
    inactive_days: int = typer.Option(180, help="No order for this long: churned."),
    at_risk_days: int = typer.Option(90, help="No order for this long: at risk."),
    top: int = typer.Option(10, help="How many customers in the lists."),
    fmt: Format = FORMAT,
    chart: Path | None = CHART,
    recorded_as_of: str | None = RECORDED_AS_OF,
) -> None:
    """Acquisition per source and first channel, cohorts by first-order month, repeat rate,
    customers at risk, churned and won back, customer lifetime value."""
    at = parse_as_of(as_of)
    with views_at(recorded_as_of, ["retention"]) as (db, now):
        r = retention_report(
            db,
            now=now,
            as_of=at,
            inactive_days=inactive_days,
            at_risk_days=at_risk_days,
        )
    if fmt is Format.table:
        console.print(
            f"[bold]retention[/bold] as of {r.as_of:%Y-%m-%d}: churned after {r.inactive_days} "
            f"days without an order, at risk after {r.at_risk_days}; repeat buyers "
            f"{r.repeat.repeat_buyers}/{r.repeat.buyers} = {r.repeat.rate:.1%}; "
            f"{len(r.at_risk)} at risk, {len(r.churned)} churned, {r.won_back_count} won back"
        )
    for title, rows in (
        ("acquired per source", r.acquisition_by_source),
        ("acquired per first channel", r.acquisition_by_channel),
    ):
        emit(
            console,
            title,
            ("month", "key", "customers"),
            [(a.month, a.key, a.customers) for a in rows],
            fmt,
        )
    emit(
        console,
        "cohorts (share ordering again k months after the first order)",
        ("month", "customers", *(f"m{k}" for k in range(7))),
        [
            (
                c.month,
                c.customers,
                *(pct(x) for x in c.shares[:7]),
                *([""] * (7 - len(c.shares[:7]))),
            )
            for c in r.cohorts
        ],
        fmt,
    )
    for title, inactive in (("at risk", r.at_risk), ("churned", r.churned)):
        emit(
            console,
            f"{title} (oldest first)",
            ("customer_id", "last_order_at", "days_since"),
            [(x.customer_id, x.last_order_at, x.days_since) for x in inactive[:top]],
            fmt,
        )
    emit(
        console,
        "won back",
        ("customer_id", "times", "churned_at", "won_back_at"),
        [(w.customer_id, w.times, w.churned_at, w.won_back_at) for w in r.won_back[:top]],
        fmt,
    )
    best = sorted(r.customer_value, key=lambda v: -v.clv)[:top]
    emit(
        console,
        "customer lifetime value (top)",
        ("customer_id", "orders", "order_net", "subscriptions", "clv", "currency"),
        [
            (v.customer_id, v.orders, v.order_net, v.subscription_revenue, v.clv, v.currency)
            for v in best
        ],
        fmt,
    )
    emit(
        console,
        "lifetime value per source",
        ("source", "customers", "total", "average", "currency"),
        [(g.key, g.customers, g.total, g.average, g.currency) for g in r.value_by_source],
        fmt,
    )
    if chart is not None:
        from infra.charts import cohort_chart

        err_console.print(f"chart: {cohort_chart(r, chart)}")


demand_app = typer.Typer(
    no_args_is_help=True, help="Demand per product and price segment, forecast."
)


@demand_app.command("report")
def demand(
    period: str = typer.Option("week", help="week or month"),
    as_of: str | None = AS_OF,
    horizon: int = typer.Option(8, min=1, help="Periods to forecast (and to backtest)."),
    last: int = typer.Option(12, help="How many periods to list."),
    fmt: Format = FORMAT,
    chart: Path | None = CHART,
    recorded_as_of: str | None = RECORDED_AS_OF,
) -> None:
    """Units and revenue per period, product and price segment, with a seasonal forecast of
    the next periods and its backtest beside a seasonal-naive baseline."""
    if period not in {"week", "month"}:
        raise typer.BadParameter("week or month", param_hint="--period")
    at = parse_as_of(as_of)
    with views_at(recorded_as_of, ["demand"]) as (db, _):
        r = demand_report(db, period=period, as_of=at, horizon=horizon)  # type: ignore[arg-type]
    shown = r.periods[-last:]
    emit(
        console,
        f"demand per {period}",
        ("period", "complete", "units", "revenue"),
        [
            (p.period, p.complete, p.units, ", ".join(f"{v} {c}" for c, v in p.revenue.items()))
            for p in shown
        ],
        fmt,
    )
    since = shown[0].period if shown else None
    segments = [s for s in r.segments if since is None or s.period >= since]
    emit(
        console,
        "units per price segment",
        ("period", "segment", "units", "revenue", "currency"),
        [(s.period, s.segment, s.units, s.revenue, s.currency) for s in segments],
        fmt,
    )
    top: dict[str, int] = {}
    for p in r.products:
        if since is None or p.period >= since:
            top[p.sku] = top.get(p.sku, 0) + p.units
    emit(
        console,
        "top products (units, listed periods)",
        ("sku", "units"),
        sorted(top.items(), key=lambda x: -x[1])[:10],
        fmt,
    )
    f = r.forecast
    emit(
        console,
        f"forecast ({f.model}, {f.level:.0%} band)",
        ("period", "units", "lower", "upper"),
        [
            (s, round(v), round(lo), round(hi))
            for s, v, lo, hi in zip(f.starts, f.values, f.lower, f.upper, strict=True)
        ],
        fmt,
    )
    bt = f.backtest
    if bt is not None and fmt is Format.table:
        console.print(
            f"backtest over the last {bt.horizon} {period}s (refit without them): {bt.model} MAPE "
            f"{_num(bt.mape)}% vs {bt.baseline} {_num(bt.baseline_mape)}%"
        )
    if chart is not None:
        from infra.charts import demand_chart

        err_console.print(f"chart: {demand_chart(r, chart)}")


def _num(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.1f}"
