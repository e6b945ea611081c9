"""`crm projections status|run|rebuild`, `crm customer show`."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from uuid import UUID

import structlog
import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from infra.cli.output import Format, emit
from infra.cli.render import CustomerNotInViews, show_profile
from infra.engine import Engine, open_engine
from infra.projector import open_runner, views
from projections.errors import ProjectionError
from projections.freshness import wait_until_applied
from projections.runner import PAGE, Runner

console = Console()
err_console = Console(stderr=True)
log = structlog.get_logger("crm.projector")

projections_app = typer.Typer(no_args_is_help=True, help="Read models: status, catch-up, rebuild.")
customer_app = typer.Typer(no_args_is_help=True, help="Look a customer up in the views.")


@contextmanager
def open_projector(page: int = PAGE) -> Iterator[tuple[Engine, Runner]]:
    with open_engine() as engine:
        runner = open_runner(engine, page=page)
        try:
            yield engine, runner
        except ProjectionError as e:
            err_console.print(f"[red]{type(e).__name__}[/red] ({e.code}): {e}")
            raise typer.Exit(2) from None
        finally:
            runner.db.close()


def _progress(label: str) -> Progress:
    return Progress(
        TextColumn(label),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("positions"),
        TimeRemainingColumn(),
        console=err_console,
    )


def _show_status(runner: Runner, fmt: Format) -> None:
    rows = [
        (
            s.name,
            s.state,
            s.position,
            s.head,
            s.lag,
            s.handled,
            s.dead_letters,
            s.policy,
            s.generation,
            s.error or "",
        )
        for s in runner.status()
    ]
    emit(
        console,
        "projections",
        (
            "name",
            "state",
            "position",
            "head",
            "lag",
            "handled",
            "dead_letters",
            "policy",
            "generation",
            "error",
        ),
        rows,
        fmt,
    )


@projections_app.command("status")
def status(
    fmt: Format = typer.Option(Format.table, "--format"),
    dead_letters: bool = typer.Option(False, "--dead-letters", help="List the dead letters too."),
) -> None:
    """Position, lag (head minus position), state and dead letters of every projection."""
    with open_projector() as (_, runner):
        _show_status(runner, fmt)
        if dead_letters:
            emit(
                console,
                "dead letters",
                ("projection", "position", "event_type", "error", "at"),
                [
                    (d.projection, d.position, d.event_type, d.error, d.at)
                    for d in runner.dead_letters()
                ],
                fmt,
            )


@projections_app.command("run")
def run(
    names: list[str] = typer.Argument(None, help="Projections to run (default: all)."),
    fmt: Format = typer.Option(Format.table, "--format"),
    page: int = typer.Option(PAGE, min=1, help="Events read and applied per transaction."),
) -> None:
    """Catch up now (a stopped projection named here is resumed first), fire due timers."""
    with open_projector(page) as (_, runner):
        for name in names or []:
            runner.resume(name)
        with _progress("catch-up") as progress:
            task = progress.add_task("catch-up", total=None)

            def tick(position: int, head: int) -> None:
                progress.update(task, completed=position, total=head)

            applied = runner.catch_up(names or None, progress=tick)
        fired = runner.fire_timers()
        err_console.print(f"applied {applied:,} events, fired {fired:,} timers")
        _show_status(runner, fmt)


@projections_app.command("rebuild")
def rebuild(name: str = typer.Argument(..., help="The projection to rebuild.")) -> None:
    """Build a new generation of NAME's tables from the whole log, then swap it in at once."""
    with open_projector() as (_, runner), _progress(f"rebuild {name}") as progress:
        task = progress.add_task("rebuild", total=None)
        applied = runner.rebuild(
            name,
            progress=lambda position, head: progress.update(task, completed=position, total=head),
        )
        err_console.print(f"rebuilt {name}: {applied:,} events applied")


@customer_app.command("show")
def show(
    customer_id: UUID = typer.Argument(..., help="The customer's id."),
    limit: int = typer.Option(20, help="How many timeline entries."),
    fmt: Format = typer.Option(Format.table, "--format"),
    catch_up: bool = typer.Option(True, help="Catch the views up first."),
    min_position: int | None = typer.Option(
        None, help="Wait until the views applied this log position (a command's reply)."
    ),
) -> None:
    """A customer's profile, counts per channel and timeline (merged customers included)."""
    with open_projector() as (_, runner):
        if catch_up:
            runner.catch_up()
        try:
            wait_until_applied(runner.db, ["customer_profile", "timeline"], min_position)
            show_profile(console, views(runner), customer_id, limit=limit, fmt=fmt)
        except CustomerNotInViews as e:
            err_console.print(f"[red]{e}[/red]")
            raise typer.Exit(1) from None
