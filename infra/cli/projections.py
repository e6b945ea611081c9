"""`crm projections status|run|rebuild`, `crm customer show`."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from datetime import datetime
from uuid import UUID

import structlog
import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from infra.cli.output import Format, emit
from infra.cli.render import CustomerNotInViews, show_profile
from infra.engine import Engine, open_engine
from infra.projector import open_runner, views
from infra.replay_views import BadRecordedAsOf, parse_recorded, recorded_point, scratch_views
from projections.errors import ProjectionError
from projections.freshness import wait_until_applied
from projections.ports import ProjectionDB
from projections.queries import Views
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


RECORDED_AS_OF = typer.Option(
    None,
    "--recorded-as-of",
    help="What the system knew at log position P or record time T (e.g. 120000 or "
    "2026-03-31T18:00:00Z): the log up to there is replayed into scratch views.",
)


@contextmanager
def views_at(
    recorded_as_of: str | None,
    projections: Sequence[str],
    *,
    occurred_by: datetime | None = None,
    timers: bool = False,
) -> Iterator[tuple[ProjectionDB, datetime]]:
    """The database a report or query reads, and the time it is asked at.

    Without `recorded_as_of` nor `occurred_by`: the live views, caught up (and their due
    timers fired if `timers`), at the engine clock's now. Otherwise scratch views of
    `projections` replayed from the log up to the recorded point (default: the head), of only
    the events that occurred by `occurred_by` when given; asked at the recorded time (or, for
    a business as-of alone, at `occurred_by`)."""
    if recorded_as_of is None and occurred_by is None:
        with open_projector() as (engine, runner):
            runner.catch_up()
            if timers:
                runner.fire_timers()
            yield runner.db, engine.clock.now()
        return
    with open_engine() as engine, ExitStack() as stack:
        if recorded_as_of is None:
            position, at = engine.store.head(), engine.clock.now()
        else:
            try:
                position, at = recorded_point(engine.store, parse_recorded(recorded_as_of))
            except BadRecordedAsOf as e:
                raise typer.BadParameter(str(e), param_hint="--recorded-as-of") from None
        now = occurred_by if occurred_by is not None and recorded_as_of is None else at
        err_console.print(
            f"replaying the log up to position {position:,} (recorded by {at:%Y-%m-%d %H:%M:%S}"
            + ("" if occurred_by is None else f"; occurred by {occurred_by:%Y-%m-%d %H:%M:%S}")
            + f") into scratch views: {', '.join(projections)}"
        )
        with _progress("replay") as progress:
            task = progress.add_task("replay", total=position or None)

            def tick(done: int, head: int) -> None:
                progress.update(task, completed=done, total=head)

            try:
                db = stack.enter_context(
                    scratch_views(
                        engine.store,
                        position=position,
                        now=now,
                        projections=projections,
                        occurred_by=occurred_by,
                        progress=tick,
                    )
                )
            except ProjectionError as e:
                err_console.print(f"[red]{type(e).__name__}[/red] ({e.code}): {e}")
                raise typer.Exit(2) from None
        yield db, now


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
    as_of: str | None = typer.Option(
        None,
        "--as-of",
        help="Business time: only what occurred by then (e.g. 2026-03-31), replayed into "
        "scratch views.",
    ),
    recorded_as_of: str | None = RECORDED_AS_OF,
) -> None:
    """A customer's profile, counts per channel and timeline (merged customers included)."""
    if as_of is not None or recorded_as_of is not None:
        from infra.cli.reports import parse_as_of

        occurred_by = parse_as_of(as_of)
        with views_at(
            recorded_as_of, ["customer_profile", "timeline"], occurred_by=occurred_by
        ) as (
            db,
            _,
        ):
            try:
                show_profile(console, Views(db), customer_id, limit=limit, fmt=fmt)
            except CustomerNotInViews as e:
                err_console.print(f"[red]{e}[/red]")
                raise typer.Exit(1) from None
        return
    with open_projector() as (_, runner):
        if catch_up:
            runner.catch_up()
        try:
            wait_until_applied(runner.db, ["customer_profile", "timeline"], min_position)
            show_profile(console, views(runner), customer_id, limit=limit, fmt=fmt)
        except CustomerNotInViews as e:
            err_console.print(f"[red]{e}[/red]")
            raise typer.Exit(1) from None
