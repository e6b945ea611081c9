"""Decisions on a subscription: `decide(state, command, ..., at) -> events` (pure).

`known_plans` holds the skus of the active plans the handler loaded from the catalogue.
"""

from __future__ import annotations

from collections.abc import Set as AbstractSet
from datetime import UTC, datetime

from domain.events import DomainEvent
from domain.money import Money
from domain.subscriptions import commands as cmd
from domain.subscriptions import errors as err
from domain.subscriptions import events as ev
from domain.subscriptions.state import SubscriptionState


def _ensure_in_order(state: SubscriptionState, at: datetime) -> None:
    if state.last_occurred_at is not None and at < state.last_occurred_at:
        raise err.EventBeforeLast(state.subscription_id, state.last_occurred_at, at)


def ensure_running(state: SubscriptionState, at: datetime) -> None:
    """Started, not cancelled (even with an end still ahead), and `at` not before the last."""
    if not state.started:
        raise err.SubscriptionNotFound(state.subscription_id)
    if state.cancelled:
        raise err.SubscriptionCancelled(state.subscription_id)
    _ensure_in_order(state, at)


def _check_plan(plan: str, price: Money, known_plans: AbstractSet[str]) -> None:
    if plan not in known_plans:
        raise err.UnknownPlan(plan)
    if not price.amount.is_finite() or price.amount < 0:
        raise err.InvalidPrice(f"price of {plan!r} is {price.amount}")


def start(
    state: SubscriptionState,
    c: cmd.StartSubscription,
    *,
    known_plans: AbstractSet[str],
    customer_live: bool,
    at: datetime,
) -> list[DomainEvent]:
    if state.started:
        raise err.AlreadyStarted(state.subscription_id)
    if not customer_live:
        raise err.CustomerNotLive(c.customer_id)
    _check_plan(c.plan, c.price, known_plans)
    return [
        ev.SubscriptionStarted(
            customer_id=c.customer_id, plan=c.plan, price=c.price, period=c.period
        )
    ]


def change_plan(
    state: SubscriptionState,
    c: cmd.ChangePlan,
    *,
    known_plans: AbstractSet[str],
    at: datetime,
) -> list[DomainEvent]:
    """A new plan from `at` on; the same plan at another price is not a plan change."""
    ensure_running(state, at)
    old = state.current
    if c.plan == old.plan:
        raise err.SamePlan(c.plan)
    _check_plan(c.plan, c.price, known_plans)
    if c.price.currency != old.price.currency:
        raise err.InvalidPrice(f"a subscription keeps its currency {old.price.currency}")
    return [
        ev.PlanChanged(
            old_plan=old.plan,
            new_plan=c.plan,
            old_price=old.price,
            new_price=c.price,
            old_period=old.period,
            new_period=c.period or old.period,
        )
    ]


def cancel(
    state: SubscriptionState, c: cmd.CancelSubscription, *, at: datetime
) -> list[DomainEvent]:
    """The end of service may lie ahead (end of the paid period) but not before the last event."""
    ensure_running(state, at)
    effective_at = c.effective_at if c.effective_at is not None else at
    if effective_at.tzinfo is None:  # naive means UTC, as for business time
        effective_at = effective_at.replace(tzinfo=UTC)
    _ensure_in_order(state, effective_at)
    return [ev.SubscriptionCancelled(reason=c.reason, effective_at=effective_at)]
