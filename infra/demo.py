"""`crm demo`: a realistic history, ingested and projected, in its own store.

It builds `demo-out/crm-demo.db` from empty (never a store it did not create), generates a
seeded two-year history from the documented latent model (`infra/history/`,
`docs/demo-model.md`) ending now, imports it through the bulk path, forgets one customer, builds
every projection with progress bars, and shows one customer's profile, counts per channel and
timeline, with how to explore the store further.
"""

from __future__ import annotations

import multiprocessing
import os
import random
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from domain.campaigns.events import CampaignLaunched
from domain.campaigns.state import campaign_id_of
from domain.reminders.rules import UNASSIGNED
from handlers.decision import CommandContext
from handlers.importer import Importer, ImportReport
from infra.cli.render import show_profile
from infra.engine import Engine, open_engine
from infra.history import HistoryConfig, history, population
from infra.projector import open_runner, views
from infra.sealer import seal_and_anchor
from projections.audiences import explain, members
from projections.campaigns import campaign_report
from projections.customer_profile import CHANNELS
from projections.demand import demand_report
from projections.equipment_view import equipment_report
from projections.offers_view import recommend
from projections.orders_view import orders_report
from projections.pipeline_view import pipeline_report
from projections.reminders import reminders_list
from projections.retention import retention_report
from projections.runner import Runner
from projections.satisfaction import satisfaction_report
from projections.service_view import service_report

DEMO_DIR = Path("demo-out")
DEMO_DB = DEMO_DIR / "crm-demo.db"
MARKER = DEMO_DIR / ".created-by-crm-demo"


class DemoStoreNotOurs(Exception):
    """demo-out/crm-demo.db exists but this demo did not create it: we never wipe it."""


@dataclass(frozen=True)
class DemoResult:
    customers: int
    lines: int
    events: int
    seconds: float
    shown: uuid.UUID
    forgotten: uuid.UUID


def prepare_store_path(directory: Path = DEMO_DIR) -> Path:
    db = directory / DEMO_DB.name
    marker = directory / MARKER.name
    if db.exists() and not marker.exists():
        raise DemoStoreNotOurs(f"{db} exists and was not created by `crm demo`; move it away first")
    for suffix in ("", "-wal", "-shm"):
        Path(f"{db}{suffix}").unlink(missing_ok=True)
    directory.mkdir(parents=True, exist_ok=True)
    marker.write_text("This folder is rebuilt by `crm demo` on every run.\n")
    return db


def run_demo(
    console: Console, customers: int = 2000, seed: int = 7, years: float = 2.0
) -> DemoResult:
    started = time.perf_counter()
    db = prepare_store_path()
    config = HistoryConfig(now=datetime.now(UTC), customers=customers, years=years, seed=seed)
    with console.status("generating the history (latent model, seeded) ..."):
        lines = list(history(config))
        people = population(config)
    console.print(
        f"history: {len(lines):,} commands over {years:g} years for {customers:,} customers "
        f"(seed {seed}), ending now"
    )
    # the demo's store is rebuilt on every run: its commits need not wait for the disk
    url = f"sqlite:///{db}?synchronous=normal"
    with open_engine(url, env={}) as engine:
        with open_runner(engine):
            pass  # the views' tables and checkpoints, before the follower starts
        with following(url):  # the projector follows the import in a process of its own
            report = _import(console, engine, lines)
            forgotten = next(
                c.customer_id for c in people if c.kind == "person" and c.duplicate is None
            )
            engine.bus.execute_json(
                "customer.forget",
                {"customer_id": str(forgotten)},
                CommandContext(actor="employee:dpo", channel="manual"),
            )
            # sealed here, while the follower still projects on the other core
            sealing = time.perf_counter()
            sealed = seal_and_anchor(engine.store)
            seal_seconds = time.perf_counter() - sealing
        with open_runner(engine) as runner:
            _project(console, runner)
            shown = _interesting_customer(runner)
            show_profile(console, views(runner), shown, limit=10)
            show_reports(console, runner, config.now, DEMO_DIR)
            show_service(console, runner, config.now, DEMO_DIR, shown)
            show_campaign(console, engine, runner, now=config.now, seed=seed, out=DEMO_DIR)
        show_forgotten(console, engine, forgotten)
        sealing = time.perf_counter()
        sealed += seal_and_anchor(engine.store)  # the campaign's events, appended since
        seal_seconds += time.perf_counter() - sealing
        anchored = (
            "anchored in JetStream CRM_SEALS"
            if os.environ.get("CRM_NATS_URL")
            else ("not anchored: set CRM_NATS_URL to anchor the head in JetStream")
        )
        console.print(
            f"Sealed the log: {sealed:,} events in a hash chain ({seal_seconds:.1f} s; "
            f"{anchored}); `crm verify` checks it, and UPDATE or DELETE on the log is refused."
        )
        return DemoResult(
            customers,
            report.lines,
            engine.store.head(),
            time.perf_counter() - started,
            shown,
            forgotten,
        )


