"""Commands on offers. `occurred_at` is business time; the engine's clock if absent."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated
from uuid import UUID

import msgspec

from domain.commands import Command
from domain.offers.events import Reason

Sku = Annotated[str, msgspec.Meta(min_length=1, max_length=100)]
Label = Annotated[str, msgspec.Meta(min_length=1, max_length=100)]
NonEmpty = Annotated[str, msgspec.Meta(min_length=1, max_length=500)]


class OfferCommand(Command, frozen=True, kw_only=True):
    occurred_at: datetime | None = None


class PresentOffer(OfferCommand, frozen=True, kw_only=True, tag="offer.present"):
    """Present `sku` to the customer through `channel` (email, phone, sms, post, ...), which
    needs the customer's consent for marketing."""

    offer_id: UUID | None = None
    customer_id: UUID
    sku: Sku
    channel: Label
    reasons: list[Reason] = []
    score: float = 0.0


class AcceptOffer(OfferCommand, frozen=True, kw_only=True, tag="offer.accept"):
    offer_id: UUID


class DeclineOffer(OfferCommand, frozen=True, kw_only=True, tag="offer.decline"):
    offer_id: UUID
    reason: NonEmpty | None = None
