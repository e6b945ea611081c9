"""`crm audience define|change|retire|list|members|explain`: live audiences, their members now
or as of a business time, and why a customer is in or out."""

from __future__ import annotations

import sys
from typing import Any
from uuid import UUID

import msgspec
import typer

from domain.errors import DomainError
from handlers.decision import CommandContext
from handlers.errors import CommandRejected
from handlers.replies import error_reply
from infra.cli.commands import default_actor
from infra.cli.output import Format, emit
from infra.cli.projections import open_projector
from infra.cli.reports import AS_OF, FORMAT, console, parse_as_of
from infra.engine import open_engine
from projections.audiences import audiences_list, explain, members

audience_app = typer.Typer(
    no_args_is_help=True,
    help="Live audiences: rules over the whole history, exact as events arrive and time passes.",
)
ACTOR = typer.Option(None, "--actor", envvar="CRM_ACTOR", help="Who does it.")


def _run(name: str, data: dict[str, Any], actor: str | None) -> None:
    ctx = CommandContext(actor=actor or default_actor(), channel="manual")
    with open_engine() as engine:
        try:
            engine.bus.execute_json(name, data, ctx)
        except (DomainError, CommandRejected) as e:
            sys.stdout.write(msgspec.json.encode(error_reply(e)).decode() + "\n")
            raise typer.Exit(1) from None


@audience_app.command("define")
def define(
    name: str = typer.Argument(..., help="The audience's name."),
    rule: str = typer.Argument(..., help='e.g. "sum(call.duration_min, last 4 months) > 300"'),
    actor: str | None = ACTOR,
) -> None:
    """Define an audience by a rule (docs/audiences.md); its members are kept live."""
    _run("audience.define", {"name": name, "rule": rule}, actor)
    console.print(f"audience [bold]{name}[/bold] defined")


@audience_app.command("change")
def change(
    name: str = typer.Argument(...),
    rule: str = typer.Argument(...),
    actor: str | None = ACTOR,
) -> None:
    """A new version of an audience's rule."""
    _run("audience.change", {"name": name, "rule": rule}, actor)
    console.print(f"audience [bold]{name}[/bold] changed")


@audience_app.command("retire")
def retire(name: str = typer.Argument(...), actor: str | None = ACTOR) -> None:
    """Retire an audience (no live audience may refer to it)."""
    _run("audience.retire", {"name": name}, actor)
    console.print(f"audience [bold]{name}[/bold] retired")


@audience_app.command("list")
def list_(fmt: Format = FORMAT) -> None:
    """Every audience: version, rule, members now, retired."""
    with open_projector() as (_, runner):
        runner.catch_up()
        runner.fire_timers()
        rows = audiences_list(runner.db)
    emit(
        console,
        "audiences",
        ("name", "version", "rule", "size", "retired"),
        [(r.name, r.version, r.rule, r.size, r.retired) for r in rows],
        fmt,
    )


@audience_app.command("members")
def members_(
    name: str = typer.Argument(...),
    as_of: str | None = AS_OF,
    fmt: Format = FORMAT,
) -> None:
    """The members now (live), or as of a business time (evaluated from the histories)."""
    at = parse_as_of(as_of)
    try:
        with open_projector() as (engine, runner):
            runner.catch_up()
            runner.fire_timers()
            rows = members(runner.db, name, now=engine.clock.now(), as_of=at)
    except DomainError as e:
        sys.stdout.write(msgspec.json.encode(error_reply(e)).decode() + "\n")
        raise typer.Exit(1) from None
    emit(
        console,
        f"{name}: {len(rows)} members",
        ("customer_id", "version", "since", "values", "positions"),
        [
            (
                str(m.customer_id),
                m.version,
                m.since,
                msgspec.json.encode(m.values).decode(),
                len(m.positions),
            )
            for m in rows
        ],
        fmt,
    )


@audience_app.command("explain")
def explain_(
    name: str = typer.Argument(...),
    customer: UUID = typer.Argument(..., help="The customer's id."),
    fmt: Format = FORMAT,
) -> None:
    """Why the customer is in or out now: the rule's values and the events behind them."""
    try:
        with open_projector() as (engine, runner):
            runner.catch_up()
            runner.fire_timers()
            why = explain(runner.db, name, customer, now=engine.clock.now())
    except DomainError as e:
        sys.stdout.write(msgspec.json.encode(error_reply(e)).decode() + "\n")
        raise typer.Exit(1) from None
    if fmt is Format.table:
        verdict = "[green]in[/green]" if why.member else "[red]out[/red]"
        nxt = (
            "" if why.next_change is None else f"; can next change {why.next_change:%Y-%m-%d %H:%M}"
        )
        console.print(
            f"customer {why.customer_id} is {verdict} [bold]{name}[/bold] (v{why.version}) at "
            f"{why.at:%Y-%m-%d %H:%M}{nxt}\nrule: {why.rule}"
        )
        emit(console, "values", ("expression", "value"), list(why.values.items()), fmt)
    emit(
        console,
        "events behind them",
        ("position", "type", "occurred_at"),
        [(x.position, x.type, x.occurred_at) for x in why.events],
        fmt,
    )
