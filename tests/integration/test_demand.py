"""The `demand` view and its report, on both backends.

A seeded shop history is sent as commands; the oracle (units and net revenue per price segment
and per product, per month and per ISO week) is computed here from the test's own list of
commands, never by projection code.
"""

from __future__ import annotations

import random
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime, timedelta
from decimal import ROUND_HALF_EVEN, Decimal
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest

from handlers.decision import CommandContext
from infra.clock import FixedClock
from infra.engine import Engine, open_engine
from infra.projection_db import projection_db
from projections.demand import Demand, DemandReport, demand_report
from projections.runner import Runner
from tests.pg import fresh_schema, pg_url_with_schema

CTX = CommandContext(actor="employee:sales", channel="test")
START = datetime(2025, 1, 6, 9, tzinfo=UTC)
NOW = datetime(2026, 1, 1, tzinfo=UTC)
BANDS_AT = START + timedelta(days=150)
CUT = START + timedelta(days=200, hours=5)  # the as-of time of the tests
CENT = Decimal("0.01")
PRODUCTS = {  # sku: (category, list price)
    "BEAN-S": ("coffee", "8.90"),
    "BEAN-L": ("coffee", "24.00"),
    "MUG": ("kitchen", "12.00"),
    "KETTLE": ("kitchen", "79.00"),
    "COF-1": ("machines", "249.00"),
    "COF-PRO": ("machines", "1190.00"),
}


def default_segment(price: Decimal) -> str:
    return "budget" if price < 50 else "mid" if price < 200 else "premium"


def later_segment(category: str, price: Decimal) -> str:
    """The bands the script sets at BANDS_AT: coffee has its own, the default moves up."""
    if category == "coffee":
        return "everyday" if price < 10 else "fine"
    return "budget" if price < 60 else "mid" if price < 500 else "premium"


LATER_BANDS = {
    "default": [
        {"segment": "budget", "below": {"amount": "60", "currency": "EUR"}},
        {"segment": "mid", "below": {"amount": "500", "currency": "EUR"}},
        {"segment": "premium"},
    ],
    "categories": {
        "coffee": [
            {"segment": "everyday", "below": {"amount": "10", "currency": "EUR"}},
            {"segment": "fine"},
        ]
    },
}


def net(price: Decimal, units: int, discount: Decimal) -> Decimal:
    return (price * units * (1 - discount)).quantize(CENT, ROUND_HALF_EVEN)


class Order:
    def __init__(
        self, order_id: UUID, at: datetime, lines: list[tuple[str, int, Decimal, Decimal]]
    ):
        self.id = order_id
        self.at = at
        self.lines = lines  # sku, quantity, unit price, discount
        self.returns: list[tuple[datetime, str, int, Decimal]] = []  # at, sku, units, refund
        self.cancelled_at: datetime | None = None


class Commands:
    """Commands, each with its business time, to send to one store or more."""

    def __init__(self) -> None:
        self.commands: list[tuple[datetime, str, dict[str, Any]]] = []

    def add(self, at: datetime, command: str, /, **data: Any) -> None:
        self.commands.append((at, command, {**data, "occurred_at": at.isoformat()}))

    def send(self, engine: Engine, until: datetime | None = None) -> None:
        """In the order added (orders' streams interleave in business time)."""
        for at, name, data in self.commands:
            if until is None or at <= until:
                engine.bus.execute_json(name, data, CTX)


