"""Named errors for every invariant of a subscription; `code` is stable for replies and logs."""

from __future__ import annotations

from uuid import UUID

from domain import errors
from domain.errors import DomainError


class SubscriptionError(DomainError):
    code = "subscription_error"


class SubscriptionNotFound(SubscriptionError):
    code = "subscription_not_found"

    def __init__(self, subscription_id: UUID) -> None:
        super().__init__(f"subscription {subscription_id} was not started")
        self.subscription_id = subscription_id


class AlreadyStarted(SubscriptionError):
    code = "subscription_already_started"

    def __init__(self, subscription_id: UUID) -> None:
        super().__init__(f"subscription {subscription_id} is already started")
        self.subscription_id = subscription_id


class SubscriptionCancelled(SubscriptionError):
    code = "subscription_cancelled"

    def __init__(self, subscription_id: UUID) -> None:
        super().__init__(f"subscription {subscription_id} was cancelled; start a new one")
        self.subscription_id = subscription_id


class SamePlan(SubscriptionError):
    code = "same_plan"

    def __init__(self, plan: str) -> None:
        super().__init__(f"the subscription is already on plan {plan!r}")
        self.plan = plan


class UnknownPlan(SubscriptionError):
    code = "unknown_plan"

    def __init__(self, plan: str) -> None:
        super().__init__(f"plan {plan!r} is not an active product")
        self.plan = plan


class InvalidPrice(SubscriptionError):
    """Negative, not a number, or in another currency than the subscription's."""

    code = "invalid_price"

    def __init__(self, message: str) -> None:
        super().__init__(message)


class CustomerNotLive(SubscriptionError):
    code = "customer_not_live"

    def __init__(self, customer_id: UUID) -> None:
        super().__init__(f"customer {customer_id} is unknown, merged or forgotten")
        self.customer_id = customer_id


class EventBeforeLast(errors.EventBeforeLast, SubscriptionError):
    """A lifecycle stream moves forward in business time."""
