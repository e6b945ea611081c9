"""`crm`: the command line (typer + rich)."""

from __future__ import annotations

import sys

import typer
from rich.console import Console

from infra.cli import commands, projections
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
    customers: int = typer.Option(2000, help="How many customers to register."),
    seed: int = typer.Option(7, help="Seed of the generated history."),
) -> None:
    """Build demo-out/crm-demo.db from empty and show what the engine does with it."""
    from infra.demo import DEMO_DB, DemoStoreNotOurs, run_demo

    try:
        result = run_demo(console, customers=customers, seed=seed)
    except DemoStoreNotOurs as e:
        console.print(f"[red]{e}[/red]")
        raise typer.Exit(2) from None
    console.print(
        f"\nDone in {result.seconds:.1f} s: {result.lines:,} commands imported through the bulk path, "
        f"{result.events:,} events in the log; personal data encrypted per customer.\n"
        "Built so far: the event store and codec, the customer registry and interactions from every "
        "channel. Projections, sales, service and campaigns come with the next issues.\n"
        f"Explore it: export CRM_STORE_URL=sqlite:///{DEMO_DB}, then e.g. "
        f"`crm do customer.grant_consent customer_id={result.shown} consent_channel=phone`, "
        f"or `sqlite3 {DEMO_DB} 'select notification_id, topic, customer_id, recorded_at "
        "from stored_events limit 5'`."
    )


app.add_typer(projections.projections_app, name="projections")
app.add_typer(projections.customer_app, name="customer")
app.add_typer(projections.serve_app, name="serve")
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
