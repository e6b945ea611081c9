"""Decisions on an order: `decide(state, command, ..., at) -> events` (pure).

`at` is the business time the events will carry; a lifecycle stream never goes back in it.
Repeating a step already taken (shipping a shipped order) decides no events; breaking an
invariant raises a named OrderError.
"""

from __future__ import annotations

from collections.abc import Sequence
from collections.abc import Set as AbstractSet
from datetime import datetime
from uuid import UUID

from domain.events import DomainEvent
from domain.money import Money, total
from domain.orders import commands as cmd
from domain.orders import errors as err
from domain.orders import events as ev
from domain.orders.state import (
    OrderState,
    amount_due,
    line_net,
    net_total,
    outstanding,
    refund_for,
)


def ensure_placed(state: OrderState, at: datetime) -> None:
    """The order exists and `at` is not before its last event."""
    if not state.placed:
        raise err.OrderNotFound(state.order_id)
    if state.last_occurred_at is not None and at < state.last_occurred_at:
        raise err.EventBeforeLast(state.order_id, state.last_occurred_at, at)


def _ensure_open(state: OrderState, at: datetime) -> None:
    ensure_placed(state, at)
    if state.status == "cancelled":
        raise err.OrderCancelled(state.order_id)


def _check_amount(state: OrderState, money: Money, what: str, *, zero_ok: bool = False) -> None:
    if money.currency != state.total.currency:
        raise err.MixedCurrencies([state.total.currency, money.currency])
    if not money.amount.is_finite() or money.amount < 0 or (money.amount == 0 and not zero_ok):
        raise err.InvalidAmount(f"{what} of {money.amount} is not a valid amount")


def _check_lines(items: Sequence[ev.OrderLine], known_skus: AbstractSet[str]) -> None:
    if not items:
        raise err.EmptyOrder()
    seen: set[str] = set()
    for item in items:
        if item.quantity <= 0:
            raise err.InvalidQuantity(item.sku, item.quantity)
        if not item.discount.is_finite() or not 0 <= item.discount < 1:
            raise err.InvalidDiscount(item.sku, item.discount)
        price = item.unit_price.amount
        if not price.is_finite() or price < 0:
            raise err.InvalidAmount(f"unit price of {item.sku!r} is {price}")
        if item.sku in seen:
            raise err.DuplicateSku(item.sku)
        seen.add(item.sku)
        if item.sku not in known_skus:
            raise err.UnknownSku(item.sku)
    currencies = {item.unit_price.currency for item in items}
    if len(currencies) > 1:
        raise err.MixedCurrencies(currencies)


def place_items(
    state: OrderState,
    *,
    customer_id: UUID,
    items: Sequence[ev.OrderLine],
    payment_method: ev.PaymentMethod,
    known_skus: AbstractSet[str],
    customer_live: bool,
    at: datetime,
    instalments: int | None = None,
    occasion: ev.Occasion | None = None,
    deal_id: UUID | None = None,
) -> list[DomainEvent]:
    """The core of `order.place`, shared with `deal.win` (which gives the deal's items).

    `known_skus` holds the active products' skus (a set, or a mapping's keys)."""
    if state.placed:
        raise err.OrderAlreadyPlaced(state.order_id)
    if not customer_live:
        raise err.CustomerNotLive(customer_id)
    _check_lines(items, known_skus)
    if (payment_method == "instalments") != (instalments is not None) or (
        instalments is not None and instalments < 2
    ):
        raise err.InvalidInstalments(payment_method, instalments)
    currency = items[0].unit_price.currency
    return [
        ev.OrderPlaced(
            customer_id=customer_id,
            items=list(items),
            total=total([line_net(item) for item in items], currency),
            payment_method=payment_method,
            instalments=instalments,
            occasion=occasion.kind if occasion is not None else None,
            occasion_for=occasion.for_person if occasion is not None else None,
            occasion_date=occasion.date if occasion is not None else None,
            deal_id=deal_id,
        )
    ]


