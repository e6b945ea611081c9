"""`crm audit stream ID`, `crm audit customer ID`: the log's own account of every change.

Reads the log directly (never a view): what an auditor sees is what was recorded. Personal
data is never printed (replay/audit.py names personal fields without their values).
"""

from __future__ import annotations

import csv
import io
import sys
from uuid import UUID

import msgspec
import typer
from rich.console import Console
from rich.table import Table

from infra.cli.output import Format
from infra.engine import open_engine
from replay.audit import AuditEntry, AuditTrail, audit_customer, audit_stream

console = Console()
err_console = Console(stderr=True)

audit_app = typer.Typer(
    no_args_is_help=True,
    help="Every change with actor, channel, business and record time, command and its chain.",
)

FORMAT = typer.Option(Format.table, "--format")
AFTER = typer.Option(0, "--after", min=0, help="Only changes after this log position (paging).")
LIMIT = typer.Option(1000, "--limit", min=1, help="At most this many changes.")

COLUMNS = (
    "position",
    "stream_type",
    "stream_id",
    "version",
    "event_type",
    "customer_id",
    "actor",
    "channel",
    "occurred_at",
    "recorded_at",
    "late",
    "command",
    "command_id",
    "correlation_id",
    "causation_id",
    "caused_by",
    "depth",
    "changes",
    "forgotten",
)


@audit_app.command("stream")
def stream(
    stream_id: UUID = typer.Argument(..., help="The stream's id."),
    fmt: Format = FORMAT,
    after: int = AFTER,
    limit: int = LIMIT,
) -> None:
    """Every change of one stream (a customer, deal, order, ticket, ...), in log order."""
    with open_engine() as engine:
        trail = audit_stream(engine.store, stream_id, after=after, limit=limit)
    show(trail, fmt)


@audit_app.command("customer")
def customer(
    customer_id: UUID = typer.Argument(..., help="The customer's id."),
    fmt: Format = FORMAT,
    after: int = AFTER,
    limit: int = LIMIT,
) -> None:
    """Every change of every stream that touches the customer (and the customers merged into
    it), in log order, grouped into correlation chains."""
    with open_engine() as engine:
        trail = audit_customer(engine.store, customer_id, after=after, limit=limit)
    show(trail, fmt)


def show(trail: AuditTrail, fmt: Format) -> None:
    """JSON: the whole trail as one document. CSV: one row per change. Table: the changes,
    indented by causation depth, then the correlation chains."""
    if fmt is Format.json:
        sys.stdout.write(msgspec.json.encode(trail).decode() + "\n")
        return
    if fmt is Format.csv:
        buf = io.StringIO()
        writer = csv.writer(buf)
        writer.writerow(COLUMNS)
        writer.writerows(_row(x) for x in trail.entries)
        sys.stdout.write(buf.getvalue())
        for note in trail.notes:
            err_console.print(note)
        return
    console.print(f"[bold]audit of {trail.subject}[/bold]: {len(trail.entries)} changes")
    for note in trail.notes:
        console.print(f"  {note}")
    table = Table(title="changes, in log order", show_lines=False)
    for c in (
        "pos",
        "stream",
        "v",
        "event",
        "actor",
        "channel",
        "business time",
        "record time",
        "command",
        "correlation",
        "caused by",
        "changes",
    ):
        table.add_column(c, overflow="fold")
    for x in trail.entries:
        table.add_row(
            str(x.position),
            f"{x.stream_type} {str(x.stream_id)[:8]}",
            str(x.version),
            "  " * x.depth + ("\u2514 " if x.depth else "") + x.event_type,
            x.actor,
            x.channel,
            f"{x.occurred_at:%Y-%m-%d %H:%M:%S}" + (" (late)" if x.late else ""),
            "" if x.recorded_at is None else f"{x.recorded_at:%Y-%m-%d %H:%M:%S.%f}"[:-3],
            f"{x.command or '?'} ({x.command_id})" if x.command_id else "",
            x.correlation_id or "",
            x.caused_by or "",
            ", ".join(x.changes),
        )
    console.print(table)
    chains = Table(title="correlation chains (command <- what caused it)")
    for c in ("correlation", "positions", "events", "commands"):
        chains.add_column(c, overflow="fold")
    for ch in trail.chains:
        chains.add_row(
            ch.correlation_id or "",
            f"{ch.first_position}..{ch.last_position}",
            str(ch.events),
            "\n".join(ch.commands),
        )
    console.print(chains)
    if trail.next_after is not None:
        console.print(f"more: --after {trail.next_after}")


def _row(x: AuditEntry) -> tuple[object, ...]:
    return (
        x.position,
        x.stream_type,
        x.stream_id,
        x.version,
        x.event_type,
        x.customer_id or "",
        x.actor,
        x.channel,
        x.occurred_at.isoformat(),
        "" if x.recorded_at is None else x.recorded_at.isoformat(),
        x.late,
        x.command or "",
        x.command_id or "",
        x.correlation_id or "",
        x.causation_id or "",
        x.caused_by or "",
        x.depth,
        "; ".join(x.changes),
        x.forgotten,
    )
