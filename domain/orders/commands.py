"""Commands on orders. Quantities, discounts and instalments are checked by the domain (with
named errors), not by the decoder, so every channel gets the same answer."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated
from uuid import UUID

import msgspec

from domain.commands import Command
from domain.money import Money
from domain.orders.events import Occasion, OrderLine, PaymentMethod, ReturnLine

NonEmpty = Annotated[str, msgspec.Meta(min_length=1, max_length=500)]
Label = Annotated[str, msgspec.Meta(min_length=1, max_length=100)]


class OrderCommand(Command, frozen=True, kw_only=True):
    """`occurred_at` is business time as the source reports it; the engine's clock if absent."""

    occurred_at: datetime | None = None


class PlaceOrder(OrderCommand, frozen=True, kw_only=True, tag="order.place"):
    order_id: UUID | None = None
    customer_id: UUID
    items: list[OrderLine]
    payment_method: PaymentMethod
    instalments: int | None = None
    occasion: Occasion | None = None
    deal_id: UUID | None = None


class IssueInvoice(OrderCommand, frozen=True, kw_only=True, tag="order.issue_invoice"):
    """`amount` defaults to the order's total."""

    order_id: UUID
    number: Label
    due_date: date
    amount: Money | None = None


class PayOrder(OrderCommand, frozen=True, kw_only=True, tag="order.pay"):
    order_id: UUID
    amount: Money
    method: PaymentMethod | None = None


class ShipOrder(OrderCommand, frozen=True, kw_only=True, tag="order.ship"):
    order_id: UUID
    tracking: Label | None = None


class DeliverOrder(OrderCommand, frozen=True, kw_only=True, tag="order.deliver"):
    order_id: UUID


class CancelOrder(OrderCommand, frozen=True, kw_only=True, tag="order.cancel"):
    order_id: UUID
    reason: NonEmpty


class ReturnOrder(OrderCommand, frozen=True, kw_only=True, tag="order.return"):
    """`refund` defaults to the net price paid for the returned units."""

    order_id: UUID
    items: list[ReturnLine]
    reason: NonEmpty
    refund: Money | None = None
