"""A customer's facts for the ranking, from the domain's own folded states (pure).

The command handler (folding the customer's streams from the log) and the offers view
(folding the facts tables) both call `customer_facts`, so an offer the view ranks is one the
command accepts, and the other way round.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from decimal import Decimal
from uuid import UUID

from domain.equipment.state import EquipmentState, wear
from domain.offers.rank import (
    MARKETING,
    MONTH,
    USAGE_CATEGORY,
    CustomerFacts,
    Equipment,
    Product,
    Purchase,
)
from domain.offers.state import OfferState
from domain.orders.state import OrderState, line_net
from domain.products.state import ProductState
from domain.subscriptions.state import SubscriptionState, term_at


def product_of(state: ProductState) -> Product | None:
    """The ranking's view of a catalogue entry (None if it was never defined)."""
    if not state.defined or state.sku is None or state.category is None:
        return None
    price = state.list_price
    return Product(
        sku=state.sku,
        category=state.category,
        kind=state.kind or "good",
        price=price.amount if price is not None else None,
        currency=price.currency if price is not None else None,
        period=state.billing_period,
        on_sale=not state.retired,
    )


def marketing_channels(consents: Iterable[tuple[str, str]]) -> tuple[str, ...]:
    """The channels of (channel, purpose) consents given for marketing, sorted."""
    return tuple(sorted({channel for channel, purpose in consents if purpose == MARKETING}))


def customer_facts(
    customer_id: UUID,
    *,
    now: datetime,
    products: Mapping[str, Product],
    channels: Iterable[str],
    orders: Iterable[OrderState] = (),
    subscriptions: Iterable[SubscriptionState] = (),
    equipment: Iterable[EquipmentState] = (),
    offers: Iterable[OfferState] = (),
) -> CustomerFacts:
    """Orders placed by `now` and not cancelled (units kept, net of returns), the plan running
    at `now`, equipment not retired, declined offers, and coffee bought per month since the
    first order (a month at least)."""
    purchases: list[Purchase] = []
    returned: set[str] = set()
    units, spend = 0, Decimal(0)
    first: datetime | None = None
    for o in orders:
        if not o.placed or o.status == "cancelled" or o.placed_at is None or o.placed_at > now:
            continue
        first = o.placed_at if first is None or o.placed_at < first else first
        for item in o.items:
            gone = o.returned.get(item.sku, 0)
            if gone:
                returned.add(item.sku)
            kept = max(item.quantity - gone, 0)
            amount = line_net(item, kept).amount
            purchases.append(
                Purchase(
                    order_id=o.order_id, sku=item.sku, at=o.placed_at, quantity=kept, amount=amount
                )
            )
            product = products.get(item.sku)
            if product is not None and product.category == USAGE_CATEGORY:
                units += kept
                spend += amount
    months = max((now - first) / MONTH, 1.0) if first is not None else 1.0
    plan = None
    latest: datetime | None = None
    for s in subscriptions:
        term = term_at(s, now) if s.started else None
        if term is not None and (latest is None or term.from_at > latest):
            plan, latest = term.plan, term.from_at
    kept_equipment = tuple(
        Equipment(model=e.model, wear=wear(e))
        for e in equipment
        if e.registered and e.status != "retired" and e.model is not None
    )
    declined = frozenset(o.sku for o in offers if o.status == "declined" and o.sku is not None)
    return CustomerFacts(
        customer_id=customer_id,
        purchases=tuple(sorted(purchases, key=lambda p: (p.at, p.sku))),
        returned=frozenset(returned),
        declined=declined,
        equipment=kept_equipment,
        plan=plan,
        coffee_units_per_month=units / months,
        coffee_spend_per_month=(spend / Decimal(months)).quantize(Decimal("0.01")),
        channels=tuple(channels),
    )
