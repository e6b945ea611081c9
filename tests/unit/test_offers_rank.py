"""The pure ranking of next best offers (a property test over random customers and
catalogues, and examples of each reason) and decide/evolve of offers."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from uuid import UUID, uuid4

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from domain.events import DomainEvent
from domain.offers import commands as cmd
from domain.offers import decide
from domain.offers import errors as err
from domain.offers import events as ev
from domain.offers.rank import (
    CustomerFacts,
    Equipment,
    Offer,
    Product,
    Purchase,
    population,
    rank,
)
from domain.offers.state import OfferState, fold

NOW = datetime(2026, 5, 1, tzinfo=UTC)
CATEGORIES = {"machines": "good", "coffee": "good", "accessories": "good", "service": "service"}
CHANNELS = ("email", "sms", "phone", "post", "fax")
ORDERS = [UUID(int=i) for i in range(1, 9)]


@st.composite
def catalogues(draw: st.DrawFn) -> dict[str, Product]:
    n = draw(st.integers(1, 14))
    products = {}
    for i in range(n):
        category = draw(st.sampled_from(sorted(CATEGORIES)))
        products[f"S{i}"] = Product(
            sku=f"S{i}",
            category=category,
            kind=CATEGORIES[category],
            price=Decimal(draw(st.integers(1, 900))),
            currency="EUR",
            on_sale=draw(st.booleans() | st.just(True)),
        )
    for i, (price, period) in enumerate(
        draw(
            st.lists(
                st.sampled_from([("20", "month"), ("35", "month"), ("400", "year")]),
                max_size=3,
                unique=True,
            )
        )
    ):
        products[f"P{i}"] = Product(
            sku=f"P{i}",
            category="tariffs",
            kind="plan",
            price=Decimal(price),
            currency="EUR",
            period=period,
        )
    return products


@st.composite
def cases(draw: st.DrawFn) -> tuple[CustomerFacts, dict[str, Product], list[list[str]], int]:
    products = draw(catalogues())
    skus = sorted(products)
    some = st.lists(st.sampled_from(skus), max_size=6, unique=True)
    purchases = tuple(
        Purchase(
            order_id=draw(st.sampled_from(ORDERS)),
            sku=sku,
            at=NOW - timedelta(days=draw(st.integers(0, 700))),
            quantity=draw(st.integers(0, 3)),
            amount=Decimal(draw(st.integers(0, 300))),
        )
        for sku in draw(some)
    )
    plans = [s for s in skus if products[s].kind == "plan"]
    facts = CustomerFacts(
        customer_id=uuid4(),
        purchases=purchases,
        returned=frozenset(draw(some)),
        declined=frozenset(draw(some)),
        equipment=tuple(
            Equipment(model=m, wear=draw(st.none() | st.floats(0, 2))) for m in draw(some)
        ),
        plan=draw(st.sampled_from([None, *plans])),
        coffee_units_per_month=draw(st.floats(0, 50)),
        coffee_spend_per_month=Decimal(draw(st.integers(0, 200))),
        channels=tuple(draw(st.lists(st.sampled_from(CHANNELS), max_size=3, unique=True))),
    )
    baskets = draw(st.lists(st.lists(st.sampled_from(skus), min_size=1, max_size=5), max_size=40))
    return facts, products, baskets, draw(st.integers(0, 8))


def never_offered(facts: CustomerFacts, products: dict[str, Product]) -> set[str]:
    """The rule, written again here: durable goods kept (coffee and services are re-bought),
    equipment, the current plan, returned, declined, not on sale."""
    durable = {
        p.sku
        for p in facts.purchases
        if p.quantity > 0
        and (
            p.sku not in products
            or (products[p.sku].category != "coffee" and products[p.sku].kind != "service")
        )
    }
    return (
        durable
        | {e.model for e in facts.equipment}
        | ({facts.plan} if facts.plan else set())
        | facts.returned
        | facts.declined
        | {s for s, p in products.items() if not p.on_sale}
    )


@settings(max_examples=300, deadline=None)
@given(cases())
def test_offers_never_break_the_rules(
    case: tuple[CustomerFacts, dict[str, Product], list[list[str]], int],
) -> None:
    facts, products, baskets, top = case
    stats = population((i % 5, basket) for i, basket in enumerate(baskets))
    offers = rank(facts, stats, products, now=NOW, top=top)
    if not facts.channels:
        assert offers == []
    assert len(offers) <= top
    forbidden = never_offered(facts, products)
    for offer in offers:
        assert offer.sku in products
        assert offer.sku not in forbidden
        assert offer.channel in facts.channels
        assert offer.reasons and offer.score > 0
    assert [o.score for o in offers] == sorted((o.score for o in offers), reverse=True)
    assert len({o.sku for o in offers}) == len(offers)


def product(sku: str, category: str, price: str = "10", **kw: object) -> Product:
    kind = {"service": "service", "tariffs": "plan"}.get(category, "good")
    return Product(
        sku=sku, category=category, kind=kind, price=Decimal(price), currency="EUR", **kw
    )  # type: ignore[arg-type]


CATALOGUE = {
    p.sku: p
    for p in (
        product("M-BEANS", "machines", "449"),
        product("M-BEANS-2", "machines", "899"),
        product("M-PAD", "machines", "69"),
        product("C-BEANS", "coffee", "15"),
        product("C-PADS", "coffee", "5"),
        product("A-GRIND", "accessories", "129"),
        product("A-CUPS", "accessories", "20"),
        product("P-BASIC", "tariffs", "19.90", period="month"),
        product("P-PREMIUM", "tariffs", "399", period="year"),
    )
}
BASKETS = [
    *[(f"b{i}", ["M-BEANS", "C-BEANS", "A-GRIND"]) for i in range(6)],
    *[(f"p{i}", ["M-PAD", "C-PADS"]) for i in range(6)],
    *[(f"c{i}", ["A-CUPS"]) for i in range(12)],
]


def facts(*skus: str, **kw: object) -> CustomerFacts:
    purchases = tuple(
        Purchase(order_id=ORDERS[0], sku=s, at=NOW - timedelta(days=10)) for s in skus
    )
    return CustomerFacts(customer_id=uuid4(), purchases=purchases, channels=("sms", "email"), **kw)  # type: ignore[arg-type]


def by_sku(offers: list[Offer]) -> dict[str, Offer]:
    return {o.sku: o for o in offers}


class TestRank:
    def test_bought_together_and_similar_customers_beat_popularity(self) -> None:
        offers = rank(facts("M-BEANS"), population(BASKETS), CATALOGUE, now=NOW, top=3)
        assert {o.sku for o in offers[:2]} == {"A-GRIND", "C-BEANS"}
        kinds = {r.kind for r in by_sku(offers)["A-GRIND"].reasons}
        assert {"bought_together", "similar_customers"} <= kinds
        assert "M-BEANS" not in by_sku(offers)  # owned
        assert all(o.channel == "email" for o in offers)  # preferred over sms

    def test_coffee_is_reordered_but_a_machine_is_owned(self) -> None:
        offers = by_sku(
            rank(facts("M-BEANS", "C-BEANS"), population(BASKETS), CATALOGUE, now=NOW, top=9)
        )
        assert "M-BEANS" not in offers
        assert "reorder" in {r.kind for r in offers["C-BEANS"].reasons}

    def test_returned_declined_and_no_consent(self) -> None:
        stats = population(BASKETS)
        got = rank(
            facts("M-BEANS", returned=frozenset({"C-BEANS"}), declined=frozenset({"A-GRIND"})),
            stats,
            CATALOGUE,
            now=NOW,
            top=9,
        )
        assert not {"C-BEANS", "A-GRIND"} & set(by_sku(got))
        silent = CustomerFacts(customer_id=uuid4(), purchases=facts("M-BEANS").purchases)
        assert rank(silent, stats, CATALOGUE, now=NOW) == []

    def test_a_worn_machine_gets_an_upgrade(self) -> None:
        worn = facts(equipment=(Equipment(model="M-BEANS", wear=0.95),))
        offers = by_sku(rank(worn, population(BASKETS), CATALOGUE, now=NOW, top=9))
        assert "upgrade" in {r.kind for r in offers["M-BEANS-2"].reasons}
        assert "M-BEANS" not in offers  # the machine in service is owned
        cheaper = offers.get("M-PAD")
        assert cheaper is None or all(r.kind != "upgrade" for r in cheaper.reasons)
        fresh = facts(equipment=(Equipment(model="M-BEANS", wear=0.2),))
        offers = by_sku(rank(fresh, population(BASKETS), CATALOGUE, now=NOW, top=9))
        assert all(r.kind != "upgrade" for o in offers.values() for r in o.reasons)

    def test_the_plan_the_coffee_spend_pays_for(self) -> None:
        heavy = facts(coffee_spend_per_month=Decimal("40"), plan="P-BASIC")
        offers = by_sku(rank(heavy, population(BASKETS), CATALOGUE, now=NOW, top=9))
        assert [r.kind for r in offers["P-PREMIUM"].reasons] == ["better_plan"]  # 33.25 a month
        light = facts(coffee_spend_per_month=Decimal("5"), plan="P-PREMIUM")
        offers = by_sku(rank(light, population(BASKETS), CATALOGUE, now=NOW, top=9))
        assert "P-BASIC" in offers and "P-PREMIUM" not in offers
        none = facts(coffee_spend_per_month=Decimal("5"))
        assert not {"P-BASIC", "P-PREMIUM"} & set(
            by_sku(rank(none, population(BASKETS), CATALOGUE, now=NOW, top=9))
        )


# -- decide ---------------------------------------------------------------------------------

AT = NOW


def apply(state: OfferState, events: list[DomainEvent], at: datetime = AT) -> OfferState:
    return fold(
        state.offer_id, [(state.version + i, at, e) for i, e in enumerate(events, 1)], state
    )


def present(
    state: OfferState, sku: str = "A-GRIND", channel: str = "email", **kw: object
) -> list[DomainEvent]:
    customer = kw.pop("customer", facts("M-BEANS"))
    c = cmd.PresentOffer(customer_id=uuid4(), sku=sku, channel=channel, score=0.5)
    return decide.present(
        state, c, facts=customer, products=CATALOGUE, customer_live=True, at=AT, **kw
    )  # type: ignore[arg-type]


def presented() -> OfferState:
    state = OfferState(offer_id=uuid4())
    return apply(state, present(state))


class TestDecide:
    def test_present_accept_decline(self) -> None:
        state = presented()
        assert (state.status, state.sku, state.channel) == ("presented", "A-GRIND", "email")
        accepted = apply(
            state, decide.accept(state, cmd.AcceptOffer(offer_id=state.offer_id), at=AT)
        )
        assert accepted.status == "accepted"
        assert decide.accept(accepted, cmd.AcceptOffer(offer_id=state.offer_id), at=AT) == []
        with pytest.raises(err.OfferWasAccepted):
            decide.decline(accepted, cmd.DeclineOffer(offer_id=state.offer_id), at=AT)
        (declined,) = decide.decline(
            state, cmd.DeclineOffer(offer_id=state.offer_id, reason="no"), at=AT
        )
        assert declined == ev.OfferDeclined(reason="no")
        state = apply(state, [declined])
        assert decide.decline(state, cmd.DeclineOffer(offer_id=state.offer_id), at=AT) == []
        with pytest.raises(err.OfferWasDeclined):
            decide.accept(state, cmd.AcceptOffer(offer_id=state.offer_id), at=AT)

    @pytest.mark.parametrize(
        ("sku", "channel", "customer", "error"),
        [
            ("A-GRIND", "post", facts("M-BEANS"), err.NoConsent),
            ("M-BEANS", "email", facts("M-BEANS"), err.AlreadyOwned),
            ("M-PAD", "email", facts(equipment=(Equipment(model="M-PAD"),)), err.AlreadyOwned),
            ("P-BASIC", "email", facts(plan="P-BASIC"), err.AlreadyOwned),
            ("C-BEANS", "email", facts(returned=frozenset({"C-BEANS"})), err.ReturnedBefore),
            ("A-CUPS", "email", facts(declined=frozenset({"A-CUPS"})), err.DeclinedBefore),
            ("X-NONE", "email", facts(), err.NotOnSale),
        ],
    )
    def test_present_refuses(
        self, sku: str, channel: str, customer: CustomerFacts, error: type[Exception]
    ) -> None:
        with pytest.raises(error):
            present(OfferState(offer_id=uuid4()), sku, channel, customer=customer)

    def test_coffee_bought_before_may_be_presented_again(self) -> None:
        (event,) = present(OfferState(offer_id=uuid4()), "C-BEANS", customer=facts("C-BEANS"))
        assert isinstance(event, ev.OfferPresented)

    def test_lifecycle_errors(self) -> None:
        state = presented()
        with pytest.raises(err.OfferAlreadyPresented):
            present(state)
        with pytest.raises(err.OfferNotFound):
            decide.accept(OfferState(offer_id=uuid4()), cmd.AcceptOffer(offer_id=uuid4()), at=AT)
        with pytest.raises(err.EventBeforeLast):
            decide.accept(
                state, cmd.AcceptOffer(offer_id=state.offer_id), at=AT - timedelta(days=1)
            )
