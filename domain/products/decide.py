"""Decisions of the product catalogue: `decide(state, command) -> events` (pure).

A command that changes nothing decides no events (retiring twice, the same price again);
a command that breaks an invariant raises a named ProductError (or CurrencyMismatch).
"""

from __future__ import annotations

from domain.events import DomainEvent
from domain.money import CurrencyMismatch, Money
from domain.products import commands as cmd
from domain.products import errors as err
from domain.products import events as ev
from domain.products.state import PriceBandsState, ProductState, check_price_bands


def _check_price(sku: str, price: Money) -> None:
    if price.amount < 0:
        raise err.NegativePrice(sku, price)


def ensure_on_sale(state: ProductState, sku: str) -> None:
    """The product is defined and not retired."""
    if not state.defined:
        raise err.ProductNotFound(sku)
    if state.retired:
        raise err.ProductRetired(sku)


def define(state: ProductState, c: cmd.DefineProduct) -> list[DomainEvent]:
    if state.defined:
        raise err.ProductAlreadyDefined(c.sku)
    if (c.kind == "plan") != (c.billing_period is not None):
        raise err.InvalidBillingPeriod(c.sku, c.kind, c.billing_period)
    _check_price(c.sku, c.list_price)
    return [
        ev.ProductDefined(
            sku=c.sku,
            name=c.name,
            category=c.category,
            kind=c.kind,
            list_price=c.list_price,
            billing_period=c.billing_period,
        )
    ]


def change_price(state: ProductState, c: cmd.ChangePrice) -> list[DomainEvent]:
    """A new list price in the product's currency: a catalogue does not convert."""
    ensure_on_sale(state, c.sku)
    assert state.list_price is not None
    if c.price.currency != state.list_price.currency:
        raise CurrencyMismatch(state.list_price.currency, c.price.currency)
    _check_price(c.sku, c.price)
    if c.price.amount == state.list_price.amount:
        return []
    return [ev.ProductPriceChanged(sku=c.sku, old=state.list_price, new=c.price)]


def retire(state: ProductState, c: cmd.RetireProduct) -> list[DomainEvent]:
    if not state.defined:
        raise err.ProductNotFound(c.sku)
    if state.retired:
        return []
    return [ev.ProductRetired(sku=c.sku, reason=c.reason)]


def set_price_bands(state: PriceBandsState, c: cmd.SetPriceBands) -> list[DomainEvent]:
    check_price_bands(c.bands)
    if c.bands == state.bands:
        return []
    return [ev.PriceBandsSet(bands=c.bands)]
