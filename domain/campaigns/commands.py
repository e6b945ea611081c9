"""Commands on campaigns. `occurred_at` is business time; the engine's clock if absent."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated
from uuid import UUID

import msgspec

from domain.campaigns.events import FrequencyCap, ResponseKind
from domain.commands import Command

Name = Annotated[str, msgspec.Meta(min_length=1, max_length=200)]
Label = Annotated[str, msgspec.Meta(min_length=1, max_length=100)]
Ref = Annotated[str, msgspec.Meta(min_length=1, max_length=500)]


class CampaignCommand(Command, frozen=True, kw_only=True):
    occurred_at: datetime | None = None


class DefineCampaign(CampaignCommand, frozen=True, kw_only=True, tag="campaign.define"):
    """The campaign's id is derived from `name` (`campaign_id_of`), so names are unique."""

    name: Name
    audience: Name
    channel: Label
    content_ref: Ref
    start: datetime | None = None
    end: datetime | None = None
    frequency_cap: FrequencyCap | None = None
    holdout_share: float = 0.0
    attribution_days: Annotated[int, msgspec.Meta(ge=1, le=366)] = 30


class LaunchCampaign(CampaignCommand, frozen=True, kw_only=True, tag="campaign.launch"):
    """Send to `members` (the audience snapshot, customer ids) now or at `occurred_at`.
    A repeated `send_id` decides nothing."""

    campaign_id: UUID
    members: list[UUID]
    send_id: UUID | None = None


class RecordResponse(CampaignCommand, frozen=True, kw_only=True, tag="campaign.record_response"):
    campaign_id: UUID
    customer_id: UUID
    kind: ResponseKind
    order_id: UUID | None = None


class RetireCampaign(CampaignCommand, frozen=True, kw_only=True, tag="campaign.retire"):
    campaign_id: UUID
    reason: Label | None = None
