"""A campaign and a channel's list of sends as decisions and views need them, folded from
their streams (pure); the ids both are found by."""

from __future__ import annotations

from datetime import datetime
from uuid import UUID, uuid5

import msgspec
from msgspec.structs import replace

from domain.campaigns import events as ev
from domain.events import DomainEvent
from domain.streams import fold_events

CAMPAIGN_IDS = UUID("6f3a1d52-8c4e-4b7a-a0d9-2e5c7b1f9a34")


def campaign_id_of(name: str) -> UUID:
    """A campaign's stream id, derived from its name: one campaign per name."""
    return uuid5(CAMPAIGN_IDS, f"campaign:{name}")


def channel_stream_of(channel: str) -> UUID:
    """The stream listing every send on `channel`."""
    return uuid5(CAMPAIGN_IDS, f"channel:{channel}")


class Send(msgspec.Struct, frozen=True, kw_only=True):
    send_id: UUID
    at: datetime
    members: tuple[UUID, ...]
    sent: tuple[UUID, ...]
    holdout: tuple[UUID, ...]
    excluded: tuple[ev.Exclusion, ...]


class CampaignState(msgspec.Struct, frozen=True, kw_only=True):
    campaign_id: UUID
    version: int = 0
    name: str | None = None
    audience: str | None = None
    channel: str | None = None
    content_ref: str | None = None
    start: datetime | None = None
    end: datetime | None = None
    frequency_cap: ev.FrequencyCap | None = None
    holdout_share: float = 0.0
    attribution_days: int = 30
    defined_at: datetime | None = None
    retired_at: datetime | None = None
    sends: tuple[Send, ...] = ()
    first_sent: dict[UUID, datetime] = {}  # customer -> first time a send messaged them
    first_held: dict[UUID, datetime] = {}  # customer -> first time a send held them out
    last_launch_at: datetime | None = None
    last_occurred_at: datetime | None = None

    @property
    def defined(self) -> bool:
        return self.name is not None

    @property
    def customer_id(self) -> None:
        """A campaign is about many customers: its envelopes name none."""
        return None

    def send(self, send_id: UUID) -> Send | None:
        return next((s for s in self.sends if s.send_id == send_id), None)

    def send_reaching(self, customer_id: UUID, at: datetime) -> Send | None:
        """The latest send that messaged the customer at or before `at`."""
        found = None
        for s in self.sends:
            if s.at <= at and customer_id in s.sent and (found is None or s.at >= found.at):
                found = s
        return found


def evolve(state: CampaignState, event: DomainEvent, at: datetime) -> CampaignState:
    match event:
        case ev.CampaignDefined():
            return replace(
                state,
                name=event.name,
                audience=event.audience,
                channel=event.channel,
                content_ref=event.content_ref,
                start=event.start,
                end=event.end,
                frequency_cap=event.frequency_cap,
                holdout_share=event.holdout_share,
                attribution_days=event.attribution_days,
                defined_at=at,
            )
        case ev.CampaignLaunched():
            send = Send(
                send_id=event.send_id,
                at=at,
                members=tuple(event.members),
                sent=tuple(event.sent),
                holdout=tuple(event.holdout),
                excluded=tuple(event.excluded),
            )
            first_sent = dict(state.first_sent)
            for c in event.sent:
                first_sent.setdefault(c, at)
            first_held = dict(state.first_held)
            for c in event.holdout:
                first_held.setdefault(c, at)
            return replace(
                state,
                sends=(*state.sends, send),
                first_sent=first_sent,
                first_held=first_held,
                last_launch_at=at,
            )
        case ev.CampaignRetired():
            return replace(state, retired_at=at)
    return state


def fold(
    campaign_id: UUID,
    events: list[tuple[int, datetime, DomainEvent]],
    start: CampaignState | None = None,
) -> CampaignState:
    """State after (version, occurred_at, payload) triples in version order, from `start`
    (a state folded earlier, whose version the first triple follows) or from nothing."""
    start = start if start is not None else CampaignState(campaign_id=campaign_id)
    return fold_events(evolve, start, events)


class ChannelSend(msgspec.Struct, frozen=True):
    at: datetime
    campaign_id: UUID
    send_id: UUID


class ChannelLog(msgspec.Struct, frozen=True, kw_only=True):
    """Every send on one channel, in log order."""

    stream_id: UUID
    version: int = 0
    sends: tuple[ChannelSend, ...] = ()

    @property
    def customer_id(self) -> None:
        return None

    def within(self, since: datetime, until: datetime) -> list[ChannelSend]:
        """The sends in `(since, until]` (business time)."""
        return [s for s in self.sends if since < s.at <= until]


def fold_channel(stream_id: UUID, events: list[tuple[int, datetime, DomainEvent]]) -> ChannelLog:
    sends = [
        ChannelSend(at, p.campaign_id, p.send_id)
        for _, at, p in events
        if isinstance(p, ev.ChannelSendLogged)
    ]
    version = events[-1][0] if events else 0
    return ChannelLog(stream_id=stream_id, version=version, sends=tuple(sends))
