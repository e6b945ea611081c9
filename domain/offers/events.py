"""Events of an offer's stream. The reasons say why it was offered (no personal data); the
reason a customer gives for declining is free text, so personal."""

from __future__ import annotations

from typing import Annotated, Literal
from uuid import UUID

import msgspec

from domain.events import EVENTS, PERSONAL, DomainEvent

ReasonKind = Literal[
    "bought_together", "similar_customers", "reorder", "upgrade", "better_plan", "popular"
]
OfferStatus = Literal["presented", "accepted", "declined"]


class Reason(msgspec.Struct, frozen=True, kw_only=True):
    """One reason for an offer: its kind and a sentence a person can read."""

    kind: ReasonKind
    detail: str


@EVENTS.register
class OfferPresented(DomainEvent, frozen=True, kw_only=True, tag="offer.presented"):
    """`channel` is the consented channel it went through; `score` the ranking's score."""

    customer_id: UUID
    sku: str
    channel: str
    reasons: list[Reason] = []
    score: float = 0.0


@EVENTS.register
class OfferAccepted(DomainEvent, frozen=True, kw_only=True, tag="offer.accepted"):
    pass


@EVENTS.register
class OfferDeclined(DomainEvent, frozen=True, kw_only=True, tag="offer.declined"):
    reason: Annotated[str | None, PERSONAL] = None
