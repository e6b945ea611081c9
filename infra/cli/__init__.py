"""`crm`: the command line (typer + rich)."""

from __future__ import annotations

import sys

import typer
from rich.console import Console

from infra.cli import (
    ask,
    audiences,
    audit,
    campaigns,
    commands,
    forget,
    projections,
    reports,
    serve,
    service,
    verify,
)
from infra.errors import InfraError
from infra.logging import configure_logging

app = typer.Typer(
    no_args_is_help=True, add_completion=False, help="crm-engine: an event-sourced CRM."
)
console = Console()


@app.callback()
def _setup(log_level: str = typer.Option("WARNING", envvar="CRM_LOG_LEVEL")) -> None:
    configure_logging(log_level)


@app.command()
def demo(
    customers: int = typer.Option(2000, help="How many customers the history has."),
    years: float = typer.Option(2.0, help="How many years of history, ending now."),
    seed: int = typer.Option(7, help="Seed of the generated history."),
) -> None:
    """Build demo-out/crm-demo.db from empty: a realistic history, imported and projected."""
    from infra.demo import DEMO_DB, DemoStoreNotOurs, run_demo
    from projections.catalogue import all_projections

    try:
        result = run_demo(console, customers=customers, seed=seed, years=years)
    except DemoStoreNotOurs as e:
        console.print(f"[red]{e}[/red]")
        raise typer.Exit(2) from None
    console.print(
        f"\nDone in {result.seconds:.1f} s: {result.lines:,} commands imported through the bulk "
        f"path, {result.events:,} events in the log (personal data encrypted per customer), "
        f"{len(all_projections())} views built.\n"
        f"Explore it:\n  export CRM_STORE_URL=sqlite:///{DEMO_DB}\n"
        f"  crm customer show {result.shown}\n"
        f"  crm recommend {result.shown}\n"
        "  crm projections status\n"
        f"  crm audit customer {result.shown}   (every change, who, when, which command)\n"
        "  crm verify   (the sealed chain, stream versions, decoding, views against a rebuild)\n"
        "  crm service report --chart sla.png   (and orders, pipeline, satisfaction, ...)\n"
        "  crm reminders list --within-days 14\n"
        f"  crm do interaction.log_call customer_id={result.shown} direction=in duration_min=4\n"
        f"  sqlite3 {DEMO_DB} 'select name, stage, n_call, n_web, last_contact_at "
        "from customer_profile order by n_call desc limit 5'"
    )


app.add_typer(projections.projections_app, name="projections")
app.add_typer(projections.customer_app, name="customer")
app.add_typer(serve.serve_app, name="serve")
app.add_typer(audit.audit_app, name="audit")
app.command("verify")(verify.verify)
app.command("ask")(ask.ask)
app.command("forget")(forget.forget)
app.add_typer(reports.pipeline_app, name="pipeline")
app.add_typer(reports.orders_app, name="orders")
app.add_typer(reports.retention_app, name="retention")
app.add_typer(reports.demand_app, name="demand")
app.add_typer(service.satisfaction_app, name="satisfaction")
app.add_typer(service.service_app, name="service")
app.add_typer(service.equipment_app, name="equipment")
app.add_typer(service.reminders_app, name="reminders")
app.add_typer(campaigns.campaign_app, name="campaign")
app.add_typer(audiences.audience_app, name="audience")
app.command("recommend")(service.recommend_offers)
app.command()(commands.do)
app.command("import")(commands.import_file)
app.command()(commands.schema)


def main() -> None:
    try:
        app()
    except InfraError as e:
        Console(stderr=True).print(f"[red]{type(e).__name__}[/red] ({e.code}): {e}")
        sys.exit(2)


if __name__ == "__main__":
    main()
