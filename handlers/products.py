"""Handlers of the product catalogue and its price bands."""

from __future__ import annotations

from collections.abc import Iterable

from domain.events import DomainEvent
from domain.products import commands as cmd
from domain.products import decide
from domain.products.state import (
    PRICE_BANDS_STREAM,
    ProductState,
    fold_bands,
    fold_product,
    product_stream_id,
)
from handlers.decision import CommandContext, Decision
from handlers.deps import Deps, business_time, load_state
from handlers.registry import COMMANDS


def load_products(deps: Deps, skus: Iterable[str]) -> dict[str, ProductState]:
    """The catalogue entries of these skus (one query); unknown skus are left out."""
    ids = {product_stream_id(s): s for s in set(skus)}
    found = deps.log.load_many(ids)
    states = {
        ids[i]: fold_product(i, [(e.version, e.occurred_at, e.payload) for e in events])
        for i, events in found.items()
    }
    return {sku: s for sku, s in states.items() if s.defined}


def on_sale(deps: Deps, skus: Iterable[str], *, plans_only: bool = False) -> set[str]:
    """The skus that are defined and not retired (plans only, for subscriptions)."""
    return {
        sku
        for sku, p in load_products(deps, skus).items()
        if not p.retired and (not plans_only or p.kind == "plan")
    }


def _on_product(
    ctx: CommandContext,
    c: cmd.ProductCommand,
    deps: Deps,
    state: ProductState,
    payloads: list[DomainEvent],
) -> Decision:
    return Decision().add(
        ctx,
        stream_id=state.product_id,
        stream_type="product",
        after_version=state.version,
        payloads=payloads,
        occurred_at=business_time(c, deps),
        customer_id=None,
    )


@COMMANDS.handles(cmd.DefineProduct)
def define(c: cmd.DefineProduct, ctx: CommandContext, deps: Deps) -> Decision:
    state = load_state(deps, product_stream_id(c.sku), fold_product)
    return _on_product(ctx, c, deps, state, decide.define(state, c))


@COMMANDS.handles(cmd.ChangePrice)
def change_price(c: cmd.ChangePrice, ctx: CommandContext, deps: Deps) -> Decision:
    state = load_state(deps, product_stream_id(c.sku), fold_product)
    return _on_product(ctx, c, deps, state, decide.change_price(state, c))


@COMMANDS.handles(cmd.RetireProduct)
def retire(c: cmd.RetireProduct, ctx: CommandContext, deps: Deps) -> Decision:
    state = load_state(deps, product_stream_id(c.sku), fold_product)
    return _on_product(ctx, c, deps, state, decide.retire(state, c))


@COMMANDS.handles(cmd.SetPriceBands)
def set_price_bands(c: cmd.SetPriceBands, ctx: CommandContext, deps: Deps) -> Decision:
    state = load_state(deps, PRICE_BANDS_STREAM, lambda _id, triples: fold_bands(triples))
    return Decision().add(
        ctx,
        stream_id=PRICE_BANDS_STREAM,
        stream_type="price_bands",
        after_version=state.version,
        payloads=decide.set_price_bands(state, c),
        occurred_at=business_time(c, deps),
        customer_id=None,
    )
