"""A product as decisions need it; the price bands in force; a price's segment (all pure)."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from itertools import pairwise
from uuid import UUID, uuid5

import msgspec
from msgspec.structs import replace

from domain.events import DomainEvent
from domain.money import Money
from domain.products import errors as err
from domain.products import events as ev
from domain.streams import fold_events

PRODUCTS_NS = UUID("18522b69-e1bf-4746-a1bd-2358a85a6813")
PRICE_BANDS_STREAM = UUID("3ddd2710-1b78-415b-94c5-bbc252ff5edc")
"""The one stream holding the price bands (stream type `price_bands`)."""


def product_stream_id(sku: str) -> UUID:
    """The stream of a product, derived from its sku as given (case matters)."""
    return uuid5(PRODUCTS_NS, sku)


def _eur(amount: int) -> Money:
    return Money(amount=Decimal(amount), currency="EUR")


DEFAULT_PRICE_BANDS = ev.PriceBands(
    default=(
        ev.Band(segment="budget", below=_eur(50)),
        ev.Band(segment="mid", below=_eur(200)),
        ev.Band(segment="premium"),
    )
)
"""In force until `product.price_bands_set`: budget < 50 EUR <= mid < 200 EUR <= premium."""


class ProductState(msgspec.Struct, frozen=True, kw_only=True):
    product_id: UUID
    version: int = 0
    sku: str | None = None
    name: str | None = None
    category: str | None = None
    kind: ev.ProductKind | None = None
    billing_period: ev.BillingPeriod | None = None
    list_price: Money | None = None
    retired: bool = False
    last_occurred_at: datetime | None = None

    @property
    def defined(self) -> bool:
        return self.sku is not None


class PriceBandsState(msgspec.Struct, frozen=True, kw_only=True):
    version: int = 0
    bands: ev.PriceBands = DEFAULT_PRICE_BANDS
    last_occurred_at: datetime | None = None


def segment_of(bands: ev.PriceBands, category: str, price: Money) -> str:
    """The segment of a price: the first band whose bound is above it. Bounds are exclusive
    (with `budget` below 50, a price of exactly 50 is not budget). A price in another currency
    than the bands raises CurrencyMismatch: bands are per currency, never converted."""
    for band in bands.categories.get(category, bands.default):
        if band.below is None or price < band.below:
            return band.segment
    raise err.InvalidPriceBands(category, "the last band must have no bound")


def check_bands(where: str, bands: tuple[ev.Band, ...]) -> None:
    """One list of bands: not empty, named uniquely, one currency, strictly rising bounds,
    and only the last one without a bound (so every price has a segment)."""
    if not bands:
        raise err.InvalidPriceBands(where, "no bands")
    names = [b.segment for b in bands]
    if not all(names) or len(set(names)) != len(names):
        raise err.InvalidPriceBands(where, f"segment names must be unique and not empty: {names}")
    *bounded, last = bands
    if last.below is not None:
        raise err.InvalidPriceBands(where, "the last band must have no bound")
    bounds = [b.below for b in bounded]
    if any(b is None for b in bounds):
        raise err.InvalidPriceBands(where, "only the last band may have no bound")
    currencies = {b.currency for b in bounds if b is not None}
    if len(currencies) > 1:
        raise err.InvalidPriceBands(where, f"mixed currencies {sorted(currencies)}")
    amounts = [b.amount for b in bounds if b is not None]
    if any(hi <= lo for lo, hi in pairwise(amounts)):
        raise err.InvalidPriceBands(where, "bounds must rise strictly")


def check_price_bands(bands: ev.PriceBands) -> None:
    check_bands("the default", bands.default)
    for category, listed in bands.categories.items():
        check_bands(f"category {category!r}", listed)


def evolve_product(state: ProductState, event: DomainEvent) -> ProductState:
    """Apply one event of a product's stream (pure)."""
    match event:
        case ev.ProductDefined():
            return replace(
                state,
                sku=event.sku,
                name=event.name,
                category=event.category,
                kind=event.kind,
                billing_period=event.billing_period,
                list_price=event.list_price,
            )
        case ev.ProductPriceChanged():
            return replace(state, list_price=event.new)
        case ev.ProductRetired():
            return replace(state, retired=True)
    return state


def evolve_bands(state: PriceBandsState, event: DomainEvent) -> PriceBandsState:
    if isinstance(event, ev.PriceBandsSet):
        return replace(state, bands=event.bands)
    return state


def fold_product(
    product_id: UUID,
    events: list[tuple[int, datetime, DomainEvent]],
    start: ProductState | None = None,
) -> ProductState:
    """State after (version, occurred_at, payload) triples in version order, from `start`
    (a state folded earlier, whose version the first triple follows) or from nothing."""
    start = start if start is not None else ProductState(product_id=product_id)
    return fold_events(lambda s, e, _at: evolve_product(s, e), start, events)


def fold_bands(
    events: list[tuple[int, datetime, DomainEvent]], start: PriceBandsState | None = None
) -> PriceBandsState:
    """The bands in force after the triples of the price-bands stream (the default before)."""
    start = start if start is not None else PriceBandsState()
    return fold_events(lambda s, e, _at: evolve_bands(s, e), start, events)
