"""Events of a campaign's stream, and of the small stream per channel that lists its sends.

None holds personal data: customers appear by id only.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal
from uuid import UUID

import msgspec

from domain.events import EVENTS, DomainEvent

ResponseKind = Literal["delivered", "opened", "clicked", "replied", "converted", "unsubscribed"]
RESPONSE_KINDS: tuple[ResponseKind, ...] = (
    "delivered",
    "opened",
    "clicked",
    "replied",
    "converted",
    "unsubscribed",
)
ExclusionReason = Literal["no_consent", "frequency_cap", "forgotten", "merged", "unknown"]
EXCLUSION_REASONS: tuple[ExclusionReason, ...] = (
    "no_consent",
    "frequency_cap",
    "forgotten",
    "merged",
    "unknown",
)


class FrequencyCap(msgspec.Struct, frozen=True, kw_only=True):
    """At most `max_sends` messages to a customer in the `per_days` days up to a send
    (`(T - per_days, T]`), counting every campaign on the same channel."""

    max_sends: Annotated[int, msgspec.Meta(ge=1, le=1000)]
    per_days: Annotated[int, msgspec.Meta(ge=1, le=3660)]


class Exclusion(msgspec.Struct, frozen=True, kw_only=True):
    """A member not messaged, and why. A merged member names the survivor it counts as."""

    customer_id: UUID
    reason: ExclusionReason
    survivor_id: UUID | None = None


@EVENTS.register
class CampaignDefined(DomainEvent, frozen=True, kw_only=True, tag="campaign.defined"):
    """`start`/`end` bound the launches (business time, either may be open)."""

    name: str
    audience: str
    channel: str
    content_ref: str
    start: datetime | None = None
    end: datetime | None = None
    frequency_cap: FrequencyCap | None = None
    holdout_share: float = 0.0
    attribution_days: int = 30


@EVENTS.register
class CampaignLaunched(DomainEvent, frozen=True, kw_only=True, tag="campaign.launched"):
    """One send: the audience snapshot at send time. `members` as the caller passed them
    (duplicates dropped); every member is in exactly one of `sent`, `holdout`, `excluded`,
    except a merged member, excluded as `merged` while its survivor takes its place (once)."""

    send_id: UUID
    channel: str
    members: list[UUID]
    sent: list[UUID]
    holdout: list[UUID]
    excluded: list[Exclusion] = []


@EVENTS.register
class ResponseRecorded(DomainEvent, frozen=True, kw_only=True, tag="campaign.response_recorded"):
    """A messaged customer's response to the send (`send_id`) that reached them last."""

    customer_id: UUID
    kind: ResponseKind
    send_id: UUID
    order_id: UUID | None = None


@EVENTS.register
class CampaignRetired(DomainEvent, frozen=True, kw_only=True, tag="campaign.retired"):
    reason: str | None = None


@EVENTS.register
class ChannelSendLogged(DomainEvent, frozen=True, kw_only=True, tag="campaign.channel_send_logged"):
    """On the channel's stream: campaign `campaign_id` sent `send_id` at the event's time."""

    campaign_id: UUID
    send_id: UUID
