"""Decisions on a campaign: `define`, `launch`, `record_response`, `retire` (pure).

A launch resolves each member the caller passed: unknown and forgotten customers are
excluded; a merged one is excluded as `merged` and its survivor takes its place, once however
many of its ids were passed. Each remaining customer needs consent to marketing on the
campaign's channel and room under the frequency cap (the sends the channel's stream lists in
the cap's window, to the customer or to the customers merged into it). Those left are split
by `in_holdout`: a hash of the campaign and the customer, so a replay, a retry or a second
send gives the same split, and the holdout is chosen among customers who could have been
messaged (otherwise the comparison would be biased).
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta
from uuid import UUID

from domain.campaigns import commands as cmd
from domain.campaigns import errors as err
from domain.campaigns import events as ev
from domain.campaigns.state import CampaignState, ChannelLog
from domain.customers.state import CustomerState
from domain.events import DomainEvent

CHANNELS = ("email", "sms", "phone", "post")
"""The channels a campaign can go through (the consent channels of marketing)."""
MARKETING = "marketing"
MAX_HOLDOUT = 0.5
_SCALE = float(2**64)


def in_holdout(campaign_id: UUID, customer_id: UUID, share: float) -> bool:
    """Whether the customer is held out of the campaign: the first 8 bytes of
    sha256(campaign id + customer id), read as a fraction of 2**64, below `share`."""
    if share <= 0:
        return False
    digest = hashlib.sha256(campaign_id.bytes + customer_id.bytes).digest()
    return int.from_bytes(digest[:8], "big") / _SCALE < share


def define(state: CampaignState, c: cmd.DefineCampaign, *, at: datetime) -> list[DomainEvent]:
    if state.defined:
        raise err.CampaignAlreadyDefined(c.name, state.campaign_id)
    if c.channel not in CHANNELS:
        raise err.UnknownChannel(c.channel, CHANNELS)
    if not 0.0 <= c.holdout_share <= MAX_HOLDOUT:
        raise err.HoldoutShareOutOfRange(c.holdout_share, MAX_HOLDOUT)
    if c.start is not None and c.end is not None and c.end < c.start:
        raise err.InvalidSchedule(c.start, c.end)
    return [
        ev.CampaignDefined(
            name=c.name,
            audience=c.audience,
            channel=c.channel,
            content_ref=c.content_ref,
            start=c.start,
            end=c.end,
            frequency_cap=c.frequency_cap,
            holdout_share=c.holdout_share,
            attribution_days=c.attribution_days,
        )
    ]


def ensure_launchable(state: CampaignState, at: datetime) -> None:
    """Defined, not retired, within its schedule, not before its last launch or definition."""
    if not state.defined:
        raise err.CampaignNotFound(state.campaign_id)
    if state.retired_at is not None:
        raise err.CampaignIsRetired(state.campaign_id)
    if (state.start is not None and at < state.start) or (state.end is not None and at > state.end):
        raise err.OutsideSchedule(state.campaign_id, at, state.start, state.end)
    last = state.last_launch_at or state.defined_at
    if last is not None and at < last:
        raise err.LaunchBeforeLast(state.campaign_id, last, at)


def sends_in_window(
    channel: ChannelLog,
    campaigns: Mapping[UUID, CampaignState],
    *,
    at: datetime,
    per_days: int,
) -> Counter[UUID]:
    """Messages per customer on the channel in `(at - per_days, at]`, from the sends the
    channel's stream lists and the campaigns (folded) they belong to."""
    counts: Counter[UUID] = Counter()
    for entry in channel.within(at - timedelta(days=per_days), at):
        campaign = campaigns.get(entry.campaign_id)
        send = campaign.send(entry.send_id) if campaign is not None else None
        if send is not None:
            counts.update(send.sent)
    return counts