class Shop(Commands):
    """A seeded history and the oracle."""

    def __init__(self, seed: int, orders: int = 70) -> None:
        super().__init__()
        rng = random.Random(seed)
        customers = [UUID(int=rng.getrandbits(128), version=4) for _ in range(5)]
        early = START - timedelta(days=30)
        for i, c in enumerate(customers):
            self.add(early, "customer.register", customer_id=str(c), name=f"Customer {i}")
        for sku, (category, price) in PRODUCTS.items():
            self.add(
                early,
                "product.define",
                sku=sku,
                name=sku.title(),
                category=category,
                list_price=eur(price),
            )
        self.orders: list[Order] = []
        for n in range(orders):
            at = START + timedelta(days=rng.uniform(0, 330))
            lines = []
            for sku in rng.sample(sorted(PRODUCTS), rng.randint(1, 3)):
                price = Decimal(PRODUCTS[sku][1])
                if rng.random() < 0.3:  # a special price: may fall in another segment
                    price = (price * Decimal(rng.choice(("0.5", "0.8", "1.1")))).quantize(CENT)
                discount = Decimal(rng.choice(("0", "0", "0.1", "0.15")))
                lines.append((sku, rng.randint(1, 5), price, discount))
            order = Order(UUID(int=rng.getrandbits(128), version=4), at, lines)
            self.orders.append(order)
            self.add(
                at,
                "order.place",
                order_id=str(order.id),
                customer_id=str(rng.choice(customers)),
                payment_method="card",
                items=[
                    {"sku": s, "quantity": q, "unit_price": eur(str(p)), "discount": str(d)}
                    for s, q, p, d in lines
                ],
            )
            fate = rng.random()
            if fate < 0.45 or n == 0:  # shipped, then returns (a part, or more in two goes)
                shipped = at + timedelta(days=2)
                self.add(shipped, "order.ship", order_id=str(order.id))
                when = shipped
                for _ in range(rng.randint(1, 2)):
                    when += timedelta(days=rng.uniform(1, 40))
                    sku, q, price, discount = rng.choice(lines)
                    done = sum(u for _, s, u, _ in order.returns if s == sku)
                    if done >= q:
                        continue
                    units = rng.randint(1, q - done)
                    data: dict[str, Any] = {
                        "order_id": str(order.id),
                        "items": [{"sku": sku, "quantity": units}],
                        "reason": "not as expected",
                    }
                    refund = net(price, done + units, discount) - net(price, done, discount)
                    if rng.random() < 0.3:  # a goodwill refund of its own amount
                        refund = (refund * Decimal("0.5")).quantize(CENT)
                        data["refund"] = eur(str(refund))
                    self.add(when, "order.return", **data)
                    order.returns.append((when, sku, units, refund))
                if rng.random() < 0.3 or n == 0:  # cancelled after shipping (and returns)
                    order.cancelled_at = when + timedelta(days=3)
                    self.add(
                        order.cancelled_at, "order.cancel", order_id=str(order.id), reason="lost"
                    )
            elif fate < 0.6:
                order.cancelled_at = at + timedelta(hours=rng.uniform(1, 24 * 20))
                self.add(order.cancelled_at, "order.cancel", order_id=str(order.id), reason="x")
        # Sent last, but in force from BANDS_AT: the rows sold since must be re-banded.
        self.add(BANDS_AT, "product.set_price_bands", bands=LATER_BANDS)

    def expected(
        self, key: str, as_of: datetime | None = None
    ) -> dict[tuple[date, str], tuple[int, Decimal]]:
        """(month or ISO week start of the sale, segment or sku) -> (units, net revenue)."""
        out: dict[tuple[date, str], list[Any]] = defaultdict(lambda: [0, Decimal(0)])

        def known(at: datetime | None) -> bool:
            return at is not None and (as_of is None or at <= as_of)

        for o in self.orders:
            if not known(o.at) or known(o.cancelled_at):
                continue
            day = o.at.date()
            start = (
                day.replace(day=1) if key.startswith("month") else day - timedelta(day.weekday())
            )
            price_of = {}
            for sku, q, price, discount in o.lines:
                category = PRODUCTS[sku][0]
                segment = (
                    later_segment(category, price) if o.at >= BANDS_AT else default_segment(price)
                )
                price_of[sku] = segment if key.endswith("segment") else sku
                acc = out[(start, price_of[sku])]
                acc[0] += q
                acc[1] += net(price, q, discount)
            for at, sku, units, refund in o.returns:
                if known(at):
                    acc = out[(start, price_of[sku])]
                    acc[0] -= units
                    acc[1] -= refund
        return {k: (v[0], v[1]) for k, v in out.items() if v != [0, Decimal(0)]}


