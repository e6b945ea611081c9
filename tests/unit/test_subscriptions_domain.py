"""decide/evolve of subscriptions: start, plan changes with their history, cancel (pure)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from uuid import uuid4

import pytest

from domain.events import DomainEvent
from domain.money import Money
from domain.subscriptions import commands as cmd
from domain.subscriptions import decide
from domain.subscriptions import errors as err
from domain.subscriptions import events as ev
from domain.subscriptions.state import (
    PlanTerm,
    SubscriptionState,
    fold,
    is_active,
    monthly_revenue,
    term_at,
)

JAN = datetime(2026, 1, 1, tzinfo=UTC)
MAR = datetime(2026, 3, 1, tzinfo=UTC)
JUN = datetime(2026, 6, 1, tzinfo=UTC)
PLANS = frozenset({"basic", "plus", "pro"})


def eur(x: str) -> Money:
    return Money(amount=Decimal(x), currency="EUR")


def apply(state: SubscriptionState, events: list[DomainEvent], at: datetime) -> SubscriptionState:
    return fold(
        state.subscription_id,
        [(state.version + i, at, e) for i, e in enumerate(events, 1)],
        state,
    )


def started(plan: str = "basic", price: str = "10", period: str = "month") -> SubscriptionState:
    state = SubscriptionState(subscription_id=uuid4())
    c = cmd.StartSubscription(
        customer_id=uuid4(),
        plan=plan,
        price=eur(price),
        period=period,  # type: ignore[arg-type]
    )
    return apply(state, decide.start(state, c, known_plans=PLANS, customer_live=True, at=JAN), JAN)


def changed(
    state: SubscriptionState, plan: str, price: str, at: datetime, period: str | None = None
) -> SubscriptionState:
    c = cmd.ChangePlan(
        subscription_id=state.subscription_id,
        plan=plan,
        price=eur(price),
        period=period,  # type: ignore[arg-type]
    )
    return apply(state, decide.change_plan(state, c, known_plans=PLANS, at=at), at)


def cancelled(
    state: SubscriptionState, at: datetime, effective_at: datetime | None = None
) -> SubscriptionState:
    c = cmd.CancelSubscription(
        subscription_id=state.subscription_id, reason="too dear", effective_at=effective_at
    )
    return apply(state, decide.cancel(state, c, at=at), at)


class TestStart:
    def test_starts_a_first_term(self) -> None:
        state = SubscriptionState(subscription_id=uuid4())
        c = cmd.StartSubscription(customer_id=uuid4(), plan="basic", price=eur("10"))
        events = decide.start(state, c, known_plans=PLANS, customer_live=True, at=JAN)
        assert events == [
            ev.SubscriptionStarted(
                customer_id=c.customer_id, plan="basic", price=eur("10"), period="month"
            )
        ]
        s = apply(state, events, JAN)
        assert (s.customer_id, s.started_at, s.last_occurred_at) == (c.customer_id, JAN, JAN)
        assert s.terms == (PlanTerm(plan="basic", price=eur("10"), period="month", from_at=JAN),)

    def test_twice_is_an_error(self) -> None:
        s = started()
        c = cmd.StartSubscription(customer_id=uuid4(), plan="basic", price=eur("10"))
        with pytest.raises(err.AlreadyStarted):
            decide.start(s, c, known_plans=PLANS, customer_live=True, at=MAR)

    @pytest.mark.parametrize(
        ("plan", "price", "live", "error"),
        [
            ("gold", "10", True, err.UnknownPlan),
            ("basic", "-1", True, err.InvalidPrice),
            ("basic", "10", False, err.CustomerNotLive),
        ],
    )
    def test_refusals(self, plan: str, price: str, live: bool, error: type[Exception]) -> None:
        state = SubscriptionState(subscription_id=uuid4())
        c = cmd.StartSubscription(customer_id=uuid4(), plan=plan, price=eur(price))
        with pytest.raises(error):
            decide.start(state, c, known_plans=PLANS, customer_live=live, at=JAN)


class TestChangePlan:
    def test_the_event_names_old_and_new(self) -> None:
        s = started()
        c = cmd.ChangePlan(
            subscription_id=s.subscription_id, plan="pro", price=eur("120"), period="year"
        )
        assert decide.change_plan(s, c, known_plans=PLANS, at=MAR) == [
            ev.PlanChanged(
                old_plan="basic",
                new_plan="pro",
                old_price=eur("10"),
                new_price=eur("120"),
                old_period="month",
                new_period="year",
            )
        ]

    def test_the_history_of_plans_keeps_from_and_to(self) -> None:
        s = changed(changed(started(), "plus", "15", MAR), "pro", "20", JUN)
        assert [(t.plan, t.price, t.period, t.from_at, t.to_at) for t in s.terms] == [
            ("basic", eur("10"), "month", JAN, MAR),
            ("plus", eur("15"), "month", MAR, JUN),
            ("pro", eur("20"), "month", JUN, None),
        ]
        assert term_at(s, MAR - timedelta(seconds=1)).plan == "basic"  # type: ignore[union-attr]
        assert term_at(s, MAR).plan == "plus"  # type: ignore[union-attr]

    def test_the_same_plan_is_no_change(self) -> None:
        with pytest.raises(err.SamePlan) as info:
            changed(started(), "basic", "12", MAR)
        assert info.value.code == "same_plan"

    def test_unknown_plan(self) -> None:
        with pytest.raises(err.UnknownPlan) as info:
            changed(started(), "gold", "12", MAR)
        assert info.value.plan == "gold"

    def test_the_currency_stays(self) -> None:
        s = started()
        c = cmd.ChangePlan(
            subscription_id=s.subscription_id,
            plan="plus",
            price=Money(amount=Decimal(12), currency="USD"),
        )
        with pytest.raises(err.InvalidPrice):
            decide.change_plan(s, c, known_plans=PLANS, at=MAR)

    def test_not_started_cancelled_or_back_in_time(self) -> None:
        with pytest.raises(err.SubscriptionNotFound):
            changed(SubscriptionState(subscription_id=uuid4()), "plus", "15", MAR)
        with pytest.raises(err.SubscriptionCancelled):
            changed(cancelled(started(), MAR, JUN), "plus", "15", MAR)
        with pytest.raises(err.EventBeforeLast) as info:
            changed(changed(started(), "plus", "15", MAR), "pro", "20", MAR - timedelta(days=1))
        assert info.value.last == MAR and info.value.code == "event_before_last"


class TestCancel:
    def test_effective_now_by_default(self) -> None:
        s = cancelled(started(), MAR)
        assert (s.cancelled_at, s.ends_at, s.cancel_reason) == (MAR, MAR, "too dear")
        assert s.terms[-1].to_at == MAR
        assert is_active(s, MAR - timedelta(seconds=1)) and not is_active(s, MAR)

    def test_the_end_may_lie_ahead(self) -> None:
        s = cancelled(started(), MAR, JUN)
        assert (s.cancelled_at, s.ends_at) == (MAR, JUN)
        assert is_active(s, MAR + timedelta(days=30)) and not is_active(s, JUN)

    def test_a_naive_end_is_utc(self) -> None:
        s = cancelled(started(), MAR, datetime(2026, 6, 1))
        assert s.ends_at == JUN

    def test_once(self) -> None:
        with pytest.raises(err.SubscriptionCancelled):
            cancelled(cancelled(started(), MAR), JUN)

    def test_not_before_the_last_event(self) -> None:
        s = changed(started(), "plus", "15", MAR)
        with pytest.raises(err.EventBeforeLast):
            cancelled(s, MAR - timedelta(days=1))
        with pytest.raises(err.EventBeforeLast):
            cancelled(s, JUN, effective_at=MAR - timedelta(days=1))

    def test_not_started(self) -> None:
        with pytest.raises(err.SubscriptionNotFound):
            cancelled(SubscriptionState(subscription_id=uuid4()), MAR)


class TestMonthlyRevenue:
    def test_a_monthly_price_counts_whole(self) -> None:
        assert monthly_revenue(started(), MAR) == eur("10")

    def test_a_yearly_price_counts_a_twelfth(self) -> None:
        s = started("pro", "120", "year")
        assert monthly_revenue(s, MAR) == eur("10")
        assert monthly_revenue(started("pro", "100", "year"), MAR).rounded() == eur("8.33")

    def test_it_follows_the_plan_of_the_moment_and_stops_at_the_end(self) -> None:
        s = cancelled(changed(started(), "pro", "240", MAR, period="year"), MAR, JUN)
        assert monthly_revenue(s, JAN - timedelta(days=1)) == eur("0")
        assert monthly_revenue(s, JAN) == eur("10")
        assert monthly_revenue(s, MAR) == eur("20")
        assert monthly_revenue(s, JUN) == eur("0")

    def test_nothing_started_is_nothing_earned(self) -> None:
        assert monthly_revenue(SubscriptionState(subscription_id=uuid4()), MAR).amount == 0


def test_evolve_ignores_events_of_other_streams() -> None:
    from domain.customers.events import StageChanged
    from domain.subscriptions.state import evolve

    s = started()
    assert evolve(s, StageChanged(stage="customer", previous="lead"), JAN) is s
