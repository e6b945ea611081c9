"""Offers through the command bus and `recommend` over the views, on both backends."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID, uuid4

import pytest

from domain.errors import DomainError
from handlers.decision import CommandContext
from infra.clock import FixedClock
from infra.engine import Engine, open_engine
from infra.projection_db import projection_db
from infra.projector import open_runner
from projections.catalogue import all_projections
from projections.offers_view import recommend
from projections.runner import Runner

NOW = datetime(2026, 6, 1, 12, tzinfo=UTC)
PRICES = {
    "M-BEANS": ("machines", "449.00"),
    "M-BEANS-2": ("machines", "899.00"),
    "C-BEANS": ("coffee", "14.90"),
    "A-GRIND": ("accessories", "129.00"),
    "A-CUPS": ("accessories", "19.90"),
    "A-TAMP": ("accessories", "24.90"),
}


def at(days: int) -> str:
    return (NOW - timedelta(days=100) + timedelta(days=days)).isoformat()


def do(engine: Engine, command: str, /, command_id: str | None = None, **data: Any) -> Any:
    ctx = CommandContext(actor="employee:sales", channel="test", command_id=command_id)
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


def buy(engine: Engine, customer: UUID, day: int, *skus: str) -> UUID:
    order = uuid4()
    items = [
        {"sku": s, "quantity": 1, "unit_price": {"amount": PRICES[s][1], "currency": "EUR"}}
        for s in skus
    ]
    do(
        engine,
        "order.place",
        order_id=order,
        customer_id=customer,
        items=items,
        payment_method="card",
        occurred_at=at(day),
    )
    return order


def customer(engine: Engine, name: str, *consents: str) -> UUID:
    cid = uuid4()
    do(engine, "customer.register", customer_id=cid, name=name, occurred_at=at(0))
    for channel in consents:
        do(
            engine,
            "customer.grant_consent",
            customer_id=cid,
            consent_channel=channel,
            purpose="marketing",
            source="web form",
            occurred_at=at(0),
        )
    return cid


@pytest.fixture
def engine(store_url: str) -> Iterator[Engine]:
    with open_engine(store_url, env={}, clock=FixedClock(NOW)) as e:
        for sku, (category, price) in PRICES.items():
            do(
                e,
                "product.define",
                sku=sku,
                name=sku,
                category=category,
                list_price={"amount": price, "currency": "EUR"},
                occurred_at=at(0),
            )
        yield e


@pytest.fixture
def shop(engine: Engine) -> dict[str, UUID]:
    """Six customers bought machine, grinder and coffee together; cups sell alone; Ada has
    the machine only and consents to e-mail; Bob bought the same and consents to nothing."""
    for i in range(6):
        buyer = customer(engine, f"B{i}")
        buy(engine, buyer, 10 + i, "M-BEANS", "A-GRIND", "C-BEANS")
    for i in range(3):
        buy(engine, customer(engine, f"C{i}"), 20 + i, "A-CUPS")
    ada = customer(engine, "Ada", "email")
    buy(engine, ada, 30, "M-BEANS")
    bob = customer(engine, "Bob")
    buy(engine, bob, 30, "M-BEANS")
    return {"ada": ada, "bob": bob}


def ranked(engine: Engine, who: UUID) -> dict[str, Any]:
    with open_runner(engine) as runner:
        runner.catch_up()
        return {o.sku: o for o in recommend(runner.db, who, now=NOW, top=5)}


def test_recommend_offers_what_is_bought_together_with_reasons(
    engine: Engine, shop: dict[str, UUID]
) -> None:
    offers = ranked(engine, shop["ada"])
    assert "M-BEANS" not in offers  # owned
    assert list(offers)[:2] in (["A-GRIND", "C-BEANS"], ["C-BEANS", "A-GRIND"])
    grinder = offers["A-GRIND"]
    assert grinder.channel == "email"
    kinds = [r.kind for r in grinder.reasons]
    assert "bought_together" in kinds and "similar_customers" in kinds
    assert any("M-BEANS" in r.detail for r in grinder.reasons)
    assert grinder.score > offers.get("A-CUPS", grinder).score or "A-CUPS" not in offers
    assert ranked(engine, shop["bob"]) == {}  # no consent, no offers


def test_present_accept_decline_through_the_bus(engine: Engine, shop: dict[str, UUID]) -> None:
    ada = shop["ada"]
    offer = uuid4()
    result = do(
        engine,
        "offer.present",
        offer_id=offer,
        customer_id=ada,
        sku="A-GRIND",
        channel="email",
        reasons=[{"kind": "bought_together", "detail": "with M-BEANS"}],
        score=0.7,
    )
    assert [(s.id, s.version) for s in result.streams] == [(offer, 1)]
    do(engine, "offer.decline", offer_id=offer, reason="has one")
    assert not do(engine, "offer.decline", offer_id=offer).streams  # repeated: nothing
    refused(engine, "offer_was_declined", "offer.accept", offer_id=offer)
    assert "A-GRIND" not in ranked(engine, ada)  # declined: never again
    refused(
        engine, "declined_before", "offer.present", customer_id=ada, sku="A-GRIND", channel="email"
    )

    cups = uuid4()
    do(engine, "offer.present", offer_id=cups, customer_id=ada, sku="C-BEANS", channel="email")
    do(engine, "offer.accept", offer_id=cups)
    refused(engine, "offer_was_accepted", "offer.decline", offer_id=cups)
    events = engine.store.load(cups)
    assert [e.type for e in events] == ["offer.presented", "offer.accepted"]
    assert events[0].customer_id == ada and events[0].channel == "email"


def test_present_refuses_what_the_rules_forbid(engine: Engine, shop: dict[str, UUID]) -> None:
    ada, bob = shop["ada"], shop["bob"]
    refused(engine, "no_consent", "offer.present", customer_id=ada, sku="A-CUPS", channel="post")
    refused(engine, "no_consent", "offer.present", customer_id=bob, sku="A-CUPS", channel="email")
    refused(
        engine, "already_owned", "offer.present", customer_id=ada, sku="M-BEANS", channel="email"
    )
    refused(engine, "not_on_sale", "offer.present", customer_id=ada, sku="X-1", channel="email")
    refused(engine, "offer_not_found", "offer.accept", offer_id=uuid4())
    order = buy(engine, ada, 40, "A-TAMP")
    do(engine, "order.ship", order_id=order, occurred_at=at(41))
    do(engine, "order.deliver", order_id=order, occurred_at=at(42))
    do(
        engine,
        "order.return",
        order_id=order,
        items=[{"sku": "A-TAMP", "quantity": 1}],
        reason="not as expected",
        occurred_at=at(43),
    )
    refused(
        engine, "returned_before", "offer.present", customer_id=ada, sku="A-TAMP", channel="email"
    )
    assert "A-TAMP" not in ranked(engine, ada)


def test_a_worn_machine_is_offered_an_upgrade(engine: Engine, shop: dict[str, UUID]) -> None:
    """Through the equipment view's facts, once that view is among the projections."""
    if "equipment" not in {p.name for p in all_projections()}:
        pytest.skip("the equipment view is not registered: recommend runs without equipment")
    ada, machine = shop["ada"], uuid4()
    assert "M-BEANS-2" not in ranked(engine, ada)  # nobody bought it
    do(
        engine,
        "equipment.register",
        equipment_id=machine,
        customer_id=ada,
        model="M-BEANS",
        serial="SN-1",
        installed_at=at(30),
        expected_life_usage=100,
        occurred_at=at(30),
    )
    do(engine, "equipment.record_usage", equipment_id=machine, reading=90, occurred_at=at(90))
    upgrade = ranked(engine, ada)["M-BEANS-2"]
    assert [r.kind for r in upgrade.reasons] == ["upgrade"]
    assert "90%" in upgrade.reasons[0].detail


def test_recommend_without_the_equipment_view(engine: Engine, shop: dict[str, UUID]) -> None:
    views = [p for p in all_projections() if p.name != "equipment"]
    with Runner(projection_db(engine.store), engine.store, views, engine.clock) as runner:
        runner.setup()
        runner.catch_up()
        offers = recommend(runner.db, shop["ada"], now=NOW)
    assert {"A-GRIND", "C-BEANS"} <= {o.sku for o in offers}
