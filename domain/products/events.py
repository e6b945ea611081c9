"""Events of a product's stream and of the one price-bands stream. No personal data here."""

from __future__ import annotations

from typing import Literal

import msgspec

from domain.events import EVENTS, DomainEvent
from domain.money import Money

ProductKind = Literal["good", "service", "plan"]
BillingPeriod = Literal["month", "year"]


class Band(msgspec.Struct, frozen=True, kw_only=True):
    """A price strictly below `below` falls in `segment` (unless an earlier band took it);
    the last band of a list has no bound and takes every price above."""

    segment: str
    below: Money | None = None


class PriceBands(msgspec.Struct, frozen=True, kw_only=True):
    """Segments by category; a category not listed is banded by `default`."""

    default: tuple[Band, ...]
    categories: dict[str, tuple[Band, ...]] = {}


@EVENTS.register
class ProductDefined(DomainEvent, frozen=True, kw_only=True, tag="product.defined"):
    """A catalogue entry; a plan (a tariff) is billed every `billing_period`."""

    sku: str
    name: str
    category: str
    kind: ProductKind
    list_price: Money
    billing_period: BillingPeriod | None = None


@EVENTS.register
class ProductPriceChanged(DomainEvent, frozen=True, kw_only=True, tag="product.price_changed"):
    sku: str
    old: Money
    new: Money


@EVENTS.register
class ProductRetired(DomainEvent, frozen=True, kw_only=True, tag="product.retired"):
    """No longer sold; orders and deals of the past keep naming it."""

    sku: str
    reason: str | None = None


@EVENTS.register
class PriceBandsSet(DomainEvent, frozen=True, kw_only=True, tag="product.price_bands_set"):
    """The whole set of bands from now on (business time), replacing the previous one."""

    bands: PriceBands
