"""Commands on subscriptions. `occurred_at` is business time; the engine's clock if absent."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated
from uuid import UUID

import msgspec

from domain.commands import Command
from domain.money import Money
from domain.subscriptions.events import Period

Sku = Annotated[str, msgspec.Meta(min_length=1, max_length=100)]
NonEmpty = Annotated[str, msgspec.Meta(min_length=1, max_length=500)]


class SubscriptionCommand(Command, frozen=True, kw_only=True):
    occurred_at: datetime | None = None


class StartSubscription(SubscriptionCommand, frozen=True, kw_only=True, tag="subscription.start"):
    """The subscription starts at `occurred_at`."""

    subscription_id: UUID | None = None
    customer_id: UUID
    plan: Sku
    price: Money
    period: Period = "month"


class ChangePlan(SubscriptionCommand, frozen=True, kw_only=True, tag="subscription.change_plan"):
    """The new plan's term starts at `occurred_at`; `period` defaults to the current one."""

    subscription_id: UUID
    plan: Sku
    price: Money
    period: Period | None = None


class CancelSubscription(SubscriptionCommand, frozen=True, kw_only=True, tag="subscription.cancel"):
    """`effective_at` (the end of service) defaults to the cancellation's business time."""

    subscription_id: UUID
    reason: NonEmpty
    effective_at: datetime | None = None
