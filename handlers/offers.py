"""Handlers of offers: present (checked against the customer's consents and what they own,
returned or declined), accept, decline. One stream per offer."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from typing import Protocol, cast
from uuid import UUID

from domain.customers.state import CustomerState
from domain.envelope import Envelope
from domain.equipment.state import fold as fold_equipment
from domain.offers import commands as cmd
from domain.offers import decide
from domain.offers.holdings import customer_facts, marketing_channels, product_of
from domain.offers.rank import CustomerFacts, Product
from domain.offers.state import fold
from domain.orders.state import fold as fold_order
from domain.subscriptions.state import fold as fold_subscription
from handlers.decision import CommandContext, Decision
from handlers.deps import Deps, business_time, live_customer, load_customer, load_state, new_id
from handlers.lifecycle import handles_on_stream
from handlers.products import load_products
from handlers.registry import COMMANDS

PAGE = 10_000
FOLDS = {
    "order": fold_order,
    "subscription": fold_subscription,
    "equipment": fold_equipment,
    "offer": fold,
}


class CustomerHistory(Protocol):
    """Every event about a customer across its streams, in log order (the event store)."""

    def read_customer(
        self, customer_id: UUID, after: int = 0, limit: int = PAGE
    ) -> list[Envelope]: ...


def _streams(deps: Deps, customer_ids: Iterable[UUID]) -> dict[str, dict[UUID, list[Envelope]]]:
    """The customers' order, subscription, equipment and offer streams, by type and id."""
    reader = cast(CustomerHistory, deps.log)
    found: dict[str, dict[UUID, list[Envelope]]] = defaultdict(lambda: defaultdict(list))
    for customer_id in customer_ids:
        after = 0
        while True:
            page = reader.read_customer(customer_id, after, PAGE)
            for e in page:
                if e.stream_type in FOLDS:
                    found[e.stream_type][e.stream_id].append(e)
            if len(page) < PAGE or page[-1].position is None:
                break
            after = page[-1].position
    return found


def with_absorbed(deps: Deps, customer: CustomerState) -> list[UUID]:
    """The customer and every customer merged into it (through chains): their orders, plans,
    equipment and offers are the survivor's, as the offers view counts them."""
    found, todo = [customer.customer_id], list(customer.absorbed)
    while todo:
        merged = todo.pop()
        if merged not in found:
            found.append(merged)
            todo.extend(load_customer(deps, merged).absorbed)
    return found


def facts_of(
    deps: Deps,
    customer_id: UUID,
    channels: tuple[str, ...],
    sku: str,
    merged: Iterable[UUID] = (),
) -> tuple[CustomerFacts, dict[str, Product]]:
    """What the customer (with the customers `merged` into it) holds now (business time by
    the engine's clock), and the catalogue entries of the skus involved."""
    streams = _streams(deps, [customer_id, *(m for m in merged if m != customer_id)])
    states = {
        kind: [
            FOLDS[kind](i, [(e.version, e.occurred_at, e.payload) for e in events])
            for i, events in by_id.items()
        ]
        for kind, by_id in streams.items()
    }
    skus = {sku}
    for o in states.get("order", []):
        skus |= {item.sku for item in o.items}
    for e in states.get("equipment", []):
        if e.model is not None:
            skus.add(e.model)
    products = {s: p for s, state in load_products(deps, skus).items() if (p := product_of(state))}
    facts = customer_facts(
        customer_id,
        now=deps.clock.now(),
        products=products,
        channels=channels,
        orders=states.get("order", []),
        subscriptions=states.get("subscription", []),
        equipment=states.get("equipment", []),
        offers=states.get("offer", []),
    )
    return facts, products


@COMMANDS.handles(cmd.PresentOffer)
def present(c: cmd.PresentOffer, ctx: CommandContext, deps: Deps) -> Decision:
    state = load_state(deps, c.offer_id or new_id(ctx, "offer"), fold)
    customer = live_customer(deps, c.customer_id)
    at = business_time(c, deps)
    facts, products = facts_of(
        deps,
        c.customer_id,
        marketing_channels(customer.consents),
        c.sku,
        merged=with_absorbed(deps, customer),
    )
    payloads = decide.present(state, c, facts=facts, products=products, customer_live=True, at=at)
    return Decision().add(
        ctx,
        stream_id=state.offer_id,
        stream_type="offer",
        after_version=state.version,
        payloads=payloads,
        occurred_at=at,
        customer_id=c.customer_id,
        channel=c.channel,
    )


handles_on_stream(
    ((cmd.AcceptOffer, decide.accept), (cmd.DeclineOffer, decide.decline)),
    id_field="offer_id",
    stream_type="offer",
    fold=fold,
)
