"""Named errors for every invariant of the product catalogue. Mixed currencies raise
`domain.money.CurrencyMismatch`."""

from __future__ import annotations

from domain.errors import DomainError
from domain.money import Money


class ProductError(DomainError):
    code = "product_error"


class ProductNotFound(ProductError):
    code = "product_not_found"

    def __init__(self, sku: str) -> None:
        super().__init__(f"product {sku!r} is not defined")
        self.sku = sku


class ProductAlreadyDefined(ProductError):
    code = "product_already_defined"

    def __init__(self, sku: str) -> None:
        super().__init__(f"product {sku!r} is already defined; change its price or retire it")
        self.sku = sku


class ProductRetired(ProductError):
    code = "product_retired"

    def __init__(self, sku: str) -> None:
        super().__init__(f"product {sku!r} is retired")
        self.sku = sku


class NegativePrice(ProductError):
    code = "negative_price"

    def __init__(self, sku: str, price: Money) -> None:
        super().__init__(f"the price of {sku!r} cannot be negative ({price})")
        self.sku = sku
        self.price = price


class InvalidBillingPeriod(ProductError):
    """A plan is billed every month or year; goods and services have no billing period."""

    code = "invalid_billing_period"

    def __init__(self, sku: str, kind: str, period: str | None) -> None:
        need = "needs a billing period" if kind == "plan" else "has no billing period"
        super().__init__(f"{sku!r} is a {kind}: it {need} (got {period})")
        self.sku = sku
        self.kind = kind
        self.period = period


class InvalidPriceBands(ProductError):
    code = "invalid_price_bands"

    def __init__(self, where: str, reason: str) -> None:
        super().__init__(f"price bands of {where}: {reason}")
        self.where = where
        self.reason = reason
