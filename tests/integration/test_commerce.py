"""Products, pipeline, orders and subscriptions through the command bus, on both backends."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID, uuid4

import pytest

from domain.errors import DomainError
from domain.orders.state import fold as fold_order
from domain.orders.state import net_total
from handlers.decision import CommandContext
from infra.clock import FixedClock
from infra.engine import Engine, open_engine

CTX = CommandContext(actor="employee:sales", channel="test")
NOW = datetime(2026, 6, 1, 12, tzinfo=UTC)


def eur(amount: str) -> dict[str, str]:
    return {"amount": amount, "currency": "EUR"}


@pytest.fixture
def engine(store_url: str) -> Iterator[Engine]:
    with open_engine(store_url, env={}, clock=FixedClock(NOW)) as e:
        yield e


def do(engine: Engine, command: str, /, command_id: str | None = None, **data: Any) -> Any:
    ctx = CommandContext(actor=CTX.actor, channel=CTX.channel, command_id=command_id)
    return engine.bus.execute_json(
        command, {k: str(v) if isinstance(v, UUID) else v for k, v in data.items()}, ctx
    )


def refused(engine: Engine, code: str, command: str, /, **data: Any) -> None:
    """The command fails with this error code and appends nothing."""
    head = engine.store.head()
    with pytest.raises(DomainError) as caught:
        do(engine, command, **data)
    assert caught.value.code == code, caught.value
    assert engine.store.head() == head


def at(days: int) -> str:
    return (NOW - timedelta(days=100) + timedelta(days=days)).isoformat()


@pytest.fixture
def shop(engine: Engine) -> dict[str, UUID]:
    customer = uuid4()
    do(engine, "customer.register", customer_id=customer, name="Ada")
    do(
        engine,
        "product.define",
        sku="COF-1",
        name="Coffee machine",
        category="machines",
        list_price=eur("249.00"),
    )
    do(
        engine,
        "product.define",
        sku="BEAN-1",
        name="Beans",
        category="coffee",
        list_price=eur("12.50"),
    )
    do(
        engine,
        "product.define",
        sku="FLAT-M",
        name="Flat rate",
        category="tariffs",
        kind="plan",
        billing_period="month",
        list_price=eur("19.99"),
    )
    do(
        engine,
        "product.define",
        sku="FLAT-L",
        name="Flat rate large",
        category="tariffs",
        kind="plan",
        billing_period="month",
        list_price=eur("29.99"),
    )
    do(
        engine,
        "pipeline.define",
        name="sales",
        stages=[
            {"name": "interest", "probability": "0.1"},
            {"name": "quote", "probability": "0.5"},
            {"name": "negotiation", "probability": "0.8"},
        ],
    )
    return {"customer": customer}


ITEMS = [
    {"sku": "COF-1", "quantity": 1, "unit_price": eur("249.00"), "discount": "0.1"},
    {"sku": "BEAN-1", "quantity": 4, "unit_price": eur("12.50")},
]


def test_from_first_interest_to_a_paid_order_with_a_return(
    engine: Engine, shop: dict[str, UUID]
) -> None:
    customer, deal, order = shop["customer"], uuid4(), uuid4()
    do(
        engine,
        "deal.open",
        deal_id=deal,
        pipeline="sales",
        customer_id=customer,
        lead_source="fair",
        channel="meeting",
        products=["COF-1"],
        value=eur("250"),
        occurred_at=at(0),
    )
    do(engine, "deal.move", deal_id=deal, to_stage="quote", occurred_at=at(3))
    do(
        engine,
        "deal.send_quote",
        deal_id=deal,
        quote_number="Q-1",
        amount=eur("274.10"),
        valid_until="2026-12-31",
        occurred_at=at(4),
    )
    result = do(
        engine,
        "deal.win",
        deal_id=deal,
        order_id=order,
        items=ITEMS,
        payment_method="invoice",
        occurred_at=at(10),
    )
    assert {s.id for s in result.streams} == {deal, order}  # one command, both streams
    do(
        engine,
        "order.issue_invoice",
        order_id=order,
        number="INV-1",
        due_date="2026-03-15",
        occurred_at=at(10),
    )
    do(engine, "order.pay", order_id=order, amount=eur("100.00"), occurred_at=at(12))
    do(engine, "order.pay", order_id=order, amount=eur("174.10"), occurred_at=at(20))
    do(engine, "order.ship", order_id=order, occurred_at=at(21))
    do(
        engine,
        "order.return",
        order_id=order,
        items=[{"sku": "BEAN-1", "quantity": 1}],
        reason="damaged",
        occurred_at=at(30),
    )
    types = [e.type for e in engine.store.read_stream(order)]
    assert types == [
        "order.placed",
        "order.invoice_issued",
        "order.payment_received",
        "order.payment_received",
        "order.paid",
        "order.shipped",
        "order.returned",
    ]
    state = fold_order(
        order, [(e.version, e.occurred_at, e.payload) for e in engine.store.read_stream(order)]
    )
    assert str(state.total) == "274.10 EUR" and str(net_total(state)) == "261.60 EUR"
    deal_events = engine.store.read_stream(deal)
    assert [e.type for e in deal_events][-1] == "deal.won"
    assert all(e.customer_id == customer for e in deal_events + engine.store.read_stream(order))


def test_a_subscription_changes_plan_and_ends(engine: Engine, shop: dict[str, UUID]) -> None:
    sub = uuid4()
    do(
        engine,
        "subscription.start",
        subscription_id=sub,
        customer_id=shop["customer"],
        plan="FLAT-M",
        price=eur("19.99"),
        occurred_at=at(0),
    )
    do(
        engine,
        "subscription.change_plan",
        subscription_id=sub,
        plan="FLAT-L",
        price=eur("29.99"),
        occurred_at=at(40),
    )
    do(engine, "subscription.cancel", subscription_id=sub, reason="moving", occurred_at=at(80))
    assert [e.type for e in engine.store.read_stream(sub)] == [
        "subscription.started",
        "subscription.plan_changed",
        "subscription.cancelled",
    ]
    refused(
        engine,
        "subscription_cancelled",
        "subscription.change_plan",
        subscription_id=sub,
        plan="FLAT-M",
        price=eur("19.99"),
        occurred_at=at(90),
    )
    refused(
        engine,
        "unknown_plan",
        "subscription.start",
        customer_id=shop["customer"],
        plan="COF-1",
        price=eur("1"),
        occurred_at=at(0),
    )


def test_bad_input_gets_a_typed_error_and_appends_nothing(
    engine: Engine, shop: dict[str, UUID]
) -> None:
    customer, order, deal = shop["customer"], uuid4(), uuid4()
    refused(
        engine,
        "unknown_sku",
        "order.place",
        order_id=order,
        customer_id=customer,
        items=[{"sku": "NOPE", "quantity": 1, "unit_price": eur("1")}],
        payment_method="card",
    )
    do(
        engine,
        "order.place",
        order_id=order,
        customer_id=customer,
        items=ITEMS,
        payment_method="card",
        occurred_at=at(5),
    )
    refused(
        engine,
        "not_shipped_yet",
        "order.return",
        order_id=order,
        items=[{"sku": "BEAN-1", "quantity": 1}],
        reason="x",
        occurred_at=at(6),
    )
    do(engine, "order.ship", order_id=order, occurred_at=at(6))
    refused(
        engine,
        "return_exceeds_purchase",
        "order.return",
        order_id=order,
        items=[{"sku": "BEAN-1", "quantity": 5}],
        reason="x",
        occurred_at=at(7),
    )
    refused(engine, "event_before_last", "order.deliver", order_id=order, occurred_at=at(1))
    other = uuid4()
    do(
        engine,
        "order.place",
        order_id=other,
        customer_id=customer,
        items=ITEMS,
        payment_method="card",
        occurred_at=at(5),
    )
    do(engine, "order.cancel", order_id=other, reason="changed mind", occurred_at=at(6))
    refused(
        engine, "order_cancelled", "order.pay", order_id=other, amount=eur("10"), occurred_at=at(7)
    )
    # A deal whose order would be refused is not won either: one transaction or nothing.
    do(
        engine,
        "deal.open",
        deal_id=deal,
        pipeline="sales",
        customer_id=customer,
        value=eur("5"),
        occurred_at=at(0),
    )
    refused(
        engine,
        "unknown_sku",
        "deal.win",
        deal_id=deal,
        payment_method="card",
        items=[{"sku": "NOPE", "quantity": 1, "unit_price": eur("5")}],
        occurred_at=at(2),
    )
    refused(
        engine, "unknown_stage", "deal.move", deal_id=deal, to_stage="nowhere", occurred_at=at(3)
    )
    refused(
        engine,
        "customer_not_found",
        "deal.open",
        pipeline="sales",
        customer_id=uuid4(),
        value=eur("5"),
    )
    refused(
        engine,
        "pipeline_not_found",
        "deal.open",
        pipeline="nope",
        customer_id=customer,
        value=eur("5"),
    )


def test_a_repeated_order_command_appends_nothing(engine: Engine, shop: dict[str, UUID]) -> None:
    first = do(
        engine,
        "order.place",
        command_id="web-order-77",
        customer_id=shop["customer"],
        items=ITEMS,
        payment_method="card",
    )
    head = engine.store.head()
    again = do(
        engine,
        "order.place",
        command_id="web-order-77",
        customer_id=shop["customer"],
        items=ITEMS,
        payment_method="card",
    )
    assert again == first and engine.store.head() == head