def _survivor(member: CustomerState, profiles: Mapping[UUID, CustomerState]) -> UUID:
    """The end of the member's chain of merges (as far as `profiles` know it)."""
    seen = {member.customer_id}
    target = member.merged_into
    assert target is not None
    while True:
        nxt = profiles.get(target)
        if nxt is None or nxt.merged_into is None or nxt.merged_into in seen:
            return target
        seen.add(target)
        target = nxt.merged_into


def launch(
    state: CampaignState,
    c: cmd.LaunchCampaign,
    *,
    send_id: UUID,
    profiles: Mapping[UUID, CustomerState],
    earlier: Mapping[UUID, int],
    at: datetime,
) -> tuple[list[DomainEvent], list[DomainEvent]]:
    """Events for (the campaign's stream, the channel's stream). `profiles` holds every
    member and every survivor they were merged into; `earlier` the messages per customer id
    on the channel within the cap's window (`sends_in_window`)."""
    if state.send(send_id) is not None:  # a repeat of a send that happened decides nothing
        return [], []
    ensure_launchable(state, at)
    assert state.channel is not None
    members = list(dict.fromkeys(c.members))
    excluded: list[ev.Exclusion] = []
    candidates: dict[UUID, None] = {}
    for m in members:
        p = profiles.get(m)
        if p is not None and p.registered and not p.forgotten and p.merged_into is not None:
            survivor = _survivor(p, profiles)
            excluded.append(ev.Exclusion(customer_id=m, reason="merged", survivor_id=survivor))
            candidates.setdefault(survivor)
        else:
            candidates.setdefault(m)
    sent: list[UUID] = []
    holdout: list[UUID] = []
    cap = state.frequency_cap
    for customer in candidates:
        p = profiles.get(customer)
        reason: ev.ExclusionReason | None = None
        if p is None or not p.registered:
            reason = "unknown"
        elif p.forgotten:
            reason = "forgotten"
        elif not p.has_consent(state.channel, MARKETING):
            reason = "no_consent"
        elif cap is not None and _messages(customer, p.absorbed, earlier) >= cap.max_sends:
            reason = "frequency_cap"
        if reason is not None:
            excluded.append(ev.Exclusion(customer_id=customer, reason=reason))
        elif in_holdout(state.campaign_id, customer, state.holdout_share):
            holdout.append(customer)
        else:
            sent.append(customer)
    launched = ev.CampaignLaunched(
        send_id=send_id,
        channel=state.channel,
        members=members,
        sent=sent,
        holdout=holdout,
        excluded=excluded,
    )
    logged = ev.ChannelSendLogged(campaign_id=state.campaign_id, send_id=send_id)
    return [launched], [logged]


def _messages(customer: UUID, absorbed: Iterable[UUID], earlier: Mapping[UUID, int]) -> int:
    return earlier.get(customer, 0) + sum(earlier.get(a, 0) for a in absorbed)


def record_response(
    state: CampaignState,
    c: cmd.RecordResponse,
    *,
    at: datetime,
    aliases: Iterable[UUID] = (),
) -> list[DomainEvent]:
    """`aliases`: other ids of the customer (merged into it, or its survivor); a response is
    recorded under the id the campaign messaged."""
    if not state.defined:
        raise err.CampaignNotFound(state.campaign_id)
    who = next(
        (i for i in (c.customer_id, *aliases) if i in state.first_sent),
        None,
    )
    if who is None:
        raise err.NotSentTo(state.campaign_id, c.customer_id)
    send = state.send_reaching(who, at)
    if send is None:
        raise err.ResponseBeforeSend(state.campaign_id, who, state.first_sent[who], at)
    return [
        ev.ResponseRecorded(customer_id=who, kind=c.kind, send_id=send.send_id, order_id=c.order_id)
    ]


def retire(state: CampaignState, c: cmd.RetireCampaign, *, at: datetime) -> list[DomainEvent]:
    """Retiring twice decides nothing; responses to earlier sends are still recorded."""
    if not state.defined:
        raise err.CampaignNotFound(state.campaign_id)
    if state.retired_at is not None:
        return []
    return [ev.CampaignRetired(reason=c.reason)]
