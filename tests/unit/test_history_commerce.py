"""Commerce in the demo history: valid (the domain judges an import of it) and showing the
documented effects (docs/demo-model.md, "Commerce"), measured from the emitted lines and the
population (the truth), never against hard-coded counts.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from statistics import mean

import msgspec
import pytest

from handlers.parsing import parse_command, parse_line
from infra.history import HistoryConfig, LatentCustomer, commerce, history, population
from infra.history import catalogue as cat
from infra.history.model import DAY, MONTH, SEASON

NOW = datetime(2026, 5, 1, 12, tzinfo=UTC)
SMALL = HistoryConfig(now=NOW, customers=150, years=1.0, seed=11)
DEFAULT = HistoryConfig(now=NOW)
DOC = Path(__file__).parents[2] / "docs" / "demo-model.md"
COMMERCE = (b'{"command":"order.', b'{"command":"deal.', b'{"command":"subscription.')
CATALOGUE = (b'{"command":"product.', b'{"command":"pipeline.')


class Item(msgspec.Struct):
    sku: str
    quantity: int
    unit_price: dict[str, str] | None = None


class Data(msgspec.Struct):
    occurred_at: str
    customer_id: str | None = None
    order_id: str | None = None
    deal_id: str | None = None
    subscription_id: str | None = None
    sku: str | None = None
    items: list[Item] = []
    payment_method: str | None = None
    lead_source: str | None = None
    due_date: str | None = None
    plan: str | None = None
    list_price: dict[str, str] | None = None
    price: dict[str, str] | None = None


class Seen(msgspec.Struct):
    command: str
    data: Data
    command_id: str


_seen = msgspec.json.Decoder(Seen)


def epoch(stamp: str) -> float:
    return datetime.fromisoformat(stamp).timestamp()


@dataclass
class Order:
    customer: str
    placed: float
    items: list[Item]
    method: str
    delivered: float | None = None
    returned: Counter[str] = field(default_factory=Counter)
    due: str | None = None
    paid: bool = False
    cancelled: bool = False
    deal: bool = False


@dataclass
class Deal:
    customer: str
    source: str
    outcome: str | None = None


@dataclass
class Ledger:
    """What the commerce lines say: orders, deals and subscriptions by id."""

    orders: dict[str, Order] = field(default_factory=dict)
    deals: dict[str, Deal] = field(default_factory=dict)
    subscriptions: dict[str, list[Seen]] = field(default_factory=lambda: defaultdict(list))
    subscriber: dict[str, str] = field(default_factory=dict)
    commands: Counter[str] = field(default_factory=Counter)

    @classmethod
    def of(cls, lines: Iterable[bytes]) -> Ledger:
        ledger = cls()
        for raw in lines:
            if raw.startswith(COMMERCE):
                ledger.add(_seen.decode(raw))
        return ledger

    def add(self, s: Seen) -> None:
        d, command = s.data, s.command
        self.commands[command] += 1
        if command == "order.place":
            order = Order(
                d.customer_id or "", epoch(d.occurred_at), d.items, d.payment_method or ""
            )
            self.orders[d.order_id or ""] = order
        elif command == "deal.open":
            self.deals[d.deal_id or ""] = Deal(d.customer_id or "", d.lead_source or "")
        elif command == "deal.win":
            deal = self.deals[d.deal_id or ""]
            deal.outcome = "won"
            order = Order(deal.customer, epoch(d.occurred_at), d.items, d.payment_method or "")
            order.deal = True
            self.orders[d.order_id or ""] = order
        elif command == "deal.lose":
            self.deals[d.deal_id or ""].outcome = "lost"
        elif command.startswith("order."):
            order = self.orders[d.order_id or ""]
            if command == "order.deliver":
                order.delivered = epoch(d.occurred_at)
            elif command == "order.return":
                order.returned.update({i.sku: i.quantity for i in d.items})
            elif command == "order.issue_invoice":
                order.due = d.due_date
            elif command == "order.pay":
                order.paid = True
            elif command == "order.cancel":
                order.cancelled = True
        elif command.startswith("subscription."):
            self.subscriptions[d.subscription_id or ""].append(s)
            if d.customer_id:
                self.subscriber[d.subscription_id or ""] = d.customer_id

    def by_customer(self) -> dict[str, list[Order]]:
        out: dict[str, list[Order]] = defaultdict(list)
        for order in self.orders.values():
            out[order.customer].append(order)
        return out


def customer_spans(c: LatentCustomer, end: float) -> list[tuple[float, float]]:
    """When the customer was in stage `customer` (the truth, to the second as the lines)."""
    out, since = [], None
    for s in c.stages:
        if s.stage == "customer":
            since = float(int(s.at.timestamp()))
        elif s.stage == "former_customer" and since is not None:
            out.append((since, float(int(s.at.timestamp()))))
            since = None
    if since is not None:
        out.append((since, end))
    return out


def former_spans(c: LatentCustomer, end: float) -> list[tuple[float, float]]:
    out, since = [], None
    for s in c.stages:
        if s.stage == "former_customer":
            since = float(int(s.at.timestamp()))
        elif since is not None:
            out.append((since, float(int(s.at.timestamp()))))
            since = None
    if since is not None:
        out.append((since, end))
    return out


def inside(t: float, spans: list[tuple[float, float]]) -> bool:
    return any(a <= t < b for a, b in spans)


def segment_of(unit_price: dict[str, str] | None) -> str:
    assert unit_price is not None
    return cat.price_segment(int(Decimal(unit_price["amount"]) * 100))


@pytest.fixture(scope="module")
def small() -> list[bytes]:
    return list(history(SMALL))


@pytest.fixture(scope="module")
def default() -> tuple[list[LatentCustomer], Ledger, list[bytes]]:
    lines = list(history(DEFAULT))
    return population(DEFAULT), Ledger.of(lines), [x for x in lines if x.startswith(CATALOGUE)]


class TestLines:
    def test_every_commerce_line_parses_and_ids_are_unique(self, small: list[bytes]) -> None:
        ids = set()
        for raw in small:
            line = parse_line(raw)
            if raw.startswith(COMMERCE + CATALOGUE):
                parse_command(line.command, line.data)
            ids.add(line.command_id)
        assert len(ids) == len(small)

    def test_the_catalogue_and_pipelines_come_first(self, small: list[bytes]) -> None:
        seen = [_seen.decode(x) for x in small]
        first = next(i for i, s in enumerate(seen) if s.command == "customer.register")
        defined = {s.data.sku for s in seen[:first] if s.command == "product.define"}
        launched_later = {p.sku for p in cat.PRODUCTS if p.launched}
        assert defined == {p.sku for p in cat.PRODUCTS} - launched_later
        assert [s.command for s in seen[:2]] == ["pipeline.define", "pipeline.define"]

    def test_every_command_appears(
        self, default: tuple[list[LatentCustomer], Ledger, list[bytes]]
    ) -> None:
        _, ledger, catalogue = default
        commands = set(ledger.commands) | {_seen.decode(x).command for x in catalogue}
        expected = {
            "product.define",
            "product.change_price",
            "product.retire",
            "pipeline.define",
            "deal.open",
            "deal.move",
            "deal.change_value",
            "deal.send_quote",
            "deal.assign",
            "deal.win",
            "deal.lose",
            "order.place",
            "order.issue_invoice",
            "order.pay",
            "order.ship",
            "order.deliver",
            "order.cancel",
            "order.return",
            "subscription.start",
            "subscription.change_plan",
            "subscription.cancel",
        }
        assert expected <= commands

    def test_retired_products_are_not_sold_after_retirement_and_prices_follow_the_list(
        self, default: tuple[list[LatentCustomer], Ledger, list[bytes]]
    ) -> None:
        _, ledger, catalogue = default
        prices: dict[str, list[tuple[float, dict[str, str]]]] = defaultdict(list)
        retired: dict[str, float] = {}
        for s in (_seen.decode(x) for x in catalogue):
            sku, t = s.data.sku or "", epoch(s.data.occurred_at)
            if s.command == "product.retire":
                retired[sku] = t
            elif s.command in ("product.define", "product.change_price"):
                price = s.data.list_price or s.data.price
                assert price is not None
                prices[sku].append((t, price))
        assert retired
        sold_before = set()
        for order in ledger.orders.values():
            for item in order.items:
                history_of_price = [p for t, p in prices[item.sku] if t < order.placed]
                assert history_of_price, item.sku
                if not order.deal:  # deals keep the price quoted
                    assert item.unit_price == history_of_price[-1]
                if item.sku in retired:
                    assert order.placed < retired[item.sku]
                    sold_before.add(item.sku)
        assert sold_before == set(retired)

    def test_orders_come_only_from_customers_in_stage_customer(
        self, default: tuple[list[LatentCustomer], Ledger, list[bytes]]
    ) -> None:
        people, ledger, _ = default
        end = NOW.timestamp()
        spans = {str(c.customer_id): customer_spans(c, end) for c in people}
        for order in ledger.orders.values():
            assert inside(order.placed, spans[order.customer])
        duplicates = {str(c.duplicate.customer_id) for c in people if c.duplicate}
        customers = {o.customer for o in ledger.orders.values()}
        customers |= {d.customer for d in ledger.deals.values()}
        assert not customers & duplicates


class TestEffects:
    def test_december_has_more_orders_than_august_per_active_customer_day(
        self, default: tuple[list[LatentCustomer], Ledger, list[bytes]]
    ) -> None:
        people, ledger, _ = default
        end = NOW.timestamp()
        volume = Counter(
            datetime.fromtimestamp(o.placed, UTC).month for o in ledger.orders.values()
        )
        exposure: Counter[int] = Counter()  # customer-days in stage customer per month
        for c in people:
            for a, b in customer_spans(c, end):
                t = a
                while t < b:
                    exposure[datetime.fromtimestamp(t, UTC).month] += min(DAY, b - t) / DAY
                    t += DAY
        december, august = volume[12] / exposure[12], volume[8] / exposure[8]
        assert december > 1.5 * august
        assert SEASON[11] > SEASON[7]

    def test_higher_income_buys_more_premium_units(
        self, default: tuple[list[LatentCustomer], Ledger, list[bytes]]
    ) -> None:
        """Premium-segment units (default price bands) per customer-month in stage customer,
        and their share of the machines bought, by income band."""
        people, ledger, _ = default
        end = NOW.timestamp()
        income = {str(c.customer_id): c.income_band for c in people}
        months: Counter[str] = Counter()
        for c in people:
            months[c.income_band] += sum(b - a for a, b in customer_spans(c, end)) / MONTH
        premium: Counter[str] = Counter()
        machines: dict[str, Counter[str]] = defaultdict(Counter)
        for order in ledger.orders.values():
            band = income[order.customer]
            for item in order.items:
                segment = segment_of(item.unit_price)
                premium[band] += item.quantity if segment == "premium" else 0
                if cat.BY_SKU[item.sku].category == "machines":
                    machines[band][segment] += item.quantity
        rate = {band: premium[band] / months[band] for band in months}
        share = {band: m["premium"] / sum(m.values()) for band, m in machines.items()}
        assert rate["high"] > rate["middle"] > rate["low"]
        assert rate["high"] > 1.8 * rate["low"]
        assert share["high"] > share["middle"] > share["low"]
        assert share["high"] > 1.8 * share["low"]

    def test_machine_buyers_buy_coffee_more_often(
        self, default: tuple[list[LatentCustomer], Ledger, list[bytes]]
    ) -> None:
        people, ledger, _ = default
        end = NOW.timestamp()
        persons = {str(c.customer_id) for c in people if c.kind == "person"}
        buyers, others = [], []  # coffee orders per month since the first machine / order
        for customer, orders in ledger.by_customer().items():
            if customer not in persons:
                continue
            machines = [
                o.placed
                for o in orders
                if any(cat.BY_SKU[i.sku].category == "machines" for i in o.items)
            ]
            since = min(machines) if machines else min(o.placed for o in orders)
            if end - since < 2 * MONTH:
                continue
            coffee = sum(
                1
                for o in orders
                if o.placed > since and any(cat.BY_SKU[i.sku].category == "coffee" for i in o.items)
            )
            (buyers if machines else others).append(coffee / ((end - since) / MONTH))
        assert mean(buyers) > 2 * mean(others)

    def test_return_rates_differ_per_product_as_documented(
        self, default: tuple[list[LatentCustomer], Ledger, list[bytes]]
    ) -> None:
        _, ledger, _ = default
        last = NOW.timestamp() - commerce.RETURN_WINDOW_DAYS[1] * DAY
        sold: Counter[str] = Counter()
        returned: Counter[str] = Counter()
        expected: Counter[str] = Counter()
        for order in ledger.orders.values():
            if order.delivered is None or order.delivered > last:
                continue
            for item in order.items:
                category = cat.BY_SKU[item.sku].category
                sold[category] += item.quantity
                expected[category] += item.quantity * cat.BY_SKU[item.sku].returns
                returned[category] += order.returned[item.sku]
        rate = {k: returned[k] / sold[k] for k in sold}
        for category in ("machines", "accessories", "coffee"):
            documented = expected[category] / sold[category]
            sd = (documented * (1 - documented) / sold[category]) ** 0.5
            assert abs(rate[category] - documented) < 4 * sd + 0.005, category
        assert rate["machines"] > 3 * rate["coffee"]
        assert returned["service"] == 0

    def test_deals_from_better_sources_win_more_often(
        self, default: tuple[list[LatentCustomer], Ledger, list[bytes]]
    ) -> None:
        _, ledger, _ = default
        ranked = sorted(commerce.DEAL_SOURCES, key=lambda s: -commerce.DEAL_SOURCES[s][2])
        better, worse = set(ranked[:2]), set(ranked[-2:])
        closed = [d for d in ledger.deals.values() if d.outcome]

        def win_rate(sources: set[str]) -> float:
            deals = [d for d in closed if d.source in sources]
            return sum(d.outcome == "won" for d in deals) / len(deals)

        assert win_rate(better) > win_rate(worse) + 0.15

    def test_satisfied_customers_win_more_deals(
        self, default: tuple[list[LatentCustomer], Ledger, list[bytes]]
    ) -> None:
        people, ledger, _ = default
        satisfaction = {str(c.customer_id): c.satisfaction for c in people}
        closed = [d for d in ledger.deals.values() if d.outcome]
        happy = [d.outcome == "won" for d in closed if satisfaction[d.customer] > 0.7]
        unhappy = [d.outcome == "won" for d in closed if satisfaction[d.customer] < 0.5]
        assert mean(happy) > mean(unhappy) + 0.1

    def test_churned_customers_stop_ordering_and_won_back_ones_resume(
        self, default: tuple[list[LatentCustomer], Ledger, list[bytes]]
    ) -> None:
        people, ledger, _ = default
        end = NOW.timestamp()
        orders = ledger.by_customer()
        before = after = months_before = months_after = 0.0
        resumed = []
        for c in people:
            former = former_spans(c, end)
            if not former:
                continue
            active = customer_spans(c, end)
            placed = [o.placed for o in orders.get(str(c.customer_id), [])]
            before += sum(inside(t, active) for t in placed)
            after += sum(inside(t, former) for t in placed)
            months_before += sum(b - a for a, b in active) / MONTH
            months_after += sum(b - a for a, b in former) / MONTH
            back = [s.at.timestamp() for s in c.stages if s.source == "win_back"]
            if back and back[0] < end - 30 * DAY:
                resumed.append(any(t > back[0] for t in placed))
        assert after / months_after < 0.2 * before / months_before
        assert resumed and mean(resumed) > 0.5

    def test_invoices_are_paid_late_or_never_and_payments_follow_the_segment(
        self, default: tuple[list[LatentCustomer], Ledger, list[bytes]]
    ) -> None:
        people, ledger, _ = default
        today = NOW.date().isoformat()
        segment = {str(c.customer_id): c.segment for c in people}
        overdue = [o for o in ledger.orders.values() if o.due and o.due < today and not o.paid]
        assert overdue
        methods: dict[str, Counter[str]] = defaultdict(Counter)
        for o in ledger.orders.values():
            methods[segment[o.customer]][o.method] += 1
        share = {s: m["invoice"] / sum(m.values()) for s, m in methods.items()}
        assert share["business_accounts"] > 3 * share["digital_natives"]
        instalments = [i for m in methods.values() for k, i in m.items() if k == "instalments"]
        assert sum(instalments) > 0

    def test_subscribers_change_plans_and_unhappy_ones_cancel(
        self, default: tuple[list[LatentCustomer], Ledger, list[bytes]]
    ) -> None:
        people, ledger, _ = default
        satisfaction = {str(c.customer_id): c.satisfaction for c in people}
        cancelled, running = [], []
        for sub_id, lines in ledger.subscriptions.items():
            s = satisfaction[ledger.subscriber[sub_id]]
            (cancelled if lines[-1].command == "subscription.cancel" else running).append(s)
        assert ledger.commands["subscription.change_plan"] > 0
        assert cancelled and mean(cancelled) < mean(running) - 0.05
        assert set(cat.PLANS) == {
            s.data.plan for lines in ledger.subscriptions.values() for s in lines if s.data.plan
        }


def test_the_doc_quotes_the_commerce_tables() -> None:
    doc = DOC.read_text()
    for name, table in commerce.tables().items():
        assert table in doc, f"docs/demo-model.md: commerce table {name} differs from the code"