def eur(amount: str) -> dict[str, str]:
    return {"amount": amount, "currency": "EUR"}


def got(report: DemandReport, by: str) -> dict[tuple[date, str], tuple[int, Decimal]]:
    rows = report.segments if by == "segment" else report.products
    out = {}
    for r in rows:
        key = r.segment if by == "segment" else r.sku  # type: ignore[union-attr]
        assert r.currency == "EUR"
        if (r.units, r.revenue) != (0, 0):
            out[(r.period, key)] = (r.units, r.revenue)
    return out


@pytest.fixture
def engine(store_url: str) -> Iterator[Engine]:
    with open_engine(store_url, env={}, clock=FixedClock(NOW)) as e:
        yield e


def runner(engine: Engine, page: int = 50_000) -> Runner:
    r = Runner(projection_db(engine.store), engine.store, [Demand()], engine.clock, page=page)
    r.setup()
    return r


@pytest.fixture(scope="module")
def shop() -> Shop:
    return Shop(seed=3)


def test_units_and_revenue_per_segment_and_product_match_the_oracle(
    engine: Engine, shop: Shop
) -> None:
    shop.send(engine)
    with runner(engine) as r:
        r.catch_up()
        assert [s.state for s in r.status()] == ["live"]
        month = demand_report(r.db, period="month")
        week = demand_report(r.db, period="week")
        lean = demand_report(r.db, period="month", segments=False)
    assert got(month, "segment") == shop.expected("month/segment")
    assert got(month, "product") == shop.expected("month/product")
    assert got(week, "segment") == shop.expected("week/segment")
    for report in (month, week):
        totals = {p.period: p.units for p in report.periods}
        for (start, _), (units, _) in shop.expected(f"{report.period}/segment").items():
            totals[start] -= units
        assert set(totals.values()) == {0}
        assert [p.period for p in report.periods] == sorted(p.period for p in report.periods)
    assert {p.sku: p.name for p in month.products}["COF-PRO"] == "Cof-Pro"
    segments = {s.segment for s in month.segments}
    assert {"everyday", "fine"} <= segments  # the coffee bands from BANDS_AT on
    assert month.forecast.model == "seasonal-naive(m=12)"  # a year of months: too short
    assert week.forecast.model == (
        "holt-damped" if week.forecast.history < 52 else "seasonal-naive(m=52)"
    )
    assert len(month.forecast.values) == 8
    assert set(month.segment_forecasts) == segments
    assert lean.segment_forecasts == {} and lean.forecast == month.forecast


def test_returns_and_cancellations_reduce_the_demand(engine: Engine, shop: Shop) -> None:
    shop.send(engine)
    with runner(engine) as r:
        r.catch_up()
        report = demand_report(r.db, period="month")
    placed = sum(q for o in shop.orders for _, q, _, _ in o.lines)
    returned = sum(u for o in shop.orders if not o.cancelled_at for _, _, u, _ in o.returns)
    cancelled = sum(q for o in shop.orders if o.cancelled_at for _, q, _, _ in o.lines)
    assert returned > 0 and cancelled > 0
    assert sum(p.units for p in report.periods) == placed - returned - cancelled


