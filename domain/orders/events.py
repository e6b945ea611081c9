"""Events of an order's stream. Amounts are Money (Decimal with currency), never float.

The occasion's person and date are flat fields of `order.placed`, not a nested Struct: the
codec finds personal fields on the payload itself, so a nested one would go unencrypted.
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Annotated, Literal
from uuid import UUID

import msgspec

from domain.events import EVENTS, PERSONAL, DomainEvent
from domain.money import Money

PaymentMethod = Literal["card", "transfer", "cash", "invoice", "instalments"]
OccasionKind = Literal["birthday", "anniversary", "wedding", "christmas", "other"]
OrderStatus = Literal["placed", "shipped", "delivered", "cancelled"]


class OrderLine(msgspec.Struct, frozen=True, kw_only=True):
    """One sku of an order; `discount` is a fraction of the unit price in [0, 1)."""

    sku: str
    quantity: int
    unit_price: Money
    discount: Decimal = Decimal(0)


class Occasion(msgspec.Struct, frozen=True, kw_only=True):
    """What an order is for; `for_person` and `date` are personal data."""

    kind: OccasionKind
    for_person: str | None = None
    date: date | None = None


class ReturnLine(msgspec.Struct, frozen=True, kw_only=True):
    sku: str
    quantity: int


@EVENTS.register
class OrderPlaced(DomainEvent, frozen=True, kw_only=True, tag="order.placed"):
    """`total` is the sum of the lines' net amounts, each rounded to the cent."""

    customer_id: UUID
    items: list[OrderLine]
    total: Money
    payment_method: PaymentMethod
    instalments: int | None = None
    occasion: OccasionKind | None = None
    occasion_for: Annotated[str | None, PERSONAL] = None
    occasion_date: Annotated[date | None, PERSONAL] = None
    deal_id: UUID | None = None


@EVENTS.register
class InvoiceIssued(DomainEvent, frozen=True, kw_only=True, tag="order.invoice_issued"):
    number: str
    due_date: date
    amount: Money


@EVENTS.register
class PaymentReceived(DomainEvent, frozen=True, kw_only=True, tag="order.payment_received"):
    amount: Money
    method: PaymentMethod | None = None


@EVENTS.register
class OrderPaid(DomainEvent, frozen=True, kw_only=True, tag="order.paid"):
    """Decided with the payment that completes the amount due; `amount` is the sum paid."""

    amount: Money


@EVENTS.register
class OrderShipped(DomainEvent, frozen=True, kw_only=True, tag="order.shipped"):
    tracking: str | None = None


@EVENTS.register
class OrderDelivered(DomainEvent, frozen=True, kw_only=True, tag="order.delivered"):
    pass


@EVENTS.register
class OrderCancelled(DomainEvent, frozen=True, kw_only=True, tag="order.cancelled"):
    reason: Annotated[str, PERSONAL]  # free text: may say anything about the customer


@EVENTS.register
class OrderReturned(DomainEvent, frozen=True, kw_only=True, tag="order.returned"):
    items: list[ReturnLine]
    reason: Annotated[str, PERSONAL]  # free text: may say anything about the customer
    refund: Money
