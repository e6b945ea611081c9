"""`crm serve handlers|projector|relay|sealer|all`: run engine roles until SIGTERM or Ctrl-C."""

from __future__ import annotations

import asyncio
import os
import signal
import threading

import structlog
import typer
from rich.console import Console

from infra.cli.projections import open_projector
from infra.errors import InfraError
from infra.nats.roles import roles_of, serve
from projections.runner import PAGE

err_console = Console(stderr=True)
log = structlog.get_logger("crm.serve")

serve_app = typer.Typer(no_args_is_help=True, help="Run an engine role until stopped.")


def _serve(role: str) -> None:
    try:
        asyncio.run(serve(roles_of(role)))
    except InfraError as e:
        err_console.print(f"[red]{type(e).__name__}[/red] ({e.code}): {e}")
        raise typer.Exit(2) from None
    err_console.print(f"{role} stopped")


@serve_app.command("handlers")
def serve_handlers() -> None:
    """The command service `crm` on NATS: one endpoint per command on `crm.cmd.<command>`,
    queue group `crm-handlers` (run several to share the load), group commit."""
    _serve("handlers")


@serve_app.command("relay")
def serve_relay() -> None:
    """Publish the log to JetStream `CRM_EVENTS`, exactly once, resuming where it stopped."""
    _serve("relay")


@serve_app.command("sealer")
def serve_sealer() -> None:
    """Seal the log as it grows (hash chain in `log_seal`); with CRM_NATS_URL set, anchor the
    sealed head in JetStream `CRM_SEALS` so the database alone cannot rewrite history."""
    _serve("sealer")


@serve_app.command("all")
def serve_all() -> None:
    """Handlers, projector (with queries and change feed), relay and sealer in one process."""
    _serve("all")


@serve_app.command("projector")
def serve_projector(
    poll: float = typer.Option(0.2, help="Longest wait between checks (seconds)."),
    page: int = typer.Option(PAGE, min=1, help="Events read and applied per transaction."),
) -> None:
    """Follow the log until SIGTERM or Ctrl-C: every page commits with its checkpoint, so
    stopping loses nothing; the current page is finished first. With CRM_NATS_URL set it also
    answers `crm.query.<projection>` and publishes the change feed `crm.view.>`."""
    if os.environ.get("CRM_NATS_URL"):
        _serve("projector")
        return
    stop = threading.Event()

    def on_signal(signum: int, _frame: object) -> None:
        log.info("projector.stopping", signal=signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    with open_projector(page) as (_, runner):
        if upgraded := runner.upgrade():  # views of a new code version, built beside the old
            log.info("projector.upgraded", projections=upgraded)
        log.info("projector.started", projections=sorted(runner.projections))
        err_console.print("projector running (Ctrl-C or SIGTERM stops it)")
        runner.follow(stop, poll=poll)
        log.info("projector.stopped")
        err_console.print("projector stopped")