def test_one_order_through_a_return_and_its_cancellation(engine: Engine) -> None:
    """A won deal's order: 3 mugs and a kettle; a mug back, then a mug and the kettle for a
    refund of its own, then the order cancelled."""
    t = START
    customer, deal, order = (UUID(int=i, version=4) for i in (1, 2, 3))
    send = Commands()
    send.add(t, "customer.register", customer_id=str(customer), name="Ada")
    for sku in ("MUG", "KETTLE"):
        category, price = PRODUCTS[sku]
        send.add(t, "product.define", sku=sku, name=sku, category=category, list_price=eur(price))
    send.add(t, "pipeline.define", name="sales", stages=[{"name": "quote", "probability": "0.5"}])
    send.add(
        t,
        "deal.open",
        deal_id=str(deal),
        pipeline="sales",
        customer_id=str(customer),
        lead_source="fair",
        channel="meeting",
        products=["MUG"],
        value=eur("100"),
    )
    items = [
        {"sku": "MUG", "quantity": 3, "unit_price": eur("12.00"), "discount": "0.1"},
        {"sku": "KETTLE", "quantity": 1, "unit_price": eur("79.00")},
    ]
    won, back, gone = t + timedelta(days=1), t + timedelta(days=40), t + timedelta(days=70)
    send.add(
        won,
        "deal.win",
        deal_id=str(deal),
        order_id=str(order),
        items=items,
        payment_method="card",
    )
    send.add(won, "order.ship", order_id=str(order))
    send.add(
        back,
        "order.return",
        order_id=str(order),
        items=[{"sku": "MUG", "quantity": 1}],
        reason="chipped",
    )
    goodwill = t + timedelta(days=50)  # 50.00 back for a mug (10.80) and the kettle (79.00)
    send.add(
        goodwill,
        "order.return",
        order_id=str(order),
        items=[{"sku": "MUG", "quantity": 1}, {"sku": "KETTLE", "quantity": 1}],
        reason="changed their mind",
        refund=eur("50.00"),
    )
    send.add(gone, "order.cancel", order_id=str(order), reason="lost in transit")
    send.send(engine)
    with runner(engine) as r:
        r.catch_up()

        def at(when: datetime) -> dict[str, tuple[int, Decimal]]:
            report = demand_report(r.db, period="month", as_of=when)
            return {s.segment: (s.units, s.revenue) for s in report.segments}

        assert at(won - timedelta(seconds=1)) == {}
        assert at(won) == {"budget": (3, Decimal("32.40")), "mid": (1, Decimal("79.00"))}
        assert at(back) == {"budget": (2, Decimal("21.60")), "mid": (1, Decimal("79.00"))}
        # Split as the default refunds would be, rounding on the last: 6.01 and 43.99.
        assert at(goodwill) == {"budget": (1, Decimal("15.59")), "mid": (0, Decimal("35.01"))}
        assert at(gone) == {}
        report = demand_report(r.db, period="month")
    assert report.segments == [] and sum(p.units for p in report.periods) == 0


@contextmanager
def second_store(store_url: str, tmp_path: Path) -> Iterator[str]:
    """An empty store on the same backend as `store_url`."""
    if store_url.startswith("sqlite"):
        yield f"sqlite:///{tmp_path}/second.db"
        return
    with fresh_schema("second") as schema:
        yield pg_url_with_schema(schema)


def test_as_of_equals_a_store_that_only_got_the_commands_until_then(
    engine: Engine, shop: Shop, store_url: str, tmp_path: Path
) -> None:
    shop.send(engine)
    with runner(engine) as r:
        r.catch_up()
        full = {p: demand_report(r.db, period=p, as_of=CUT) for p in ("month", "week")}
        later = demand_report(r.db, period="month")
    assert got(full["month"], "segment") == shop.expected("month/segment", CUT)
    assert got(full["week"], "product") == shop.expected("week/product", CUT)
    assert got(later, "segment") != got(full["month"], "segment")
    with (
        second_store(store_url, tmp_path) as url,
        open_engine(url, env={}, clock=FixedClock(NOW)) as second,
    ):
        shop.send(second, until=CUT)
        with runner(second) as r:
            r.catch_up()
            for p, report in full.items():
                assert demand_report(r.db, period=p, as_of=CUT) == report


def test_paged_catch_up_equals_one_page(engine: Engine, shop: Shop) -> None:
    shop.send(engine)
    with runner(engine, page=3) as small:
        small.catch_up()
        paged = demand_report(small.db, period="week", as_of=CUT), facts(small)
        whole = Runner(small.db, engine.store, [Demand()], engine.clock, page=1_000_000)
        whole.rebuild("demand")  # a new generation from position 0, in one page
        assert (demand_report(small.db, period="week", as_of=CUT), facts(small)) == paged


def facts(r: Runner) -> list[tuple[Any, ...]]:
    d = r.db.dialect
    return [
        tuple(str(v) for v in row)
        for row in r.db.fetch(f"SELECT * FROM {d.qualify('demand_facts')} ORDER BY position, line")
    ]