@contextmanager
def following(url: str) -> Iterator[None]:
    """A projector process following the log (as `crm serve projector` does) while the
    block runs: the import and the views' catch-up use both cores. On leaving, the follower
    finishes its page and stops; whatever it left is caught up by the caller."""
    ctx = multiprocessing.get_context("spawn")  # no inherited connections or threads
    stop = ctx.Event()
    follower = ctx.Process(target=_follow, args=(url, stop), name="crm-demo-projector")
    follower.start()
    try:
        yield
    finally:
        stop.set()
        follower.join(timeout=120)
        if follower.is_alive():  # never leave it behind
            follower.terminate()
            follower.join()


def _follow(url: str, stop: Any) -> None:
    with open_engine(url, env={}) as engine, open_runner(engine) as runner:
        runner.follow(stop, poll=0.2)


def _project(console: Console, runner: Runner) -> None:
    with Progress(
        TextColumn("projections (catch-up)"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[rate]}"),
        TimeRemainingColumn(),
        console=console,
    ) as progress:
        task = progress.add_task("catch-up", total=runner.source.head(), rate="")
        t0 = time.perf_counter()

        def tick(position: int, head: int) -> None:
            rate = position / max(time.perf_counter() - t0, 1e-9)
            progress.update(task, completed=position, total=head, rate=f"{rate:,.0f} events/s")

        runner.catch_up(progress=tick)
    for s in runner.status():
        console.print(
            f"  {s.name}: position {s.position:,} of {s.head:,}, {s.handled:,} events applied, "
            f"{s.dead_letters} dead letters"
        )


def show_reports(console: Console, runner: Runner, now: datetime, out: Path) -> None:
    """The commerce reports in brief, and their charts written into `out`."""
    from infra.charts import cohort_chart, demand_chart, pipeline_chart, spend_chart

    orders = orders_report(runner.db, now=now, top=1_000_000)
    if orders.totals:
        t = orders.totals[0]
        mix = ", ".join(f"{p.method} {p.share:.0%}" for p in orders.payment_mix)
        worst = ", ".join(f"{r.sku} {r.rate:.0%}" for r in orders.returns[:3])
        console.print(
            f"\n[bold]orders[/bold]: {t.orders:,} orders by {t.customers:,} customers, net "
            f"{t.net:,} {t.currency} after {t.refunds:,} refunded, average {t.average_order_value} "
            f"{t.currency}; payment mix {mix}; {len(orders.overdue)} invoices overdue; most "
            f"returned: {worst}"
        )
        spend_chart(orders, [float(c.net) for c in orders.top_customers], out / "orders-spend.png")
    pipeline = pipeline_report(runner.db, now=now)
    if pipeline.conversion:
        funnel = " -> ".join(
            f"{c.from_stage} {c.reached}" + (f" ({c.rate:.0%})" if c.rate is not None else "")
            for c in pipeline.conversion
        )
        console.print(
            f"[bold]pipeline[/bold] {pipeline.pipeline}: {pipeline.open_deals} open deals worth "
            f"{pipeline.open_amount:,} {pipeline.currency}, weighted forecast "
            f"{pipeline.weighted_forecast:,}; funnel {funnel} -> won"
        )
        pipeline_chart(pipeline, out / "pipeline-funnel.png")
    demand = demand_report(runner.db, period="week", horizon=8, segments=False)
    f, bt = demand.forecast, demand.forecast.backtest
    if f.starts:
        ahead = ", ".join(
            f"{s:%m-%d} {v:,.0f}" for s, v in zip(f.starts[:4], f.values, strict=False)
        )
        check = (
            f"; backtest MAPE {bt.mape:.1f}% vs seasonal-naive {bt.baseline_mape:.1f}%"
            if bt is not None and bt.mape is not None and bt.baseline_mape is not None
            else ""
        )
        console.print(
            f"[bold]demand[/bold]: units per week forecast ({f.model}) {ahead}, ...{check}"
        )
        demand_chart(demand, out / "demand-forecast.png")
    retention = retention_report(runner.db, now=now)
    r = retention.repeat
    console.print(
        f"[bold]retention[/bold]: repeat buyers {r.repeat_buyers:,}/{r.buyers:,} ({r.rate:.0%}), "
        f"{len(retention.at_risk):,} at risk, {len(retention.churned):,} churned, "
        f"{retention.won_back_count:,} won back; lifetime value per source: "
        + ", ".join(f"{g.key} {g.average:,.0f} {g.currency}" for g in retention.value_by_source[:4])
    )
    cohort_chart(retention, out / "retention-cohorts.png")
    console.print(f"charts: {out}/*.png")


