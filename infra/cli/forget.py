"""`crm forget CUSTOMER`: the right to be forgotten, end to end in one command.

The `customer.forget` command deletes the customer's data key (the log's ciphertext of their
personal fields can no longer be opened) and their contact hashes, and appends
`customer.forgotten`; the projections are then caught up here, so the views blank the customer
before the command returns instead of whenever a projector next runs. The log itself is never
rewritten (DESIGN.md, "Personal data").
"""

from __future__ import annotations

import sys
from uuid import UUID

import msgspec
import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from domain.customers.commands import ForgetCustomer
from domain.customers.errors import CustomerIsForgotten
from handlers.decision import CommandContext
from handlers.deps import load_customer
from infra.cli.commands import default_actor
from infra.cli.output import Format, emit, refusals_as_replies
from infra.engine import open_engine
from infra.projector import open_runner, views
from projections.runner import Runner

console = Console()
err_console = Console(stderr=True)


class ForgetReport(msgspec.Struct, frozen=True, kw_only=True):
    """What `crm forget` did, as printed with `--format json`."""

    ok: bool = True
    customer_id: UUID
    reason: str
    key_deleted: bool
    positions: list[int]
    merged_into: UUID | None = None
    views_applied: int  # events applied, summed over the views (one event, many views)
    views_position: int
    profile_blanked: bool | None
    sqlite_wal_truncated: bool | None = None


def forget(
    customer_id: UUID = typer.Argument(..., help="The customer to forget."),
    reason: str = typer.Option("request", help="Why (recorded in the event, not personal)."),
    actor: str = typer.Option(
        None, envvar="CRM_ACTOR", help="Who asks for it (default employee:$USER)."
    ),
    command_id: str = typer.Option(None, help="Idempotency key: a repeat appends nothing."),
    catch_up: bool = typer.Option(True, help="Catch the views up so they blank the customer."),
    fmt: Format = typer.Option(Format.table, "--format"),
) -> None:
    """Forget a customer: delete their data key, record `customer.forgotten`, blank the views.

    Exit 1 with a JSON error reply for an unknown or already forgotten customer. A customer
    merged into another may be forgotten (their data is still theirs); the survivor's own
    data is not touched."""
    ctx = CommandContext(actor=actor or default_actor(), channel="manual", command_id=command_id)
    with open_engine() as engine:
        with refusals_as_replies():
            state = load_customer(engine.bus.deps, customer_id)
            if state.forgotten and command_id is None:
                raise CustomerIsForgotten(customer_id)
            result = engine.bus.execute(ForgetCustomer(customer_id=customer_id, reason=reason), ctx)
        key_deleted = engine.store.keyring.existing_cipher(customer_id) is None
        applied, position, blanked, wal = 0, engine.store.head(), None, None
        if catch_up:
            with open_runner(engine) as runner:
                with Progress(
                    TextColumn("catching the views up"),
                    BarColumn(),
                    MofNCompleteColumn(),
                    TimeRemainingColumn(),
                    console=err_console,
                    transient=True,
                ) as progress:
                    task = progress.add_task("catch-up", total=None)
                    applied = runner.catch_up(
                        progress=lambda pos, head: progress.update(task, completed=pos, total=head)
                    )
                runner.fire_timers()
                position = min((s.position for s in runner.status()), default=position)
                profile = views(runner).profile(customer_id)
                blanked = profile is not None and profile.forgotten and not profile.name
                wal = _truncate_wal(runner)
    report = ForgetReport(
        customer_id=customer_id,
        reason=reason,
        key_deleted=key_deleted,
        positions=result.positions,
        merged_into=state.merged_into,
        views_applied=applied,
        views_position=position,
        profile_blanked=blanked,
        sqlite_wal_truncated=wal,
    )
    if fmt is Format.json:
        sys.stdout.write(msgspec.json.encode(report).decode() + "\n")
        return
    steps = [
        ("data key deleted", "yes" if key_deleted else "NO"),
        ("events appended", ", ".join(map(str, result.positions)) or "none (already recorded)"),
        (
            "views updated",
            f"{applied:,} event applications, all views at position {position}"
            if catch_up
            else "not asked (the projector will)",
        ),
        ("profile blanked", {None: "not checked", True: "yes", False: "NO"}[blanked]),
    ]
    if wal is not None:
        steps.append(("SQLite WAL emptied", "yes" if wal else "NO (a reader was busy)"))
    if state.merged_into is not None:
        steps.append(("note", f"was merged into {state.merged_into}; its own data is kept"))
    emit(console, f"forgot {customer_id}", ("step", "result"), steps, fmt)


def _truncate_wal(runner: Runner) -> bool | None:
    """On SQLite, checkpoint the write-ahead log and truncate it: its old frames are copies of
    pages as they were before the views blanked the customer (None on PostgreSQL)."""
    if runner.db.dialect.name != "sqlite":
        return None
    rows = runner.db.fetch("PRAGMA wal_checkpoint(TRUNCATE)")
    return bool(rows) and int(rows[0][0]) == 0
