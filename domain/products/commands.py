"""Commands of the product catalogue. Each is a msgspec Struct named by its tag."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import msgspec

from domain.commands import Command
from domain.money import Money
from domain.products.events import BillingPeriod, PriceBands, ProductKind

Sku = Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z0-9][A-Za-z0-9._:/-]{0,99}$")]
Name = Annotated[str, msgspec.Meta(min_length=1, max_length=500)]
Label = Annotated[str, msgspec.Meta(min_length=1, max_length=100)]


class ProductCommand(Command, frozen=True, kw_only=True):
    """`occurred_at` is business time as the source reports it; the engine's clock if absent."""

    occurred_at: datetime | None = None


class DefineProduct(ProductCommand, frozen=True, kw_only=True, tag="product.define"):
    sku: Sku
    name: Name
    category: Label
    kind: ProductKind = "good"
    list_price: Money
    billing_period: BillingPeriod | None = None


class ChangePrice(ProductCommand, frozen=True, kw_only=True, tag="product.change_price"):
    sku: Sku
    price: Money


class RetireProduct(ProductCommand, frozen=True, kw_only=True, tag="product.retire"):
    sku: Sku
    reason: Label | None = None


class SetPriceBands(ProductCommand, frozen=True, kw_only=True, tag="product.set_price_bands"):
    bands: PriceBands
