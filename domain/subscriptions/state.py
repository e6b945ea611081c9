"""A subscription folded from its stream, with the terms of its plans; revenue helpers (pure)."""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

import msgspec
from msgspec.structs import replace

from domain.events import DomainEvent
from domain.money import Money
from domain.streams import fold_events
from domain.subscriptions import events as ev

MONTHS_PER = {"month": 1, "year": 12}


class PlanTerm(msgspec.Struct, frozen=True, kw_only=True):
    """One plan over the half-open interval [from_at, to_at); `to_at` None while it runs."""

    plan: str
    price: Money
    period: ev.Period
    from_at: datetime
    to_at: datetime | None = None

    def covers(self, at: datetime) -> bool:
        return self.from_at <= at and (self.to_at is None or at < self.to_at)


class SubscriptionState(msgspec.Struct, frozen=True, kw_only=True):
    subscription_id: UUID
    version: int = 0
    customer_id: UUID | None = None
    terms: tuple[PlanTerm, ...] = ()
    started_at: datetime | None = None
    cancelled_at: datetime | None = None
    ends_at: datetime | None = None
    cancel_reason: str | None = None
    last_occurred_at: datetime | None = None

    @property
    def started(self) -> bool:
        return self.started_at is not None

    @property
    def cancelled(self) -> bool:
        return self.cancelled_at is not None

    @property
    def current(self) -> PlanTerm:
        """The latest term (the one running, or the last one before the end)."""
        return self.terms[-1]


def term_at(state: SubscriptionState, at: datetime) -> PlanTerm | None:
    """The plan the customer had at business time `at`, or None (not yet, or no longer)."""
    return next((term for term in state.terms if term.covers(at)), None)


def is_active(state: SubscriptionState, at: datetime) -> bool:
    return term_at(state, at) is not None


def monthly_revenue(state: SubscriptionState, at: datetime) -> Money:
    """The price per month of the plan at `at`: a yearly price counts 1/12 (unrounded, so sums
    stay exact; round for display). Zero in the subscription's currency when not active."""
    if not state.terms:
        return Money.zero("XXX")
    term = term_at(state, at)
    if term is None:
        return Money.zero(state.current.price.currency)
    return Money(amount=term.price.amount / MONTHS_PER[term.period], currency=term.price.currency)


def _close(terms: tuple[PlanTerm, ...], at: datetime) -> tuple[PlanTerm, ...]:
    return (*terms[:-1], replace(terms[-1], to_at=at)) if terms else terms


def evolve(state: SubscriptionState, event: DomainEvent, at: datetime) -> SubscriptionState:
    """Apply one event of the subscription's stream, which happened at business time `at`."""
    match event:
        case ev.SubscriptionStarted():
            term = PlanTerm(plan=event.plan, price=event.price, period=event.period, from_at=at)
            return replace(state, customer_id=event.customer_id, terms=(term,), started_at=at)
        case ev.PlanChanged():
            term = PlanTerm(
                plan=event.new_plan, price=event.new_price, period=event.new_period, from_at=at
            )
            return replace(state, terms=(*_close(state.terms, at), term))
        case ev.SubscriptionCancelled():
            return replace(
                state,
                terms=_close(state.terms, event.effective_at),
                cancelled_at=at,
                ends_at=event.effective_at,
                cancel_reason=event.reason,
            )
    return state


def fold(
    subscription_id: UUID,
    events: list[tuple[int, datetime, DomainEvent]],
    start: SubscriptionState | None = None,
) -> SubscriptionState:
    """State after (version, occurred_at, payload) triples in version order, from `start`
    (a state folded earlier, whose version the first triple follows) or from nothing."""
    start = start if start is not None else SubscriptionState(subscription_id=subscription_id)
    return fold_events(evolve, start, events)
