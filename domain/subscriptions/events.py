"""Events of a subscription's stream; each term of a plan starts at its event's business time."""

from __future__ import annotations

from datetime import datetime
from typing import Literal
from uuid import UUID

from domain.events import EVENTS, DomainEvent
from domain.money import Money

Period = Literal["month", "year"]


@EVENTS.register
class SubscriptionStarted(DomainEvent, frozen=True, kw_only=True, tag="subscription.started"):
    customer_id: UUID
    plan: str
    price: Money
    period: Period


@EVENTS.register
class PlanChanged(DomainEvent, frozen=True, kw_only=True, tag="subscription.plan_changed"):
    """The old term ends and the new one starts at this event's business time."""

    old_plan: str
    new_plan: str
    old_price: Money
    new_price: Money
    old_period: Period
    new_period: Period


@EVENTS.register
class SubscriptionCancelled(DomainEvent, frozen=True, kw_only=True, tag="subscription.cancelled"):
    """Decided at the event's business time; the service stops at `effective_at`."""

    reason: str
    effective_at: datetime