def show_service(
    console: Console, runner: Runner, now: datetime, out: Path, customer: uuid.UUID
) -> None:
    """Satisfaction, service and equipment in brief with their charts, the reminders due
    for the busiest employee, and the next best offers for one customer."""
    from infra.charts import failures_chart, nps_chart, sla_chart

    sat = satisfaction_report(runner.db, now=now)
    o = sat.overall
    if o.nps_answers or o.csat_answers:
        nps = "n/a" if o.nps is None else f"{o.nps:+.0f}"
        csat = "n/a" if o.csat is None else f"{o.csat:.0%}"
        lowest = ", ".join(
            f"{s.key} {s.nps:+.0f}"
            for s in sorted(
                (s for s in sat.by_product if s.nps is not None and s.nps_answers >= 10),
                key=lambda s: s.nps or 0,
            )[:3]
        )
        console.print(
            f"\n[bold]satisfaction[/bold]: NPS {nps} from {o.nps_answers:,} answers, CSAT "
            f"{csat} from {o.csat_answers:,}; lowest NPS per product: {lowest or 'n/a'}"
        )
        nps_chart(sat, out / "satisfaction-nps.png")
    svc = service_report(runner.db, now=now)
    if svc.compliance:
        overall = {c.sla: c.share_met for c in svc.compliance if c.severity == "all"}
        console.print(
            f"[bold]service[/bold]: {svc.open_tickets:,} open tickets, SLA met: first response "
            f"{_share(overall.get('first_response'))}, resolution "
            f"{_share(overall.get('resolution'))}; {len(svc.breaches):,} breaches; busiest "
            "agents: " + ", ".join(f"{b.agent} {b.total}" for b in svc.backlog[:3])
        )
        sla_chart(svc, out / "service-sla.png")
    eq = equipment_report(runner.db, now=now)
    if eq.total:
        worst = sorted(
            (m for m in eq.failures_by_model if m.mtbf_days is not None),
            key=lambda m: m.mtbf_days or 0,
        )[:3]
        console.print(
            f"[bold]equipment[/bold]: {eq.total:,} units, "
            f"{sum(m.overdue for m in eq.maintenance):,} maintenances overdue, "
            f"{len(eq.warranties_ending):,} warranties ending within 60 days; shortest MTBF: "
            + ", ".join(f"{m.model} {m.mtbf_days:,.0f} days" for m in worst)
        )
        failures_chart(eq, out / "equipment-failures.png")
    due = reminders_list(runner.db, now=now, due_after=now - timedelta(days=14))
    if due:
        named = Counter(r.employee for r in due if r.employee != UNASSIGNED)
        employee, n = (named or Counter(r.employee for r in due)).most_common(1)[0]
        mine = [r for r in due if r.employee == employee]
        console.print(
            f"[bold]reminders[/bold]: {len(due):,} fell due in the last 14 days; {employee} has "
            f"{n}, e.g. "
            + "; ".join(f"{r.effective_at:%m-%d} {r.rule}: {r.reason}" for r in mine[:3])
            + f"\n  (crm reminders list --employee {employee} --within-days 14)"
        )
    offers = recommend(runner.db, customer, now=now, top=3)
    if offers:
        console.print(
            f"[bold]next best offers[/bold] for {str(customer)[:8]}: "
            + "; ".join(f"{x.sku} via {x.channel} ({x.reasons[0].detail})" for x in offers)
        )


