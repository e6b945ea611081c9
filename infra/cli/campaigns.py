"""`crm campaign define|launch|report|list`: campaigns sent to an audience snapshot (a file of
customer ids today; live audiences later), and their report as tables, JSON, CSV or a chart."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from uuid import UUID

import typer

from domain.campaigns.events import CampaignLaunched
from domain.campaigns.state import campaign_id_of
from handlers.decision import CommandContext
from infra.cli.commands import default_actor
from infra.cli.output import Format, emit, pct, refusals_as_replies
from infra.cli.projections import open_projector
from infra.cli.reports import AS_OF, CHART, FORMAT, console, err_console, parse_as_of
from infra.engine import Engine, open_engine
from projections.campaigns import CampaignReport, campaign_report, campaigns_list

campaign_app = typer.Typer(
    no_args_is_help=True,
    help="Campaigns: define, launch to an audience snapshot, report responses and uplift.",
)
AT = typer.Option(None, "--at", help="Business time (default: now), e.g. 2026-03-31T09:00:00Z.")
ACTOR = typer.Option(None, "--actor", envvar="CRM_ACTOR", help="Who does it.")


def _run(engine: Engine, name: str, data: dict[str, Any], actor: str | None) -> Any:
    ctx = CommandContext(actor=actor or default_actor(), channel="manual")
    with refusals_as_replies():
        return engine.bus.execute_json(name, data, ctx)


def parse_cap(raw: str | None) -> dict[str, int] | None:
    """`1/7`: at most 1 message per 7 days."""
    if raw is None:
        return None
    sends, sep, days = raw.partition("/")
    try:
        cap = {"max_sends": int(sends), "per_days": int(days)}
    except ValueError:
        cap = {}
    if not sep or not cap or min(cap.values()) < 1:
        raise typer.BadParameter(
            f"{raw!r} is not SENDS/DAYS, e.g. 1/7", param_hint="--cap-per-days"
        )
    return cap


def read_members(path: Path) -> list[str]:
    """One customer id a line; blank lines and lines starting with # are skipped."""
    members = []
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        text = line.strip()
        if not text or text.startswith("#"):
            continue
        try:
            members.append(str(UUID(text)))
        except ValueError:
            raise typer.BadParameter(
                f"line {number}: {text!r} is not a customer id", param_hint="--members-file"
            ) from None
    return members


def _iso(raw: str | None, hint: str) -> str | None:
    at = parse_as_of(raw, hint)
    return None if at is None else at.isoformat()


@campaign_app.command("define")
def define(
    name: str = typer.Argument(..., help="The campaign's name (its id is derived from it)."),
    audience: str = typer.Option(..., "--audience", help="The audience it is meant for."),
    channel: str = typer.Option("email", "--channel", help="email, sms, phone or post."),
    content: str = typer.Option(..., "--content", help="Reference of the message's content."),
    holdout: float = typer.Option(0.0, "--holdout", help="Share held out, 0 to 0.5."),
    cap: str | None = typer.Option(
        None, "--cap-per-days", help="Frequency cap on the channel, SENDS/DAYS, e.g. 1/7."
    ),
    attribution_days: int = typer.Option(30, "--attribution-days", min=1),
    start: str | None = typer.Option(None, "--start", help="No launch before this time."),
    end: str | None = typer.Option(None, "--end", help="No launch after this time."),
    at: str | None = AT,
    actor: str | None = ACTOR,
) -> None:
    """Define a campaign: audience, channel, content, schedule, frequency cap, holdout."""
    data: dict[str, Any] = {
        "name": name,
        "audience": audience,
        "channel": channel,
        "content_ref": content,
        "holdout_share": holdout,
        "attribution_days": attribution_days,
        "frequency_cap": parse_cap(cap),
        "start": _iso(start, "--start"),
        "end": _iso(end, "--end"),
        "occurred_at": _iso(at, "--at"),
    }
    with open_engine() as engine:
        _run(engine, "campaign.define", {k: v for k, v in data.items() if v is not None}, actor)
    console.print(f"campaign [bold]{name}[/bold] defined: {campaign_id_of(name)}")


@campaign_app.command("launch")
def launch(
    name: str = typer.Argument(..., help="The campaign's name or id."),
    members_file: Path = typer.Option(
        ..., "--members-file", exists=True, dir_okay=False, help="One customer id a line."
    ),
    send_id: UUID | None = typer.Option(None, "--send-id", help="A repeat appends nothing."),
    at: str | None = AT,
    actor: str | None = ACTOR,
) -> None:
    """Send to the audience snapshot in the file: those with consent to marketing on the
    channel and under the frequency cap, minus the holdout."""
    campaign = _campaign_id(name)
    data: dict[str, Any] = {
        "campaign_id": str(campaign),
        "members": read_members(members_file),
        "send_id": None if send_id is None else str(send_id),
        "occurred_at": _iso(at, "--at"),
    }
    with open_engine() as engine:
        result = _run(
            engine, "campaign.launch", {k: v for k, v in data.items() if v is not None}, actor
        )
        head = next((s.version for s in result.streams if s.id == campaign), None)
        events = engine.store.read_stream(campaign, head - 1) if head else []
    sent = next((e.payload for e in events if isinstance(e.payload, CampaignLaunched)), None)
    if sent is None:
        console.print("nothing sent: this send was recorded before")
        return
    reasons: dict[str, int] = {}
    for x in sent.excluded:
        reasons[x.reason] = reasons.get(x.reason, 0) + 1
    excluded = ", ".join(f"{k} {v}" for k, v in sorted(reasons.items())) or "none"
    console.print(
        f"send {sent.send_id}: {len(sent.members)} members, {len(sent.sent)} sent, "
        f"{len(sent.holdout)} held out, excluded: {excluded}"
    )


