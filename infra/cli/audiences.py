"""`crm audience define|change|retire|list|members|explain|backtest`: live audiences, their
members now or as of a business time, why a customer is in or out, and the size over time of a
rule never defined."""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path
from typing import Any
from uuid import UUID

import msgspec
import typer
from dateutil.relativedelta import relativedelta

from handlers.decision import CommandContext
from infra.cli.commands import default_actor
from infra.cli.output import Format, emit, refusals_as_replies
from infra.cli.projections import open_projector
from infra.cli.reports import AS_OF, CHART, FORMAT, console, err_console, parse_as_of
from infra.engine import open_engine
from projections.audiences import Step, audiences_list, backtest, explain, members

audience_app = typer.Typer(
    no_args_is_help=True,
    help="Live audiences: rules over the whole history, exact as events arrive and time passes.",
)
ACTOR = typer.Option(None, "--actor", envvar="CRM_ACTOR", help="Who does it.")


def _run(name: str, data: dict[str, Any], actor: str | None) -> None:
    ctx = CommandContext(actor=actor or default_actor(), channel="manual")
    with open_engine() as engine, refusals_as_replies():
        engine.bus.execute_json(name, data, ctx)


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
    with refusals_as_replies(), open_projector() as (engine, runner):
        runner.catch_up()
        runner.fire_timers()
        rows = members(runner.db, name, now=engine.clock.now(), as_of=at)
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
    with refusals_as_replies(), open_projector() as (engine, runner):
        runner.catch_up()
        runner.fire_timers()
        why = explain(runner.db, name, customer, now=engine.clock.now())
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


_STEP = re.compile(r"\s*(\d+)\s*([dwm])\s*")


def parse_every(raw: str) -> Step:
    """`1d`, `2w`, `1m` (calendar months): the step between the times of a backtest."""
    m = _STEP.fullmatch(raw)
    if m is None or int(m[1]) < 1:
        raise typer.BadParameter(
            f"{raw!r} is not a step like 1d, 1w, 2w or 1m", param_hint="--every"
        )
    n, unit = int(m[1]), m[2]
    if unit == "m":
        return relativedelta(months=n)
    return timedelta(days=n) if unit == "d" else timedelta(weeks=n)


@audience_app.command("backtest")
def backtest_(
    rule: str = typer.Argument(..., help='e.g. "sum(call.duration_min, last 4 months) > 300"'),
    start: str = typer.Option(..., "--from", help="First business time, e.g. 2026-01-01."),
    end: str | None = typer.Option(None, "--to", help="Last business time (default: now)."),
    every: str = typer.Option("1w", "--every", help="Step: 1d, 1w, 2w, 1m (calendar month)."),
    fmt: Format = FORMAT,
    chart: Path | None = CHART,
) -> None:
    """The size over time of a rule never defined, from history alone: at each time from
    --from to --to, the customers the rule selects with what had happened by then."""
    step = parse_every(every)
    first = parse_as_of(start, "--from")
    assert first is not None
    with refusals_as_replies(), open_projector() as (engine, runner):
        runner.catch_up()
        last = parse_as_of(end, "--to") or engine.clock.now()
        if last < first:
            raise typer.BadParameter(f"{end or 'now'} is before --from {start}", param_hint="--to")
        points = backtest(runner.db, rule, start=first, end=last, every=step)
    emit(
        console,
        f"backtest: {rule}",
        ("at", "size"),
        [(p.at.isoformat(), p.size) for p in points],
        fmt,
    )
    if chart is not None:
        from infra.charts import backtest_chart

        err_console.print(f"chart: {backtest_chart(rule, [(p.at, p.size) for p in points], chart)}")