# The seeds' example and two more audiences; the campaign offers heavy callers a bigger tariff.
# The campaign goes to the wider circle of frequent callers (the heavy callers are a few dozen).
AUDIENCES = {
    "heavy-callers": "sum(call.duration_min, last 4 months) > 300",
    "frequent-callers": "sum(call.duration_min, last 4 months) > 100",
    "young-spenders": "age between 25 and 40 and spend(last 12 months) > 150",
}
TARGET = "frequent-callers"
CAMPAIGN = "tariff-plus-for-frequent-callers"
SENT_AGO = timedelta(days=21)
# How the demo's customers answer the call (drawn with the demo's seed): P(delivered),
# P(replied | delivered), P(takes the tariff | sent), and the same customers' P(ordering the
# tariff anyway) in the holdout, so the report's uplift has something true to find.
RESPONSES = {"delivered": 0.92, "replied": 0.35}
CONVERT_SENT, CONVERT_HOLDOUT = 0.18, 0.05


def show_campaign(
    console: Console, engine: Engine, runner: Runner, *, now: datetime, seed: int, out: Path
) -> None:
    """Define the audiences, launch a campaign to the frequent callers as they were three
    weeks ago (held-out share 20%), record how they answered, and report it with its chart."""
    from infra.charts import campaign_chart

    ctx = CommandContext(actor="employee:marketing", channel="manual")
    for name, rule in AUDIENCES.items():
        engine.bus.execute_json("audience.define", {"name": name, "rule": rule}, ctx)
    runner.catch_up()
    sizes = {name: len(members(runner.db, name, now=now)) for name in AUDIENCES}
    console.print(
        "\n[bold]audiences[/bold] (live as events arrive and as time passes): "
        + ", ".join(f"{n} {k:,}" for n, k in sizes.items())
        + f"\n  heavy-callers = {AUDIENCES['heavy-callers']}"
    )
    heavy = members(runner.db, "heavy-callers", now=now)
    if heavy:
        why = explain(runner.db, "heavy-callers", heavy[0].customer_id, now=now)
        total = next(iter(why.values.values()), None)
        total = round(total, 1) if isinstance(total, float) else total
        console.print(
            f"  why {str(why.customer_id)[:8]} is in: {total} minutes of calls in the last 4 "
            f"months, from {len(why.events)} calls (positions {why.events[0].position:,} .. "
            f"{why.events[-1].position:,}); it can next change at "
            f"{why.next_change:%Y-%m-%d %H:%M}"
            if why.events and why.next_change
            else f"  {str(why.customer_id)[:8]}: {why.values}"
        )
    sent_at = now - SENT_AGO
    snapshot = [m.customer_id for m in members(runner.db, TARGET, now=now, as_of=sent_at)]
    if not snapshot:
        return
    campaign = campaign_id_of(CAMPAIGN)
    engine.bus.execute_json(
        "campaign.define",
        {
            "name": CAMPAIGN,
            "audience": TARGET,
            "channel": "phone",
            "content_ref": "TARIFF-PLUS-2026",
            "holdout_share": 0.2,
            "attribution_days": 30,
            "occurred_at": (sent_at - timedelta(hours=1)).isoformat(),
        },
        ctx,
    )
    engine.bus.execute_json(
        "campaign.launch",
        {
            "campaign_id": str(campaign),
            "members": [str(c) for c in snapshot],
            "occurred_at": sent_at.isoformat(),
        },
        ctx,
    )
    launched = next(
        e.payload for e in engine.store.load(campaign) if isinstance(e.payload, CampaignLaunched)
    )
    _answer(engine, launched, campaign, sent_at, random.Random(f"{seed}/campaign"))
    runner.catch_up()
    r = campaign_report(runner.db, CAMPAIGN, now=now)
    rates = ", ".join(f"{x.kind} {x.rate:.0%}" for x in r.responses if x.customers)
    groups = {g.group: g for g in r.outcomes}
    sent, held = groups.get("sent"), groups.get("holdout")
    uplift = "n/a" if r.uplift is None else f"{r.uplift:+.1%}"
    console.print(
        f"[bold]campaign[/bold] {CAMPAIGN}: {r.members:,} {TARGET} three weeks ago, "
        f"{r.sent:,} called, {r.holdout:,} held out, excluded "
        + (", ".join(f"{k} {v}" for k, v in r.excluded.items()) or "none")
        + f"; {rates}; converted {_share(sent.rate if sent else None)} against "
        f"{_share(held.rate if held else None)} held out, uplift {uplift}"
    )
    responded = {x.kind: x.customers for x in r.responses}
    steps = [("called", r.sent)] + [(k, responded.get(k, 0)) for k in ("delivered", "replied")]
    steps.append(("took the tariff", sent.converted if sent else 0))
    groups_ = [(g.group, g.rate, g.customers) for g in r.outcomes]
    campaign_chart(f"{CAMPAIGN}: funnel", steps, groups_, out / "campaign.png")


