"""Decisions on an offer: `decide(state, command, ..., at) -> events` (pure).

Presenting checks the rules of the ranking against the customer's facts (the handler folds
them from the log): a consented channel, a product on sale, nothing owned, returned or
declined. Accepting or declining an offer twice decides nothing; the other way round is an
error.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

from domain.events import DomainEvent
from domain.offers import commands as cmd
from domain.offers import errors as err
from domain.offers import events as ev
from domain.offers.rank import CustomerFacts, Product, owned
from domain.offers.state import OfferState


def _ensure_presented(state: OfferState, at: datetime) -> None:
    if not state.presented:
        raise err.OfferNotFound(state.offer_id)
    if state.last_occurred_at is not None and at < state.last_occurred_at:
        raise err.EventBeforeLast(state.offer_id, state.last_occurred_at, at)


def present(
    state: OfferState,
    c: cmd.PresentOffer,
    *,
    facts: CustomerFacts,
    products: Mapping[str, Product],
    customer_live: bool,
    at: datetime,
) -> list[DomainEvent]:
    if state.presented:
        raise err.OfferAlreadyPresented(state.offer_id)
    if not customer_live:
        raise err.CustomerNotLive(c.customer_id)
    if c.channel not in facts.channels:
        raise err.NoConsent(c.customer_id, c.channel)
    product = products.get(c.sku)
    if product is None or not product.on_sale:
        raise err.NotOnSale(c.sku)
    if c.sku in owned(facts, products):
        raise err.AlreadyOwned(c.customer_id, c.sku)
    if c.sku in facts.returned:
        raise err.ReturnedBefore(c.customer_id, c.sku)
    if c.sku in facts.declined:
        raise err.DeclinedBefore(c.customer_id, c.sku)
    return [
        ev.OfferPresented(
            customer_id=c.customer_id,
            sku=c.sku,
            channel=c.channel,
            reasons=list(c.reasons),
            score=c.score,
        )
    ]


def accept(state: OfferState, c: cmd.AcceptOffer, *, at: datetime) -> list[DomainEvent]:
    _ensure_presented(state, at)
    if state.status == "declined":
        raise err.OfferWasDeclined(state.offer_id)
    return [] if state.status == "accepted" else [ev.OfferAccepted()]


def decline(state: OfferState, c: cmd.DeclineOffer, *, at: datetime) -> list[DomainEvent]:
    _ensure_presented(state, at)
    if state.status == "accepted":
        raise err.OfferWasAccepted(state.offer_id)
    return [] if state.status == "declined" else [ev.OfferDeclined(reason=c.reason)]
