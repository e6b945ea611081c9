"""The next best offers for one customer, ranked with their reasons (pure).

Inputs are plain structs the caller gathers (a view, a bench, a test): the customer's facts
(what they bought and when, returned, declined, their equipment and its wear, their plan and
their coffee usage, the channels they consented to for marketing) and the population's
statistics (how many customers bought each sku, which skus share an order, which are bought
by the same customers). The output is at most `top` offers, best first.

Scores add up evidence, each part with its reason:
- `reorder`: a re-buyable sku (coffee, a service) the customer bought before, by the share of
  their orders that held it and how recently;
- `bought_together`: the confidence that an order holding an item of theirs also holds the
  sku (counted when at least `MIN_SUPPORT` orders hold both and the lift is above 1);
- `similar_customers`: item-to-item cosine similarity over customers (customers who bought
  what they bought also bought it), averaged over their items, recent items weighing more;
- `upgrade`: a dearer product of the same category as a worn machine (wear >= `WORN`);
- `better_plan`: the dearest plan whose monthly price the coffee spend covers (or the
  cheapest, when the current plan costs more than the coffee bought);
- `popular`: a small share of the sku's popularity, so that ties and new customers still
  get an order.

Never offered: owned goods (durable goods bought and kept, equipment in service, the plan
running now), returned or declined skus, products not on sale. Consumables (category
`coffee`) and services are re-buyable: buying one does not make it owned. No consent for
marketing on any channel: no offers at all.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Collection, Hashable, Iterable, Mapping
from datetime import datetime, timedelta
from decimal import Decimal
from uuid import UUID

import msgspec

from domain.offers.events import Reason

MARKETING = "marketing"
"""The consent purpose offers need."""
CHANNEL_ORDER = ("email", "sms", "phone", "post")
"""The channel an offer goes through: the first of these the customer consented to."""
REBUYABLE_CATEGORIES = frozenset({"coffee"})
USAGE_CATEGORY = "coffee"
WORN = 0.8
MIN_SUPPORT = 3
HALF_LIFE = timedelta(days=180)
MONTH = timedelta(days=30.44)

W_REORDER = 1.0
W_TOGETHER = 0.6
W_SIMILAR = 1.0
W_POPULAR = 0.1
W_UPGRADE = 1.0
W_PLAN = 0.25


class Product(msgspec.Struct, frozen=True, kw_only=True):
    """A catalogue entry as the ranking needs it; a plan's price is per `period`."""

    sku: str
    category: str
    kind: str = "good"
    price: Decimal | None = None
    currency: str | None = None
    period: str | None = None
    on_sale: bool = True

    @property
    def monthly(self) -> Decimal | None:
        if self.price is None:
            return None
        return self.price / 12 if self.period == "year" else self.price


class Purchase(msgspec.Struct, frozen=True, kw_only=True):
    """One line of an order: `quantity` is the units kept (bought minus returned) and `amount`
    their net price."""

    order_id: UUID
    sku: str
    at: datetime
    quantity: int = 1
    amount: Decimal = Decimal(0)


class Equipment(msgspec.Struct, frozen=True, kw_only=True):
    """Equipment in service; `model` is compared with the catalogue's skus."""

    model: str
    wear: float | None = None


class CustomerFacts(msgspec.Struct, frozen=True, kw_only=True):
    customer_id: UUID
    purchases: tuple[Purchase, ...] = ()
    returned: frozenset[str] = frozenset()
    declined: frozenset[str] = frozenset()
    equipment: tuple[Equipment, ...] = ()
    plan: str | None = None
    coffee_units_per_month: float = 0.0
    coffee_spend_per_month: Decimal = Decimal(0)
    channels: tuple[str, ...] = ()  # consented for marketing


class Population(msgspec.Struct, frozen=True, kw_only=True):
    """Counts over every customer's orders: `popularity` (customers who bought a sku),
    `order_counts` (orders holding it), `together` (orders holding both skus), `co_customers`
    (customers who bought both)."""

    orders: int = 0
    customers: int = 0
    popularity: dict[str, int] = {}
    order_counts: dict[str, int] = {}
    together: dict[str, dict[str, int]] = {}
    co_customers: dict[str, dict[str, int]] = {}

    def cosine(self, a: str, b: str) -> float:
        both = self.co_customers.get(a, {}).get(b, 0)
        if not both:
            return 0.0
        return both / math.sqrt(self.popularity[a] * self.popularity[b])

    def confidence(self, a: str, b: str) -> tuple[float, int]:
        """P(b in an order | a in it) and the orders holding both; 0 below the support or
        without lift."""
        both = self.together.get(a, {}).get(b, 0)
        if both < MIN_SUPPORT:
            return 0.0, both
        conf = both / self.order_counts[a]
        lift = conf * self.orders / self.order_counts[b]
        return (conf if lift > 1 else 0.0), both