def _answer(
    engine: Engine,
    launched: CampaignLaunched,
    campaign: uuid.UUID,
    sent_at: datetime,
    rng: random.Random,
) -> None:
    """The called customers' answers and the tariff orders of both groups, as events."""
    ctx = CommandContext(actor="service:telephony", channel="phone")
    plan = {"sku": "P-PLUS-M", "quantity": 1, "unit_price": {"amount": "34.90", "currency": "EUR"}}

    def order(customer: uuid.UUID, at: datetime) -> str:
        reply = engine.bus.execute_json(
            "order.place",
            {
                "customer_id": str(customer),
                "items": [plan],
                "payment_method": "invoice",
                "occurred_at": at.isoformat(),
            },
            ctx,
        )
        return str(reply.streams[0].id)

    for customer in launched.sent:
        at = sent_at + timedelta(hours=rng.uniform(1, 72))
        for kind in ("delivered", "replied"):
            if rng.random() >= RESPONSES[kind]:
                break
            engine.bus.execute_json(
                "campaign.record_response",
                {
                    "campaign_id": str(campaign),
                    "customer_id": str(customer),
                    "kind": kind,
                    "occurred_at": at.isoformat(),
                },
                ctx,
            )
        if rng.random() < CONVERT_SENT:
            when = at + timedelta(days=rng.uniform(0, 14))
            engine.bus.execute_json(
                "campaign.record_response",
                {
                    "campaign_id": str(campaign),
                    "customer_id": str(customer),
                    "kind": "converted",
                    "order_id": order(customer, when),
                    "occurred_at": when.isoformat(),
                },
                ctx,
            )
    for customer in launched.holdout:
        if rng.random() < CONVERT_HOLDOUT:
            order(customer, sent_at + timedelta(days=rng.uniform(0, 14)))


def _share(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.0%}"


def _interesting_customer(runner: Runner) -> uuid.UUID:
    """A survivor of a merge with many interactions, else the busiest customer."""
    q = runner.db.dialect.qualify("customer_profile")
    total = " + ".join(f"n_{c}" for c in CHANNELS)
    rows = runner.db.fetch(
        f"SELECT customer_id FROM {q} WHERE merged_into IS NULL AND NOT forgotten "
        f"ORDER BY (absorbed <> '[]') DESC, {total} DESC LIMIT 1"
    )
    found = runner.db.dialect.uuid(rows[0][0])
    assert found is not None
    return found


def _import(console: Console, engine: Engine, lines: list[bytes]) -> ImportReport:
    importer = Importer(engine.bus, engine.store, batch_size=5000, pipeline=True)
    with Progress(
        TextColumn("import (bulk path)"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[rate]}"),
        TimeRemainingColumn(),
        console=console,
    ) as progress:
        task = progress.add_task("import", total=len(lines), rate="")
        t0 = time.perf_counter()

        def tick(report: ImportReport) -> None:
            progress.update(
                task,
                completed=report.lines,
                rate=f"{report.lines / (time.perf_counter() - t0):,.0f} commands/s",
            )

        report = importer.run(
            lines, CommandContext(actor="import:demo", channel="import"), progress=tick
        )
    if report.errors:
        console.print(
            f"[yellow]{len(report.errors)} lines rejected, e.g. line {report.errors[0].line}: {report.errors[0].message}[/yellow]"
        )
    return report


def show_forgotten(console: Console, engine: Engine, customer_id: uuid.UUID) -> None:
    events = engine.store.read_customer(customer_id)
    first = events[0]
    console.print(
        f"Customer {str(customer_id)[:8]} asked to be forgotten: their data key is deleted, the log "
        f"is untouched. Their {len(events)} events still decode; personal fields now read "
        f"{first.payload.name!r} (fields forgotten: {', '.join(first.forgotten)})."  # type: ignore[attr-defined]
    )
