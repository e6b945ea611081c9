"""Named errors for every invariant of an order; `code` is stable for replies and logs."""

from __future__ import annotations

from collections.abc import Iterable
from decimal import Decimal
from uuid import UUID

from domain import errors
from domain.errors import DomainError
from domain.money import Money


class OrderError(DomainError):
    code = "order_error"


class OrderNotFound(OrderError):
    code = "order_not_found"

    def __init__(self, order_id: UUID) -> None:
        super().__init__(f"order {order_id} was not placed")
        self.order_id = order_id


class OrderAlreadyPlaced(OrderError):
    code = "order_already_placed"

    def __init__(self, order_id: UUID) -> None:
        super().__init__(f"order {order_id} is already placed")
        self.order_id = order_id


class CustomerNotLive(OrderError):
    """Unknown, merged away or forgotten: orders go to a live customer only."""

    code = "customer_not_live"

    def __init__(self, customer_id: UUID) -> None:
        super().__init__(f"customer {customer_id} is unknown, merged or forgotten")
        self.customer_id = customer_id


class EmptyOrder(OrderError):
    code = "empty_order"

    def __init__(self, what: str = "order") -> None:
        super().__init__(f"an {what} needs at least one item")


class DuplicateSku(OrderError):
    """A sku appears on one line per order, so that returns know its price."""

    code = "duplicate_sku"

    def __init__(self, sku: str) -> None:
        super().__init__(f"sku {sku!r} is on more than one line; give it once with its quantity")
        self.sku = sku


class InvalidQuantity(OrderError):
    code = "invalid_quantity"

    def __init__(self, sku: str, quantity: int) -> None:
        super().__init__(f"quantity of {sku!r} must be a whole number above 0, not {quantity}")
        self.sku = sku
        self.quantity = quantity


class InvalidDiscount(OrderError):
    code = "invalid_discount"

    def __init__(self, sku: str, discount: Decimal) -> None:
        super().__init__(f"discount of {sku!r} must be in [0, 1), not {discount}")
        self.sku = sku
        self.discount = discount


class InvalidAmount(OrderError):
    code = "invalid_amount"

    def __init__(self, message: str) -> None:
        super().__init__(message)


class MixedCurrencies(OrderError):
    code = "mixed_currencies"

    def __init__(self, currencies: Iterable[str]) -> None:
        self.currencies = sorted(set(currencies))
        super().__init__(f"one order has one currency, not {', '.join(self.currencies)}")


class UnknownSku(OrderError):
    code = "unknown_sku"

    def __init__(self, sku: str) -> None:
        super().__init__(f"sku {sku!r} is not an active product")
        self.sku = sku


class InvalidInstalments(OrderError):
    code = "invalid_instalments"

    def __init__(self, method: str, instalments: int | None) -> None:
        super().__init__(
            f"instalments must be 2 or more for payment by instalments and absent otherwise "
            f"(method {method}, instalments {instalments})"
        )
        self.method = method
        self.instalments = instalments


class OrderCancelled(OrderError):
    code = "order_cancelled"

    def __init__(self, order_id: UUID) -> None:
        super().__init__(f"order {order_id} was cancelled")
        self.order_id = order_id


class AlreadyPaid(OrderError):
    """Paying a paid order, or more than is still due."""

    code = "already_paid"

    def __init__(self, order_id: UUID, outstanding: Money) -> None:
        super().__init__(f"order {order_id} has {outstanding} left to pay")
        self.order_id = order_id
        self.outstanding = outstanding


class ReturnExceedsPurchase(OrderError):
    code = "return_exceeds_purchase"

    def __init__(self, sku: str, bought: int, returned: int, asked: int) -> None:
        super().__init__(
            f"cannot return {asked} of {sku!r}: {bought} bought, {returned} already returned"
        )
        self.sku = sku
        self.bought = bought
        self.returned = returned
        self.asked = asked


class NotShippedYet(OrderError):
    code = "not_shipped_yet"

    def __init__(self, order_id: UUID) -> None:
        super().__init__(f"order {order_id} has not been shipped yet")
        self.order_id = order_id


class AlreadyDelivered(OrderError):
    code = "already_delivered"

    def __init__(self, order_id: UUID) -> None:
        super().__init__(f"order {order_id} was already delivered")
        self.order_id = order_id


class InvoiceAlreadyIssued(OrderError):
    code = "invoice_already_issued"

    def __init__(self, order_id: UUID, number: str) -> None:
        super().__init__(f"order {order_id} already has invoice {number}")
        self.order_id = order_id
        self.number = number


class EventBeforeLast(errors.EventBeforeLast, OrderError):
    """A lifecycle stream moves forward in business time."""
