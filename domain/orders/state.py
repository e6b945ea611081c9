"""An order as decisions and views need it, folded from its stream; pure money helpers.

Amounts not yet known read as zero in `XXX` (ISO 4217: no currency) until the order is placed.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from uuid import UUID

import msgspec
from msgspec.structs import replace

from domain.events import DomainEvent
from domain.money import Money
from domain.orders import events as ev
from domain.streams import fold_events

NO_MONEY = Money.zero("XXX")


class Invoice(msgspec.Struct, frozen=True, kw_only=True):
    number: str
    due_date: date
    amount: Money
    issued_at: datetime


class OrderState(msgspec.Struct, frozen=True, kw_only=True):
    order_id: UUID
    version: int = 0
    customer_id: UUID | None = None
    items: tuple[ev.OrderLine, ...] = ()
    total: Money = NO_MONEY
    status: ev.OrderStatus | None = None
    payment_method: ev.PaymentMethod | None = None
    instalments: int | None = None
    occasion: ev.Occasion | None = None
    deal_id: UUID | None = None
    invoice: Invoice | None = None
    paid: Money = NO_MONEY
    paid_at: datetime | None = None
    returned: dict[str, int] = {}
    refunded: Money = NO_MONEY
    placed_at: datetime | None = None
    shipped_at: datetime | None = None
    delivered_at: datetime | None = None
    cancelled_at: datetime | None = None
    last_occurred_at: datetime | None = None

    @property
    def placed(self) -> bool:
        return self.status is not None

    @property
    def fully_paid(self) -> bool:
        return self.paid_at is not None

    def line(self, sku: str) -> ev.OrderLine | None:
        return next((item for item in self.items if item.sku == sku), None)


def line_net(item: ev.OrderLine, quantity: int | None = None) -> Money:
    """Net amount of `quantity` units of a line (all of them by default), to the cent."""
    units = item.quantity if quantity is None else quantity
    return (item.unit_price * (units * (Decimal(1) - item.discount))).rounded()


def refund_for(item: ev.OrderLine, already_returned: int, quantity: int) -> Money:
    """What returning `quantity` more units gives back. Taken as the difference of rounded
    line nets, so the refunds of a line add up to exactly its net, however it is split."""
    return line_net(item, already_returned + quantity) - line_net(item, already_returned)


def amount_due(state: OrderState) -> Money:
    """The invoice's amount once issued, else the order's total."""
    return state.invoice.amount if state.invoice is not None else state.total


def outstanding(state: OrderState) -> Money:
    """What is left to pay; nothing once paid (a later receipt invoice changes nothing)."""
    if state.fully_paid:
        return Money.zero(state.total.currency)
    return amount_due(state) - state.paid


def net_total(state: OrderState) -> Money:
    """What the order is worth after returns: total minus refunds."""
    return state.total - state.refunded


def overdue_from(state: OrderState) -> datetime | None:
    """When an unpaid invoice turns overdue (the start of the day after its due date, UTC),
    or None when it cannot: the timer a view sets to re-evaluate the order."""
    if state.invoice is None or state.fully_paid or state.status == "cancelled":
        return None
    return overdue_at(state.invoice.due_date)


def overdue_at(due_date: date) -> datetime:
    """An invoice due on `due_date` is overdue from the start of the next day (UTC)."""
    return datetime.combine(due_date + timedelta(days=1), time(), tzinfo=UTC)


def is_overdue(state: OrderState, now: datetime) -> bool:
    """Invoiced, not paid, not cancelled, and its due date has passed (naive `now` is UTC)."""
    since = overdue_from(state)
    if since is None:
        return False
    return (now if now.tzinfo is not None else now.replace(tzinfo=UTC)) >= since


def evolve(state: OrderState, event: DomainEvent, at: datetime) -> OrderState:
    """Apply one event of the order's stream, which happened at business time `at` (pure)."""
    match event:
        case ev.OrderPlaced():
            zero = Money.zero(event.total.currency)
            occasion = (
                ev.Occasion(
                    kind=event.occasion, for_person=event.occasion_for, date=event.occasion_date
                )
                if event.occasion is not None
                else None
            )
            return replace(
                state,
                customer_id=event.customer_id,
                items=tuple(event.items),
                total=event.total,
                status="placed",
                payment_method=event.payment_method,
                instalments=event.instalments,
                occasion=occasion,
                deal_id=event.deal_id,
                paid=zero,
                refunded=zero,
                placed_at=at,
            )
        case ev.InvoiceIssued():
            invoice = Invoice(
                number=event.number, due_date=event.due_date, amount=event.amount, issued_at=at
            )
            return replace(state, invoice=invoice)
        case ev.PaymentReceived():
            return replace(state, paid=state.paid + event.amount)
        case ev.OrderPaid():
            return replace(state, paid_at=at)
        case ev.OrderShipped():
            return replace(state, status="shipped", shipped_at=at)
        case ev.OrderDelivered():
            return replace(state, status="delivered", delivered_at=at)
        case ev.OrderCancelled():
            return replace(state, status="cancelled", cancelled_at=at)
        case ev.OrderReturned():
            returned = dict(state.returned)
            for line in event.items:
                returned[line.sku] = returned.get(line.sku, 0) + line.quantity
            return replace(state, returned=returned, refunded=state.refunded + event.refund)
    return state


def fold(
    order_id: UUID,
    events: list[tuple[int, datetime, DomainEvent]],
    start: OrderState | None = None,
) -> OrderState:
    """State after (version, occurred_at, payload) triples in version order, from `start`
    (a state folded earlier, whose version the first triple follows) or from nothing."""
    start = start if start is not None else OrderState(order_id=order_id)
    return fold_events(evolve, start, events)
