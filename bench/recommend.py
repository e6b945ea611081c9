"""Next best offers: hit rate at 5 of `domain.offers.rank` on each customer's held-out last
order, against a most-popular baseline in the same run.

setup     (not timed) the demo history (`infra.history`, `--customers` over `--years` years
          ending at `--now`) with seed `--seed` (11, not the demo's 7; the weights were
          chosen on seed 13), decoded from its import lines in memory: the catalogue, consents,
          orders (webshop and won deals; cancelled ones left out), returns and subscriptions.
held out  for each customer with 2 orders or more, the last one. The customer's facts are
          what was known just before it (orders, returns, plan, marketing consents then, via
          the domain's own `customer_facts`); the population's statistics come from every
          order that is not held out. Customers without a marketing consent then get no
          offers by rule and are left out of both sides.
subject   `rank(facts, population, catalogue, now=cut, top=5)`; a hit when any sku of the
          held-out order is among the 5.
baseline  the 5 most popular skus (customers who bought them) on sale then and not owned,
          returned or declined by the customer, the same rule the ranking obeys.
value     our hit rate at 5 (share of customers); ratio = ours / baseline (target >= 1.5).

    .venv/bin/python bench/recommend.py [--customers 4000] [--years 3] [--seed 11]
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import argparse
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

import msgspec

from bench._common import emit, log
from domain.money import Money
from domain.offers.holdings import customer_facts, marketing_channels
from domain.offers.rank import (
    CustomerFacts,
    Population,
    Product,
    excluded,
    population,
    rank,
)
from domain.orders.events import OrderLine
from domain.orders.state import OrderState
from domain.subscriptions.state import PlanTerm, SubscriptionState
from infra.history import HistoryConfig, history

TOP = 5
WANTED = (
    b'{"command":"product.',
    b'{"command":"customer.grant_consent"',
    b'{"command":"customer.withdraw_consent"',
    b'{"command":"order.place"',
    b'{"command":"order.cancel"',
    b'{"command":"order.return"',
    b'{"command":"deal.open"',
    b'{"command":"deal.win"',
    b'{"command":"subscription.',
)


class Line(msgspec.Struct):
    command: str
    data: dict[str, Any]


@dataclass
class Order:
    order_id: UUID
    customer: UUID
    at: datetime
    items: list[OrderLine]
    cancelled: bool = False
    returns: list[tuple[datetime, str, int]] = field(default_factory=list)


@dataclass
class Catalogue:
    defined: dict[str, tuple[datetime, dict[str, Any]]] = field(default_factory=dict)
    retired: dict[str, datetime] = field(default_factory=dict)
    prices: dict[str, list[tuple[datetime, Decimal]]] = field(default_factory=dict)

    def at(self, t: datetime) -> dict[str, Product]:
        out = {}
        for sku, (since, d) in self.defined.items():
            if since > t:
                continue
            price = [p for at, p in self.prices[sku] if at <= t][-1]
            out[sku] = Product(
                sku=sku,
                category=d["category"],
                kind=d.get("kind", "good"),
                price=price,
                currency=d["list_price"]["currency"],
                period=d.get("billing_period"),
                on_sale=sku not in self.retired or self.retired[sku] > t,
            )
        return out


def ts(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def money(d: dict[str, str]) -> Money:
    return Money(amount=Decimal(d["amount"]), currency=d["currency"])


def read(config: HistoryConfig) -> tuple[Catalogue, dict[UUID, Order], dict[UUID, Any], Any]:
    decoder = msgspec.json.Decoder(Line)
    catalogue = Catalogue()
    orders: dict[UUID, Order] = {}
    deals: dict[str, UUID] = {}
    consents: dict[UUID, list[tuple[datetime, str, str, bool]]] = defaultdict(list)
    subs: dict[str, list[tuple[datetime, str, dict[str, Any]]]] = defaultdict(list)
    for raw in history(config):
        if not raw.startswith(WANTED):
            continue
        line = decoder.decode(raw)
        d, name = line.data, line.command
        at = ts(d["occurred_at"])
        if name == "product.define":
            catalogue.defined[d["sku"]] = (at, d)
            catalogue.prices[d["sku"]] = [(at, Decimal(d["list_price"]["amount"]))]
        elif name == "product.change_price":
            catalogue.prices[d["sku"]].append((at, Decimal(d["price"]["amount"])))
        elif name == "product.retire":
            catalogue.retired[d["sku"]] = at
        elif name in ("customer.grant_consent", "customer.withdraw_consent"):
            granted = name == "customer.grant_consent"
            consents[UUID(d["customer_id"])].append(
                (at, d["consent_channel"], d["purpose"], granted)
            )
        elif name == "deal.open":
            deals[d["deal_id"]] = UUID(d["customer_id"])
        elif name in ("order.place", "deal.win"):
            customer = UUID(d["customer_id"]) if name == "order.place" else deals[d["deal_id"]]
            items = [msgspec.convert(i, OrderLine) for i in d["items"]]
            oid = UUID(d["order_id"])
            orders[oid] = Order(oid, customer, at, items)
        elif name == "order.cancel":
            orders[UUID(d["order_id"])].cancelled = True
        elif name == "order.return":
            order = orders[UUID(d["order_id"])]
            order.returns += [(at, i["sku"], i["quantity"]) for i in d["items"]]
        elif name.startswith("subscription."):
            subs[d["subscription_id"]].append((at, name, d))
    return catalogue, orders, consents, subs


def subscription_states(subs: Any) -> dict[UUID, list[SubscriptionState]]:
    """Each subscription's terms (the domain's struct), by customer."""
    out: dict[UUID, list[SubscriptionState]] = defaultdict(list)
    for sid, events in subs.items():
        customer, terms, started = None, [], None
        for at, name, d in events:
            if name == "subscription.start":
                customer, started = UUID(d["customer_id"]), at
                terms = [
                    PlanTerm(
                        plan=d["plan"], price=money(d["price"]), period=d["period"], from_at=at
                    )
                ]
            elif name == "subscription.change_plan":
                terms[-1] = msgspec.structs.replace(terms[-1], to_at=at)
                terms.append(
                    PlanTerm(
                        plan=d["plan"], price=money(d["price"]), period=d["period"], from_at=at
                    )
                )
            elif name == "subscription.cancel":
                terms[-1] = msgspec.structs.replace(terms[-1], to_at=ts(d["effective_at"]))
        if customer is not None:
            out[customer].append(
                SubscriptionState(
                    subscription_id=UUID(sid),
                    customer_id=customer,
                    terms=tuple(terms),
                    started_at=started,
                )
            )
    return out


def channels_at(events: list[tuple[datetime, str, str, bool]], t: datetime) -> tuple[str, ...]:
    held: set[tuple[str, str]] = set()
    for at, channel, purpose, granted in events:
        if at >= t:
            break
        (held.add if granted else held.discard)((channel, purpose))
    return marketing_channels(held)


def order_state(o: Order, cut: datetime) -> OrderState:
    returned: Counter[str] = Counter()
    for at, sku, n in o.returns:
        if at < cut:
            returned[sku] += n
    return OrderState(
        order_id=o.order_id,
        customer_id=o.customer,
        items=tuple(o.items),
        status="delivered",
        returned=dict(returned),
        placed_at=o.at,
    )


def most_popular(
    facts: CustomerFacts, stats: Population, products: dict[str, Product]
) -> list[str]:
    never = excluded(facts, products)
    ranked = sorted(
        (sku for sku, p in products.items() if p.on_sale and p.kind != "plan" and sku not in never),
        key=lambda s: (-stats.popularity.get(s, 0), s),
    )
    return ranked[:TOP]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--customers", type=int, default=4000)
    parser.add_argument("--years", type=float, default=3.0)
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--now", default="2026-05-01T12:00:00", help="where the history ends")
    args = parser.parse_args()
    now = datetime.fromisoformat(args.now).replace(tzinfo=UTC)
    config = HistoryConfig(now=now, customers=args.customers, years=args.years, seed=args.seed)

    t0 = time.perf_counter()
    catalogue, orders, consents, subs = read(config)
    by_customer: dict[UUID, list[Order]] = defaultdict(list)
    for o in orders.values():
        if not o.cancelled:
            by_customer[o.customer].append(o)
    held_out: dict[UUID, Order] = {}
    for customer, mine in by_customer.items():
        mine.sort(key=lambda o: (o.at, str(o.order_id)))
        if len(mine) >= 2:
            held_out[customer] = mine.pop()
    stats = population(
        (c, {i.sku for i in o.items}) for c, mine in by_customer.items() for o in mine
    )
    plans = subscription_states(subs)
    log(
        f"history: {len(orders):,} orders of {len(by_customer):,} customers, "
        f"{len(held_out):,} held out ({time.perf_counter() - t0:.1f} s)"
    )

    t0 = time.perf_counter()
    ours = base = evaluated = no_consent = 0
    kinds: Counter[str] = Counter()
    for customer, last in held_out.items():
        cut = last.at
        channels = channels_at(consents.get(customer, []), cut)
        if not channels:
            no_consent += 1
            continue
        products = catalogue.at(cut)
        facts = customer_facts(
            customer,
            now=cut,
            products=products,
            channels=channels,
            orders=[order_state(o, cut) for o in by_customer[customer]],
            subscriptions=plans.get(customer, []),
        )
        wanted = {i.sku for i in last.items}
        offers = rank(facts, stats, products, now=cut, top=TOP)
        evaluated += 1
        ours += bool(wanted & {o.sku for o in offers})
        base += bool(wanted & set(most_popular(facts, stats, products)))
        kinds.update(o.reasons[0].kind for o in offers)
    seconds = time.perf_counter() - t0
    if not evaluated or not base:
        raise SystemExit(f"nothing to compare: {evaluated} customers, baseline hits {base}")
    hit, baseline = ours / evaluated, base / evaluated
    log(
        f"{evaluated:,} customers ({no_consent:,} without a marketing consent left out): "
        f"hit rate at {TOP} ours {hit:.3f}, most popular {baseline:.3f} "
        f"({seconds:.1f} s, {seconds / evaluated * 1000:.2f} ms a customer)"
    )
    log(f"leading reasons of our offers: {dict(kinds.most_common())}")
    emit(
        {
            "bench": "recommend",
            "value": round(hit, 4),
            "unit": f"hit rate at {TOP}",
            "baseline": round(baseline, 4),
            "ratio": round(hit / baseline, 3),
            "customers_evaluated": evaluated,
            "left_out_no_consent": no_consent,
            "held_out": len(held_out),
            "orders": len(orders),
            "ms_per_customer": round(seconds / evaluated * 1000, 3),
            "leading_reasons": dict(kinds.most_common()),
            "customers": args.customers,
            "years": args.years,
            "seed": args.seed,
            "now": now.isoformat(),
        }
    )


if __name__ == "__main__":
    main()
