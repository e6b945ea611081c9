"""`offers`: offers presented, accepted and declined, the catalogue and the plans customers
are on, as facts at business time; `recommend` ranks the next best offers for a customer.

`offers_facts` holds one row per offer, product and subscription event (and per merge of
customers), folded with the domain's own folds as of any date. `recommend` gathers the
customer's facts from the views (orders from `orders_facts`, consents from
`customer_profile`, equipment from `equipment_facts` when that view exists, plans, offers and
the catalogue from `offers_facts`), the population's statistics from every order, and calls
the domain's pure ranking. It reads every order to count the population each time: fine for
thousands of customers, a table of counts kept by `apply` would be the next step past that.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime
from uuid import UUID

from domain.customers import events as cev
from domain.equipment import events as eev
from domain.equipment.state import EquipmentState
from domain.equipment.state import fold as fold_equipment
from domain.offers import events as ofev
from domain.offers.holdings import customer_facts, marketing_channels, product_of
from domain.offers.rank import Offer, Product, population, rank
from domain.offers.state import fold as fold_offer
from domain.products import events as pev
from domain.products.state import fold_product
from domain.subscriptions import events as sev
from domain.subscriptions.state import fold as fold_subscription
from projections.facts import FactTable, fold_streams, read_facts, survivors
from projections.orders_view import order_states
from projections.ports import ProjectionDB
from projections.projection import _resolve
from projections.queries import Views

OFFER_EVENTS = (ofev.OfferPresented, ofev.OfferAccepted, ofev.OfferDeclined)
PRODUCT_EVENTS = (pev.ProductDefined, pev.ProductPriceChanged, pev.ProductRetired)
SUBSCRIPTION_EVENTS = (sev.SubscriptionStarted, sev.PlanChanged, sev.SubscriptionCancelled)
EQUIPMENT_EVENTS = (
    eev.EquipmentRegistered,
    eev.UsageRecorded,
    eev.MaintenancePlanSet,
    eev.MaintenanceRecorded,
    eev.BreakdownReported,
    eev.EquipmentRetired,
)

EQUIPMENT_TAGS = [str(t.__struct_config__.tag) for t in EQUIPMENT_EVENTS]


class OffersView(FactTable):
    name = "offers"
    version = 1
    event_types = (
        *OFFER_EVENTS,
        *PRODUCT_EVENTS,
        *SUBSCRIPTION_EVENTS,
        cev.CustomerMergedInto,
        cev.CustomerUnmerged,
    )


def _equipment(db: ProjectionDB, now: datetime) -> list[EquipmentState]:
    """Equipment as of `now` from the equipment view's facts; none while that view is not
    set up in this store (an older store, or a projector without it)."""
    names = {"crm_projections": db.dialect.qualify("crm_projections")}
    sql = _resolve("SELECT 1 FROM {crm_projections} WHERE name = ?", names, db.dialect)
    known = db.fetch(sql, ("equipment",))
    if not known:
        return []
    facts = read_facts(db, "equipment", as_of=now, types=EQUIPMENT_TAGS)
    return list(fold_streams(facts, fold_equipment, EQUIPMENT_EVENTS).values())


def recommend(db: ProjectionDB, customer_id: UUID, *, now: datetime, top: int = 5) -> list[Offer]:
    """The next best offers for a customer as of `now`, best first, each with its reasons.
    None for a customer unknown to the views, forgotten, merged away, or without a consent
    to marketing; the orders of customers merged into this one count as theirs."""
    profile = Views(db).profile(customer_id)
    if profile is None or profile.forgotten or profile.merged_into is not None:
        return []
    channels = marketing_channels((c["channel"], c["purpose"]) for c in profile.consents)
    if not channels:
        return []
    facts = read_facts(db, "offers", as_of=now)
    merged = survivors(facts)

    def root(c: UUID) -> UUID:
        return merged.get(c, c)

    products: dict[str, Product] = {}
    for state in fold_streams(facts, fold_product, PRODUCT_EVENTS).values():
        if (p := product_of(state)) is not None:
            products[p.sku] = p
    subscriptions = [
        s
        for s in fold_streams(facts, fold_subscription, SUBSCRIPTION_EVENTS).values()
        if s.customer_id is not None and root(s.customer_id) == customer_id
    ]
    offers = [
        o
        for o in fold_streams(facts, fold_offer, OFFER_EVENTS).values()
        if o.customer_id is not None and root(o.customer_id) == customer_id
    ]
    orders, order_merges = order_states(db, now)
    baskets: dict[UUID, list[set[str]]] = defaultdict(list)
    mine = []
    for o in orders.values():
        if o.customer_id is None or o.status == "cancelled" or o.placed_at is None:
            continue
        owner = order_merges.get(o.customer_id, o.customer_id)
        baskets[owner].append({item.sku for item in o.items})
        if owner == customer_id:
            mine.append(o)
    equipment = [
        e
        for e in _equipment(db, now)
        if e.customer_id is not None and root(e.customer_id) == customer_id
    ]
    customer = customer_facts(
        customer_id,
        now=now,
        products=products,
        channels=channels,
        orders=mine,
        subscriptions=subscriptions,
        equipment=equipment,
        offers=offers,
    )
    stats = population((c, skus) for c, orders_of in baskets.items() for skus in orders_of)
    return rank(customer, stats, products, now=now, top=top)