class Offer(msgspec.Struct, frozen=True, kw_only=True):
    sku: str
    score: float
    channel: str
    reasons: list[Reason]


def population(baskets: Iterable[tuple[Hashable, Collection[str]]]) -> Population:
    """Statistics of (customer, skus of one order) pairs: every order of every customer."""
    order_counts: Counter[str] = Counter()
    together: dict[str, Counter[str]] = defaultdict(Counter)
    bought: dict[Hashable, set[str]] = defaultdict(set)
    orders = 0
    for customer, skus in baskets:
        items = set(skus)
        if not items:
            continue
        orders += 1
        bought[customer] |= items
        for a in items:
            order_counts[a] += 1
            row = together[a]
            for b in items:
                if a != b:
                    row[b] += 1
    popularity: Counter[str] = Counter()
    co: dict[str, Counter[str]] = defaultdict(Counter)
    for items in bought.values():
        for a in items:
            popularity[a] += 1
            row = co[a]
            for b in items:
                if a != b:
                    row[b] += 1
    return Population(
        orders=orders,
        customers=len(bought),
        popularity=dict(popularity),
        order_counts=dict(order_counts),
        together={a: dict(r) for a, r in together.items()},
        co_customers={a: dict(r) for a, r in co.items()},
    )


def rebuyable(product: Product | None) -> bool:
    """Consumables and services are bought again; durable goods are owned once bought."""
    if product is None:
        return False
    return product.kind == "service" or product.category in REBUYABLE_CATEGORIES


def owned(facts: CustomerFacts, products: Mapping[str, Product]) -> set[str]:
    """Durable goods bought and kept, equipment in service, the plan running now."""
    out = {p.sku for p in facts.purchases if p.quantity > 0 and not rebuyable(products.get(p.sku))}
    out |= {e.model for e in facts.equipment}
    if facts.plan is not None:
        out.add(facts.plan)
    return out


def excluded(facts: CustomerFacts, products: Mapping[str, Product]) -> set[str]:
    """What is never offered to this customer: owned, returned or declined."""
    return owned(facts, products) | set(facts.returned) | set(facts.declined)


def channel_for(channels: Iterable[str]) -> str | None:
    """The consented channel offers go through (None: no consent, no offers)."""
    given = set(channels)
    for channel in CHANNEL_ORDER:
        if channel in given:
            return channel
    return min(given) if given else None


class _Scores:
    def __init__(self) -> None:
        self.parts: dict[str, list[tuple[float, Reason]]] = defaultdict(list)

    def add(self, sku: str, value: float, reason: Reason) -> None:
        if value > 0:
            self.parts[sku].append((value, reason))


def rank(
    facts: CustomerFacts,
    stats: Population,
    products: Mapping[str, Product],
    *,
    now: datetime,
    top: int = 5,
) -> list[Offer]:
    """At most `top` offers, best first (ties by sku), each with its reasons, strongest
    first; none without a consented channel."""
    channel = channel_for(facts.channels)
    if channel is None or top <= 0:
        return []
    never = excluded(facts, products)
    candidates = {
        sku for sku, p in products.items() if p.on_sale and p.kind != "plan" and sku not in never
    }
    scores = _Scores()
    _history(facts, stats, products, candidates, scores, now=now)
    _upgrades(facts, stats, products, candidates, scores)
    _plan(facts, products, never, scores)
    for sku in candidates:
        share = stats.popularity.get(sku, 0) / stats.customers if stats.customers else 0.0
        scores.add(
            sku,
            W_POPULAR * share,
            Reason(kind="popular", detail=f"bought by {share:.0%} of customers"),
        )
    offers = []
    for sku, parts in scores.parts.items():
        parts.sort(key=lambda x: -x[0])
        offers.append(
            Offer(
                sku=sku,
                score=round(sum(v for v, _ in parts), 6),
                channel=channel,
                reasons=[r for _, r in parts],
            )
        )
    offers.sort(key=lambda o: (-o.score, o.sku))
    return offers[:top]