def place(
    state: OrderState,
    c: cmd.PlaceOrder,
    *,
    known_skus: AbstractSet[str],
    customer_live: bool,
    at: datetime,
) -> list[DomainEvent]:
    return place_items(
        state,
        customer_id=c.customer_id,
        items=c.items,
        payment_method=c.payment_method,
        known_skus=known_skus,
        customer_live=customer_live,
        at=at,
        instalments=c.instalments,
        occasion=c.occasion,
        deal_id=c.deal_id,
    )


def issue_invoice(state: OrderState, c: cmd.IssueInvoice, *, at: datetime) -> list[DomainEvent]:
    _ensure_open(state, at)
    if state.invoice is not None:
        raise err.InvoiceAlreadyIssued(state.order_id, state.invoice.number)
    amount = c.amount if c.amount is not None else state.total
    _check_amount(state, amount, "invoice")
    if not state.fully_paid and amount <= state.paid:
        raise err.InvalidAmount(f"invoice of {amount} does not exceed the {state.paid} paid")
    return [ev.InvoiceIssued(number=c.number, due_date=c.due_date, amount=amount)]


def pay(state: OrderState, c: cmd.PayOrder, *, at: datetime) -> list[DomainEvent]:
    """A payment, and `order.paid` with the one that completes the amount due."""
    _ensure_open(state, at)
    _check_amount(state, c.amount, "payment")
    left = outstanding(state)
    if state.fully_paid or left < c.amount:
        raise err.AlreadyPaid(state.order_id, left)
    events: list[DomainEvent] = [ev.PaymentReceived(amount=c.amount, method=c.method)]
    if c.amount == left:
        events.append(ev.OrderPaid(amount=amount_due(state)))
    return events


def ship(state: OrderState, c: cmd.ShipOrder, *, at: datetime) -> list[DomainEvent]:
    _ensure_open(state, at)
    if state.status == "delivered":
        raise err.AlreadyDelivered(state.order_id)
    return [] if state.status == "shipped" else [ev.OrderShipped(tracking=c.tracking)]


def deliver(state: OrderState, c: cmd.DeliverOrder, *, at: datetime) -> list[DomainEvent]:
    _ensure_open(state, at)
    if state.status == "placed":
        raise err.NotShippedYet(state.order_id)
    return [] if state.status == "delivered" else [ev.OrderDelivered()]


def cancel(state: OrderState, c: cmd.CancelOrder, *, at: datetime) -> list[DomainEvent]:
    ensure_placed(state, at)
    if state.status == "delivered":
        raise err.AlreadyDelivered(state.order_id)
    return [] if state.status == "cancelled" else [ev.OrderCancelled(reason=c.reason)]


def return_items(state: OrderState, c: cmd.ReturnOrder, *, at: datetime) -> list[DomainEvent]:
    """Refund defaults to the net price of the returned units, discount included."""
    _ensure_open(state, at)
    if state.status == "placed":
        raise err.NotShippedYet(state.order_id)
    if not c.items:
        raise err.EmptyOrder("return")
    asked: dict[str, int] = {}
    for line in c.items:
        if line.quantity <= 0:
            raise err.InvalidQuantity(line.sku, line.quantity)
        asked[line.sku] = asked.get(line.sku, 0) + line.quantity
    refunds: list[Money] = []
    for sku, quantity in asked.items():
        item, returned = state.line(sku), state.returned.get(sku, 0)
        bought = item.quantity if item is not None else 0
        if item is None or returned + quantity > bought:
            raise err.ReturnExceedsPurchase(sku, bought, returned, quantity)
        refunds.append(refund_for(item, returned, quantity))
    refund = c.refund if c.refund is not None else total(refunds, state.total.currency)
    _check_amount(state, refund, "refund", zero_ok=True)
    if net_total(state) < refund:
        raise err.InvalidAmount(f"refund of {refund} exceeds the {net_total(state)} left")
    items = [ev.ReturnLine(sku=sku, quantity=quantity) for sku, quantity in asked.items()]
    return [ev.OrderReturned(items=items, reason=c.reason, refund=refund)]
