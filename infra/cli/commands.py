"""`crm do`, `crm import`, `crm schema`: the command registry from the command line."""

from __future__ import annotations

import getpass
import json
import sys
import time
from pathlib import Path
from typing import Any

import msgspec
import typer
from rich.console import Console
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn

from domain.catalogue import EVENTS
from handlers.decision import CommandContext
from handlers.importer import Importer
from handlers.parsing import parse_command
from handlers.registry import COMMANDS
from handlers.replies import ok_reply
from infra.cli.output import Format, emit, refusals_as_replies
from infra.engine import open_engine

console = Console()
err_console = Console(stderr=True)


def default_actor() -> str:
    return f"employee:{getpass.getuser()}"


def parse_fields(pairs: list[str]) -> dict[str, Any]:
    """`field=value` pairs; a value that looks like JSON (a list, object, number) is parsed."""
    data: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise typer.BadParameter(f"{pair!r} is not field=value")
        if value[:1] in "[{":
            try:
                data[key] = json.loads(value)
                continue
            except json.JSONDecodeError as e:
                raise typer.BadParameter(f"{key}: {e}") from None
        data[key] = value
    return data


def do(
    command: str = typer.Argument(
        ..., help="Command name, e.g. customer.register (see `crm schema`)."
    ),
    fields: list[str] = typer.Argument(None, help="field=value ..."),
    actor: str = typer.Option(
        None, envvar="CRM_ACTOR", help="Who enters this (default employee:$USER)."
    ),
    channel: str = typer.Option("manual", help="How the information came in."),
    command_id: str = typer.Option(None, help="Idempotency key: a repeat appends nothing."),
) -> None:
    """Manual entry: run one command and print its reply as JSON."""
    ctx = CommandContext(actor=actor or default_actor(), channel=channel, command_id=command_id)
    with open_engine() as engine, refusals_as_replies():
        typed = parse_command(command, parse_fields(fields or []), strict=False)
        result = engine.bus.execute(typed, ctx)
    sys.stdout.write(msgspec.json.encode(ok_reply(result)).decode() + "\n")


def import_file(
    file: Path = typer.Argument(..., exists=True, dir_okay=False, help="JSON lines of commands."),
    actor: str = typer.Option("import", envvar="CRM_ACTOR", help="Actor for lines that name none."),
    batch_size: int = typer.Option(
        5000, min=1, help="Commands decided and appended per transaction."
    ),
    errors_format: Format = typer.Option(Format.table, "--format", help="How to print bad lines."),
) -> None:
    """Import commands, one JSON object per line: {"command", "data", "command_id"?, "actor"?}."""
    ctx = CommandContext(actor=actor, channel="import")
    size = file.stat().st_size
    started = time.perf_counter()
    with open_engine() as engine, file.open("rb") as fh:
        importer = Importer(engine.bus, engine.store, batch_size=batch_size, pipeline=True)
        with Progress(
            TextColumn("import"),
            BarColumn(),
            DownloadColumn(),
            TextColumn("{task.fields[rate]}"),
            TimeRemainingColumn(),
            console=err_console,
            transient=False,
        ) as progress:
            task = progress.add_task("import", total=size, rate="")

            def tick(report: Any) -> None:
                rate = report.lines / max(time.perf_counter() - started, 1e-9)
                progress.update(task, completed=fh.tell(), rate=f"{rate:,.0f} lines/s")

            report = importer.run(fh, ctx, progress=tick)
            progress.update(task, completed=size)
    seconds = time.perf_counter() - started
    err_console.print(
        f"{report.lines:,} lines in {seconds:.1f} s: {report.appended:,} commands appended "
        f"({report.events:,} events), {report.duplicates:,} already imported, {len(report.errors):,} rejected."
    )
    if report.errors:
        emit(
            err_console,
            "Rejected lines",
            ["line", "code", "field", "message"],
            [(e.line, e.code, e.field, e.message) for e in report.errors],
            errors_format,
        )
        raise typer.Exit(1)


def schema() -> None:
    """Print the JSON Schema of every command, event and reply as one JSON document."""
    from infra.schema import contract

    sys.stdout.write(json.dumps(contract(EVENTS, COMMANDS), indent=2, sort_keys=True) + "\n")
