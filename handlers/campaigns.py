"""Handlers of campaigns: define (the id derived from the name), launch (members' consents,
merges and earlier sends read in a few batch queries, never one per member), record a
response, retire.

The frequency cap reads the channel's stream (one event per send on the channel), keeps the
sends inside the cap's window and folds their campaigns (one query for all of them). The
launch appends to the channel's stream in the same transaction as to the campaign's, so two
launches on one channel at once conflict and the second is decided again, seeing the first.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta
from uuid import UUID

from domain.campaigns import commands as cmd
from domain.campaigns import decide
from domain.campaigns.decide import MARKETING
from domain.campaigns.events import ResponseRecorded
from domain.campaigns.state import (
    CampaignState,
    campaign_id_of,
    channel_stream_of,
    fold,
    fold_channel,
)
from domain.customers.events import ConsentWithdrawn
from domain.customers.state import CustomerState
from domain.customers.state import fold as fold_customer
from handlers.decision import CommandContext, Decision
from handlers.deps import Deps, business_time, load_customer, load_state, new_id
from handlers.registry import COMMANDS


def member_profiles(deps: Deps, members: Iterable[UUID]) -> dict[UUID, CustomerState]:
    """Every member's customer state and those of the survivors they were merged into: one
    batch read for the members, one more per step of a chain of merges."""
    found: dict[UUID, CustomerState] = {}
    todo = list(dict.fromkeys(members))
    while todo:
        streams = deps.log.load_many(todo)
        for customer_id in todo:
            events = streams.get(customer_id, [])
            found[customer_id] = fold_customer(
                customer_id, [(e.version, e.occurred_at, e.payload) for e in events]
            )
        survivors = (found[i].merged_into for i in todo)
        todo = list(dict.fromkeys(s for s in survivors if s is not None and s not in found))
    return found


def _campaigns(deps: Deps, ids: Iterable[UUID], known: CampaignState) -> dict[UUID, CampaignState]:
    wanted = [i for i in dict.fromkeys(ids) if i != known.campaign_id]
    streams = deps.log.load_many(wanted) if wanted else {}
    found = {
        i: fold(i, [(e.version, e.occurred_at, e.payload) for e in events])
        for i, events in streams.items()
    }
    found[known.campaign_id] = known
    return found


@COMMANDS.handles(cmd.DefineCampaign)
def define(c: cmd.DefineCampaign, ctx: CommandContext, deps: Deps) -> Decision:
    state = load_state(deps, campaign_id_of(c.name), fold)
    at = business_time(c, deps)
    return Decision().add(
        ctx,
        stream_id=state.campaign_id,
        stream_type="campaign",
        after_version=state.version,
        payloads=decide.define(state, c, at=at),
        occurred_at=at,
        customer_id=None,
    )


@COMMANDS.handles(cmd.LaunchCampaign)
def launch(c: cmd.LaunchCampaign, ctx: CommandContext, deps: Deps) -> Decision:
    state = load_state(deps, c.campaign_id, fold)
    at = business_time(c, deps)
    decide.ensure_launchable(state, at)  # before reading every member
    assert state.channel is not None
    channel = load_state(deps, channel_stream_of(state.channel), fold_channel)
    earlier: dict[UUID, int] = {}
    if state.frequency_cap is not None:
        days = state.frequency_cap.per_days
        since = at - timedelta(days=days)
        campaigns = _campaigns(deps, (s.campaign_id for s in channel.within(since, at)), state)
        earlier = dict(decide.sends_in_window(channel, campaigns, at=at, per_days=days))
    on_campaign, on_channel = decide.launch(
        state,
        c,
        send_id=c.send_id or new_id(ctx, "campaign-send"),
        profiles=member_profiles(deps, c.members),
        earlier=earlier,
        at=at,
    )
    decision = Decision().add(
        ctx,
        stream_id=state.campaign_id,
        stream_type="campaign",
        after_version=state.version,
        payloads=on_campaign,
        occurred_at=at,
        customer_id=None,
        channel=state.channel,
    )
    return decision.add(
        ctx,
        stream_id=channel.stream_id,
        stream_type="campaign_channel",
        after_version=channel.version,
        payloads=on_channel,
        occurred_at=at,
        customer_id=None,
        channel=state.channel,
    )


@COMMANDS.handles(cmd.RecordResponse)
def record_response(c: cmd.RecordResponse, ctx: CommandContext, deps: Deps) -> Decision:
    state = load_state(deps, c.campaign_id, fold)
    at = business_time(c, deps)
    aliases: tuple[UUID, ...] = ()
    if state.defined and c.customer_id not in state.first_sent:
        customer = load_customer(deps, c.customer_id)  # merged since the send, or a survivor
        aliases = (*customer.absorbed, *filter(None, (customer.merged_into,)))
    payloads = decide.record_response(state, c, at=at, aliases=aliases)
    who = next((p.customer_id for p in payloads if isinstance(p, ResponseRecorded)), None)
    decision = Decision().add(
        ctx,
        stream_id=state.campaign_id,
        stream_type="campaign",
        after_version=state.version,
        payloads=payloads,
        occurred_at=at,
        customer_id=who,
        channel=state.channel,
    )
    if c.kind == "unsubscribed" and who is not None:
        return _unsubscribe(decision, ctx, deps, who, state, at)
    return decision


def _unsubscribe(  # noqa: PLR0917
    decision: Decision,
    ctx: CommandContext,
    deps: Deps,
    who: UUID,
    state: CampaignState,
    at: datetime,
) -> Decision:
    """An unsubscribe withdraws the customer's marketing consent for the campaign's channel
    in the same transaction (on the customer they live on now, if merged since); a customer
    without that consent any more, or forgotten, has nothing to withdraw."""
    customer = load_customer(deps, who)
    seen = {who}
    while customer.merged_into is not None and customer.merged_into not in seen:
        seen.add(customer.merged_into)
        customer = load_customer(deps, customer.merged_into)
    if customer.forgotten or not customer.has_consent(state.channel, MARKETING):
        return decision
    withdrawn = ConsentWithdrawn(
        consent_channel=state.channel, purpose=MARKETING, source=f"campaign:{state.name}"
    )
    return decision.add(
        ctx,
        stream_id=customer.customer_id,
        stream_type="customer",
        after_version=customer.version,
        payloads=[withdrawn],
        occurred_at=at,
        customer_id=customer.customer_id,
        channel=state.channel,
    )


@COMMANDS.handles(cmd.RetireCampaign)
def retire(c: cmd.RetireCampaign, ctx: CommandContext, deps: Deps) -> Decision:
    state = load_state(deps, c.campaign_id, fold)
    at = business_time(c, deps)
    return Decision().add(
        ctx,
        stream_id=state.campaign_id,
        stream_type="campaign",
        after_version=state.version,
        payloads=decide.retire(state, c, at=at),
        occurred_at=at,
        customer_id=None,
    )
