"""`crm satisfaction|service|equipment report`, `crm recommend`: as of any date, as tables,
JSON or CSV, and charts."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from uuid import UUID

import typer

from handlers.decision import CommandContext
from infra.cli.output import Format, emit, pct, refusals_as_replies
from infra.cli.projections import RECORDED_AS_OF, open_projector, views_at
from infra.cli.reports import AS_OF, CHART, FORMAT, console, err_console, parse_as_of
from projections.equipment_view import equipment_report
from projections.offers_view import recommend
from projections.reminders import reminders_list
from projections.satisfaction import Scores, satisfaction_report
from projections.service_view import service_report

satisfaction_app = typer.Typer(no_args_is_help=True, help="NPS and CSAT surveys.")
service_app = typer.Typer(no_args_is_help=True, help="Tickets, complaints and SLAs.")
equipment_app = typer.Typer(no_args_is_help=True, help="Equipment customers own.")
reminders_app = typer.Typer(
    no_args_is_help=True,
    help="Reminders routed to one employee. Complete or snooze one with `crm do "
    "reminder.complete key=KEY` or `crm do reminder.snooze key=KEY until=T`.",
)

SCORE_COLUMNS = (
    "key",
    "nps",
    "nps answers",
    "promoters",
    "passives",
    "detractors",
    "csat",
    "csat mean",
    "csat answers",
)


def _scores(rows: list[Scores]) -> list[tuple[object, ...]]:
    return [
        (
            s.key,
            None if s.nps is None else round(s.nps, 1),
            s.nps_answers,
            s.promoters,
            s.passives,
            s.detractors,
            pct(s.csat),
            None if s.csat_mean is None else round(s.csat_mean, 2),
            s.csat_answers,
        )
        for s in rows
    ]


@satisfaction_app.command("report")
def satisfaction(
    period: str = typer.Option("month", help="month or week"),
    as_of: str | None = AS_OF,
    fmt: Format = FORMAT,
    chart: Path | None = CHART,
    recorded_as_of: str | None = RECORDED_AS_OF,
) -> None:
    """NPS and CSAT per period, product, agent, trigger and segment (lifecycle stage), and
    the response rate per kind of survey."""
    if period not in {"month", "week"}:
        raise typer.BadParameter("month or week", param_hint="--period")
    at = parse_as_of(as_of)
    with views_at(recorded_as_of, ["satisfaction", "customer_profile"]) as (db, now):
        r = satisfaction_report(
            db,
            now=now,
            as_of=at,
            period=period,  # type: ignore[arg-type]
        )
    if fmt is Format.table:
        o = r.overall
        nps = "n/a" if o.nps is None else f"{o.nps:+.1f}"
        console.print(
            f"[bold]satisfaction[/bold] as of {r.as_of:%Y-%m-%d %H:%M}: NPS {nps} from "
            f"{o.nps_answers} answers, CSAT {pct(o.csat)} from {o.csat_answers} answers"
        )
    for title, rows in (
        (f"per {r.period}", r.by_period),
        ("per product", r.by_product),
        ("per agent", r.by_agent),
        ("per trigger", r.by_trigger),
        ("per segment (lifecycle stage)", r.by_segment),
    ):
        emit(console, title, SCORE_COLUMNS, _scores(rows), fmt)
    emit(
        console,
        "response rate",
        ("kind", "sent", "answered", "rate"),
        [(x.kind, x.sent, x.answered, pct(x.rate)) for x in r.response_rates],
        fmt,
    )
    if chart is not None:
        from infra.charts import nps_chart

        err_console.print(f"chart: {nps_chart(r, chart)}")


@service_app.command("report")
def service(
    as_of: str | None = AS_OF,
    fmt: Format = FORMAT,
    chart: Path | None = CHART,
    breaches: int = typer.Option(20, help="How many breaches to list (newest first)."),
    recorded_as_of: str | None = RECORDED_AS_OF,
) -> None:
    """Backlog per agent, SLA compliance per severity, time to first response and to
    resolution, tickets per category and kind, the SLA breaches."""
    at = parse_as_of(as_of)
    with views_at(recorded_as_of, ["service"], timers=True) as (db, now):
        r = service_report(db, now=now, as_of=at)
    if fmt is Format.table:
        console.print(
            f"[bold]service[/bold] as of {r.as_of:%Y-%m-%d %H:%M}: {r.open_tickets} open "
            f"tickets, {len(r.breaches)} SLA breaches"
        )
    emit(
        console,
        "backlog per agent",
        ("agent", "open", "by severity"),
        [
            (b.agent, b.total, ", ".join(f"{k} {v}" for k, v in sorted(b.by_severity.items())))
            for b in r.backlog
        ],
        fmt,
    )
    emit(
        console,
        "SLA compliance",
        ("severity", "sla", "met", "breached", "pending", "met %"),
        [(c.severity, c.sla, c.met, c.breached, c.pending, pct(c.share_met)) for c in r.compliance],
        fmt,
    )
    emit(
        console,
        "hours to first response and to resolution",
        ("severity", "responses", "mean", "median", "resolutions", "mean", "median"),
        [
            (
                d.severity,
                d.first_responses,
                d.first_response_mean_hours,
                d.first_response_median_hours,
                d.resolutions,
                d.resolution_mean_hours,
                d.resolution_median_hours,
            )
            for d in r.durations
        ],
        fmt,
    )
    emit(
        console,
        "tickets opened",
        ("kind or category", "tickets"),
        [(f"kind: {k}", n) for k, n in sorted(r.opened_by_kind.items())]
        + [(k, n) for k, n in sorted(r.opened_by_category.items(), key=lambda x: -x[1])],
        fmt,
    )
    latest = sorted(r.breaches, key=lambda b: b.since, reverse=True)[:breaches]
    emit(
        console,
        f"SLA breaches (newest {len(latest)} of {len(r.breaches)})",
        ("ticket", "sla", "severity", "agent", "due", "met late at"),
        [(b.ticket_id, b.sla, b.severity, b.agent, b.since, b.until) for b in latest],
        fmt,
    )
    if chart is not None:
        from infra.charts import sla_chart

        err_console.print(f"chart: {sla_chart(r, chart)}")


@equipment_app.command("report")
def equipment(
    as_of: str | None = AS_OF,
    warranty_days: int = typer.Option(60, help="Warranties ending within this many days."),
    top: int = typer.Option(10, help="How many of the most worn to list."),
    fmt: Format = FORMAT,
    chart: Path | None = CHART,
    recorded_as_of: str | None = RECORDED_AS_OF,
) -> None:
    """Wear against expected life, next maintenance due (overdue first), failures and mean
    time between failures per model, warranties ending soon."""
    at = parse_as_of(as_of)
    with views_at(recorded_as_of, ["equipment"], timers=True) as (db, now):
        r = equipment_report(db, now=now, as_of=at, warranty_days=warranty_days, top=top)
    if fmt is Format.table:
        status = ", ".join(f"{k} {v}" for k, v in sorted(r.by_status.items()))
        console.print(
            f"[bold]equipment[/bold] as of {r.as_of:%Y-%m-%d %H:%M}: {r.total} units ({status})"
        )
    emit(
        console,
        "most worn",
        ("equipment", "customer", "model", "usage", "wear"),
        [(w.equipment_id, w.customer_id, w.model, w.usage, pct(w.wear)) for w in r.most_worn],
        fmt,
    )
    due = [m for m in r.maintenance if m.overdue] or r.maintenance[:top]
    emit(
        console,
        f"maintenance ({sum(m.overdue for m in r.maintenance)} overdue)",
        ("equipment", "customer", "model", "due", "overdue", "last maintenance"),
        [
            (m.equipment_id, m.customer_id, m.model, m.due_at, m.overdue, m.last_maintenance_at)
            for m in due
        ],
        fmt,
    )
    emit(
        console,
        "failures per model",
        ("model", "units", "failures", "days in service", "MTBF days"),
        [
            (m.model, m.units, m.failures, round(m.operating_days), m.mtbf_days)
            for m in r.failures_by_model
        ],
        fmt,
    )
    emit(
        console,
        f"warranties ending within {warranty_days} days",
        ("equipment", "customer", "model", "warranty end"),
        [(w.equipment_id, w.customer_id, w.model, w.warranty_end) for w in r.warranties_ending],
        fmt,
    )
    if chart is not None:
        from infra.charts import failures_chart

        err_console.print(f"chart: {failures_chart(r, chart)}")


def recommend_offers(
    customer: UUID = typer.Argument(..., help="The customer's id."),
    top: int = typer.Option(5, "--top", help="How many offers."),
    present: bool = typer.Option(
        False, "--present", help="Record each offer as presented (offer.present)."
    ),
    actor: str = typer.Option("employee:cli", "--actor", help="Who presents them."),
    fmt: Format = FORMAT,
) -> None:
    """The next best offers for one customer, with their reasons and the consented channel
    to present them through; never what they own, returned or declined."""
    with open_projector() as (engine, runner):
        runner.catch_up()
        offers = recommend(runner.db, customer, now=engine.clock.now(), top=top)
        presented = 0
        if present:
            ctx = CommandContext(actor=actor, channel="manual")
            for o in offers:
                with refusals_as_replies():
                    engine.bus.execute_json(
                        "offer.present",
                        {
                            "customer_id": str(customer),
                            "sku": o.sku,
                            "channel": o.channel,
                            "score": o.score,
                            "reasons": [{"kind": r.kind, "detail": r.detail} for r in o.reasons],
                        },
                        ctx,
                    )
                presented += 1
    if not offers and fmt is Format.table:
        console.print(
            "no offers: the customer is unknown, forgotten, merged away, has no consent to "
            "marketing, or owns everything on sale"
        )
        return
    emit(
        console,
        f"next best offers for {customer}",
        ("rank", "sku", "score", "channel", "reasons"),
        [
            (i, o.sku, round(o.score, 3), o.channel, "; ".join(r.detail for r in o.reasons))
            for i, o in enumerate(offers, start=1)
        ],
        fmt,
    )
    if present and fmt is Format.table:
        console.print(f"{presented} offers recorded as presented (offer.presented)")


@reminders_app.command("list")
def reminders(
    employee: str | None = typer.Option(None, "--employee", help="e.g. employee:anna"),
    due_before: str | None = typer.Option(
        None, "--due-before", help="Due at or before this time (default: now)."
    ),
    within: int | None = typer.Option(
        None,
        "--within-days",
        help="Only those that fell due in the last N days before --due-before (or now).",
    ),
    fmt: Format = FORMAT,
) -> None:
    """Open reminders due now (or before --due-before), earliest first: maintenance due, SLA
    at risk, follow-ups after meetings and quotes, detractor call-backs, dormant customers,
    overdue invoices, anniversaries; each routed to one employee."""
    before = parse_as_of(due_before, "--due-before")
    with open_projector() as (engine, runner):
        runner.catch_up()
        now = engine.clock.now()
        edge = before or now
        rows = reminders_list(
            runner.db,
            now=now,
            employee=employee,
            due_before=before,
            due_after=None if within is None else edge - timedelta(days=within),
        )
    if fmt is Format.table:
        who = employee or "everyone"
        console.print(f"[bold]{len(rows)}[/bold] reminders due by {edge:%Y-%m-%d %H:%M} for {who}")
    emit(
        console,
        "reminders",
        ("due", "rule", "employee", "customer", "reason", "key"),
        [(r.effective_at, r.rule, r.employee, r.customer_id, r.reason, r.key) for r in rows],
        fmt,
    )
