"""An offer as decisions and views need it, folded from its stream (pure)."""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

import msgspec
from msgspec.structs import replace

from domain.events import DomainEvent
from domain.offers import events as ev
from domain.streams import fold_events


class OfferState(msgspec.Struct, frozen=True, kw_only=True):
    offer_id: UUID
    version: int = 0
    customer_id: UUID | None = None
    sku: str | None = None
    channel: str | None = None
    score: float = 0.0
    status: ev.OfferStatus | None = None
    presented_at: datetime | None = None
    decided_at: datetime | None = None
    decline_reason: str | None = None
    last_occurred_at: datetime | None = None

    @property
    def presented(self) -> bool:
        return self.status is not None


def evolve(state: OfferState, event: DomainEvent, at: datetime) -> OfferState:
    match event:
        case ev.OfferPresented():
            return replace(
                state,
                customer_id=event.customer_id,
                sku=event.sku,
                channel=event.channel,
                score=event.score,
                status="presented",
                presented_at=at,
            )
        case ev.OfferAccepted():
            return replace(state, status="accepted", decided_at=at)
        case ev.OfferDeclined():
            return replace(state, status="declined", decided_at=at, decline_reason=event.reason)
    return state


def fold(
    offer_id: UUID,
    events: list[tuple[int, datetime, DomainEvent]],
    start: OfferState | None = None,
) -> OfferState:
    """State after (version, occurred_at, payload) triples in version order, from `start`
    (a state folded earlier, whose version the first triple follows) or from nothing."""
    start = start if start is not None else OfferState(offer_id=offer_id)
    return fold_events(evolve, start, events)