def _campaign_id(name_or_id: str) -> UUID:
    try:
        return UUID(name_or_id)
    except ValueError:
        return campaign_id_of(name_or_id)


def funnel(r: CampaignReport) -> list[tuple[str, int]]:
    """Sent, then the customers who responded delivered, opened, clicked, then those who
    ordered within the attribution window."""
    responded = {x.kind: x.customers for x in r.responses}
    steps = [("sent", r.sent)]
    steps += [(k, responded.get(k, 0)) for k in ("delivered", "opened", "clicked")]
    steps.append(("converted (ordered)", r.outcomes[0].converted if r.outcomes else 0))
    return steps


@campaign_app.command("report")
def report(
    name: str = typer.Argument(..., help="The campaign's name or id."),
    as_of: str | None = AS_OF,
    fmt: Format = FORMAT,
    chart: Path | None = CHART,
) -> None:
    """Audience at send, sent, held out, excluded by reason; responses and their rates;
    conversion and revenue in the attribution window, sent against holdout, and the uplift."""
    at = parse_as_of(as_of)
    with open_projector() as (engine, runner):
        runner.catch_up()
        r = campaign_report(runner.db, name, now=engine.clock.now(), as_of=at)
    if fmt is Format.table:
        uplift = "n/a" if r.uplift is None else f"{100 * r.uplift:+.1f} points"
        relative = "" if r.relative_uplift is None else f" ({r.relative_uplift:+.0%})"
        console.print(
            f"[bold]{r.name}[/bold] ({r.channel}, audience {r.audience}, content "
            f"{r.content_ref}) as of {r.as_of:%Y-%m-%d %H:%M}: {len(r.sends)} sends, "
            f"{r.sent} sent, {r.holdout} held out; uplift {uplift}{relative}"
        )
    emit(
        console,
        "audience",
        (
            "members",
            "audience",
            "sent",
            "holdout",
            "messages",
            *(f"excluded: {k}" for k in r.excluded),
        ),
        [(r.members, r.audience_size, r.sent, r.holdout, r.messages, *r.excluded.values())],
        fmt,
    )
    emit(
        console,
        "sends",
        ("send", "at", "members", "sent", "holdout", "excluded"),
        [
            (
                s.send_id,
                s.at,
                s.members,
                s.sent,
                s.holdout,
                ", ".join(f"{k} {v}" for k, v in s.excluded.items()),
            )
            for s in r.sends
        ],
        fmt,
    )
    emit(
        console,
        "responses (rate over customers sent to)",
        ("kind", "customers", "events", "rate"),
        [(x.kind, x.customers, x.events, pct(x.rate)) for x in r.responses],
        fmt,
    )
    emit(
        console,
        f"conversion within {r.attribution_days} days of the send",
        ("group", "customers", "converted", "rate", "orders", "revenue (net of returns)"),
        [
            (
                g.group,
                g.customers,
                g.converted,
                pct(g.rate),
                g.orders,
                ", ".join(f"{x.amount} {x.currency}" for x in g.revenue),
            )
            for g in r.outcomes
        ],
        fmt,
    )
    if chart is not None:
        from infra.charts import campaign_chart

        title = f"{r.name}: funnel (as of {r.as_of:%Y-%m-%d})"
        groups = [(g.group, g.rate, g.customers) for g in r.outcomes]
        err_console.print(f"chart: {campaign_chart(title, funnel(r), groups, chart)}")


@campaign_app.command("list")
def list_campaigns(as_of: str | None = AS_OF, fmt: Format = FORMAT) -> None:
    """Every campaign, by name: channel, audience, status, sends."""
    at = parse_as_of(as_of)
    with open_projector() as (_, runner):
        runner.catch_up()
        rows = campaigns_list(runner.db, as_of=at)
    emit(
        console,
        "campaigns",
        ("name", "id", "channel", "audience", "status", "sends", "sent", "holdout", "last send"),
        [
            (
                c.name,
                c.campaign_id,
                c.channel,
                c.audience,
                c.status,
                c.sends,
                c.sent,
                c.holdout,
                c.last_send_at,
            )
            for c in rows
        ],
        fmt,
    )