def _history(
    facts: CustomerFacts,
    stats: Population,
    products: Mapping[str, Product],
    candidates: set[str],
    scores: _Scores,
    *,
    now: datetime,
) -> None:
    """Reorders, bought together and similar customers: evidence from what they bought."""
    last: dict[str, datetime] = {}
    orders_with: dict[str, set[UUID]] = defaultdict(set)
    for p in facts.purchases:
        orders_with[p.sku].add(p.order_id)
        if p.sku not in last or p.at > last[p.sku]:
            last[p.sku] = p.at
    if not last:
        return
    n_orders = len({p.order_id for p in facts.purchases})
    weight = {sku: 0.5 ** (max(now - at, timedelta(0)) / HALF_LIFE) for sku, at in last.items()}
    total = sum(weight.values())
    for sku in candidates:
        if sku in last and rebuyable(products.get(sku)):
            k = len(orders_with[sku])
            scores.add(
                sku,
                W_REORDER * weight[sku] * k / n_orders,
                Reason(
                    kind="reorder",
                    detail=f"in {k} of your {n_orders} orders, last on {last[sku].date()}",
                ),
            )
        best_conf, best_item, best_both = 0.0, "", 0
        similar, best_sim, sim_item = 0.0, 0.0, ""
        for item, w in weight.items():
            if item == sku:
                continue
            conf, both = stats.confidence(item, sku)
            if conf * w > best_conf:
                best_conf, best_item, best_both = conf * w, item, both
            cos = stats.cosine(item, sku)
            similar += w * cos
            if cos * w > best_sim:
                best_sim, sim_item = cos * w, item
        if best_item:
            scores.add(
                sku,
                W_TOGETHER * best_conf,
                Reason(
                    kind="bought_together",
                    detail=f"bought together with {best_item} in {best_both} orders",
                ),
            )
        if sim_item:
            n = stats.co_customers.get(sim_item, {}).get(sku, 0)
            scores.add(
                sku,
                W_SIMILAR * similar / total,
                Reason(
                    kind="similar_customers",
                    detail=f"{n} customers who bought {sim_item} bought it too",
                ),
            )


def _upgrades(
    facts: CustomerFacts,
    stats: Population,
    products: Mapping[str, Product],
    candidates: set[str],
    scores: _Scores,
) -> None:
    for e in facts.equipment:
        model = products.get(e.model)
        if e.wear is None or e.wear < WORN or model is None or model.price is None:
            continue
        for sku in candidates:
            p = products[sku]
            if (
                p.category != model.category
                or p.kind != model.kind
                or p.price is None
                or p.currency != model.currency
                or p.price < model.price
            ):
                continue
            value = W_UPGRADE * min(e.wear, 1.5) * (0.5 + 0.5 * stats.cosine(e.model, sku))
            detail = f"your {e.model} is at {e.wear:.0%} of its expected life"
            scores.add(sku, value, Reason(kind="upgrade", detail=detail))


def _plan(
    facts: CustomerFacts, products: Mapping[str, Product], never: set[str], scores: _Scores
) -> None:
    """The plan the coffee bought pays for: the dearest one its monthly spend covers."""
    spend = facts.coffee_spend_per_month
    current = products.get(facts.plan) if facts.plan is not None else None
    plans = sorted(
        (
            p
            for p in products.values()
            if p.kind == "plan"
            and p.on_sale
            and p.monthly is not None
            and (current is None or p.currency == current.currency)
        ),
        key=lambda p: (p.monthly, p.sku),
    )
    if not plans:
        return
    covered = [p for p in plans if p.monthly is not None and p.monthly <= spend]
    if covered:
        target = covered[-1]
    elif current is not None:
        target = plans[0]
    else:
        return
    if target.sku in never or (current is not None and target.monthly == current.monthly):
        return
    detail = (
        f"about {facts.coffee_units_per_month:.1f} units of coffee a month for "
        f"{spend:.2f} {target.currency or ''}; {target.sku} costs {target.monthly:.2f} a month"
    )
    scores.add(target.sku, W_PLAN, Reason(kind="better_plan", detail=detail))
