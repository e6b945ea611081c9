"""`orders`: every order as facts at business time, the report over them, and the invoices
overdue now.

- `orders_facts`: one row per order event (and per merge of customers), so the report folds
  each order with the domain's `fold` as of any date: spend net of returns, order count,
  average order value, payment mix, overdue invoices, return rate per product, and the history
  of one customer (the customers merged into it included).
- `orders_overdue`: the invoices overdue now, kept by timers: an issued invoice sets one at the
  start of the day after its due date; payment or cancellation removes it. Nothing rescans
  every order as time passes.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from datetime import date, datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

import msgspec

from domain.customers import events as cev
from domain.envelope import Envelope
from domain.orders import events as oev
from domain.orders.state import (
    OrderState,
    fold,
    is_overdue,
    net_total,
    outstanding,
    overdue_at,
)
from projections.facts import FactTable, fold_streams, read_facts, survivors
from projections.ports import ProjectionDB
from projections.projection import Tables, Timer

ORDER_EVENTS = (
    oev.OrderPlaced,
    oev.InvoiceIssued,
    oev.PaymentReceived,
    oev.OrderPaid,
    oev.OrderShipped,
    oev.OrderDelivered,
    oev.OrderCancelled,
    oev.OrderReturned,
)
OVERDUE_COLUMNS = ("order_id", "customer_id", "number", "due_date", "amount", "currency")


class OrdersView(FactTable):
    name = "orders"
    version = 1
    event_types = (*ORDER_EVENTS, cev.CustomerMergedInto, cev.CustomerUnmerged)
    extra_tables = {
        "orders_overdue": (
            "order_id {uuid} PRIMARY KEY, customer_id {uuid}, number {text}, due_date {date}, "
            "amount {text}, currency {text}"
        )
    }

    def apply(self, t: Tables, events: list[Envelope[Any]], now: datetime) -> None:
        super().apply(t, events, now)
        settled: list[UUID] = []
        for e in events:
            p = e.payload
            key = f"overdue:{e.stream_id}"
            if isinstance(p, oev.InvoiceIssued):
                row = [str(e.stream_id), str(e.customer_id or ""), p.number, p.due_date.isoformat()]
                t.schedule(
                    key,
                    overdue_at(p.due_date),
                    msgspec.json.encode([*row, str(p.amount.amount), p.amount.currency]).decode(),
                )
            elif isinstance(p, oev.OrderPaid | oev.OrderCancelled):
                t.cancel(key)
                settled.append(e.stream_id)
        if settled:  # one statement per page, not one per payment
            t.fetch_in(
                "DELETE FROM {orders_overdue} WHERE {in} RETURNING order_id", "order_id", settled
            )

    def on_timers(self, t: Tables, timers: list[Timer], now: datetime) -> None:
        """An invoice's due date passed with no payment (a payment would have cancelled it)."""
        rows = []
        for timer in timers:
            order_id, customer_id, number, due, amount, currency = msgspec.json.decode(
                timer.payload
            )
            rows.append(
                (
                    UUID(order_id),
                    UUID(customer_id) if customer_id else None,
                    number,
                    date.fromisoformat(due),
                    amount,
                    currency,
                )
            )
        t.replace_rows("orders_overdue", "order_id", OVERDUE_COLUMNS, rows)


# -- the report -------------------------------------------------------------------------


class Totals(msgspec.Struct, frozen=True, kw_only=True):
    currency: str
    orders: int
    customers: int
    gross: Decimal
    refunds: Decimal
    net: Decimal
    average_order_value: Decimal


class PaymentShare(msgspec.Struct, frozen=True, kw_only=True):
    method: str
    orders: int
    share: float


class OverdueInvoice(msgspec.Struct, frozen=True, kw_only=True):
    order_id: UUID
    customer_id: UUID | None
    number: str
    due_date: date
    outstanding: Decimal
    currency: str


class ProductReturns(msgspec.Struct, frozen=True, kw_only=True):
    sku: str
    sold: int
    returned: int
    rate: float


class CustomerSpend(msgspec.Struct, frozen=True, kw_only=True):
    customer_id: UUID
    orders: int
    net: Decimal
    currency: str
    last_order_at: datetime | None


class OrdersReport(msgspec.Struct, frozen=True, kw_only=True):
    as_of: datetime
    totals: list[Totals]
    payment_mix: list[PaymentShare]
    overdue: list[OverdueInvoice]
    returns: list[ProductReturns]
    top_customers: list[CustomerSpend]


class OrderSummary(msgspec.Struct, frozen=True, kw_only=True):
    order_id: UUID
    customer_id: UUID | None
    placed_at: datetime | None
    status: str | None
    total: str
    net: str
    payment_method: str | None
    paid: bool
    overdue: bool


def order_states(
    db: ProjectionDB, as_of: datetime | None = None
) -> tuple[dict[UUID, OrderState], dict[UUID, UUID]]:
    """Every order's state at `as_of` (business time) and the merges then in force."""
    facts = read_facts(db, "orders", as_of=as_of)
    return fold_streams(facts, fold, ORDER_EVENTS), survivors(facts)


def orders_report(
    db: ProjectionDB, *, now: datetime, as_of: datetime | None = None, top: int = 10
) -> OrdersReport:
    """Orders as known at `as_of` (default: now). Cancelled orders count nowhere; spend is net
    of refunds; a merged customer's orders count for the survivor."""
    at = as_of or now
    states, merged = order_states(db, at)  # nothing dated after the report's date
    live = [s for s in states.values() if s.placed and s.status != "cancelled"]
    by_currency: dict[str, list[OrderState]] = defaultdict(list)
    for s in live:
        by_currency[s.total.currency].append(s)
    totals = []
    for currency, orders in sorted(by_currency.items()):
        gross = sum((s.total.amount for s in orders), Decimal(0))
        refunds = sum(
            (s.refunded.amount for s in orders if s.refunded.currency == currency), Decimal(0)
        )
        totals.append(
            Totals(
                currency=currency,
                orders=len(orders),
                customers=len({merged.get(s.customer_id, s.customer_id) for s in orders}),  # type: ignore[arg-type]
                gross=gross,
                refunds=refunds,
                net=gross - refunds,
                average_order_value=((gross - refunds) / len(orders)).quantize(Decimal("0.01")),
            )
        )
    methods = Counter(s.payment_method for s in live)
    mix = [
        PaymentShare(method=str(m), orders=n, share=n / len(live)) for m, n in methods.most_common()
    ]
    overdue = sorted(
        (
            OverdueInvoice(
                order_id=s.order_id,
                customer_id=merged.get(s.customer_id, s.customer_id),  # type: ignore[arg-type]
                number=s.invoice.number if s.invoice else "",
                due_date=s.invoice.due_date if s.invoice else at.date(),
                outstanding=outstanding(s).amount,
                currency=s.total.currency,
            )
            for s in states.values()
            if is_overdue(s, at)
        ),
        key=lambda o: (o.due_date, str(o.order_id)),
    )
    sold: Counter[str] = Counter()
    returned: Counter[str] = Counter()
    for s in live:
        for item in s.items:
            sold[item.sku] += item.quantity
        for sku, n in s.returned.items():
            returned[sku] += n
    returns = sorted(
        (
            ProductReturns(sku=sku, sold=n, returned=returned[sku], rate=returned[sku] / n)
            for sku, n in sold.items()
        ),
        key=lambda r: (-r.rate, r.sku),
    )
    spend: dict[tuple[UUID, str], list[OrderState]] = defaultdict(list)
    for s in live:
        assert s.customer_id is not None
        spend[(merged.get(s.customer_id, s.customer_id), s.total.currency)].append(s)
    customers = sorted(
        (
            CustomerSpend(
                customer_id=cid,
                orders=len(orders),
                net=sum((net_total(s).amount for s in orders), Decimal(0)),
                currency=currency,
                last_order_at=max((s.placed_at for s in orders if s.placed_at), default=None),
            )
            for (cid, currency), orders in spend.items()
        ),
        key=lambda c: (-c.net, str(c.customer_id)),
    )[:top]
    return OrdersReport(
        as_of=at,
        totals=totals,
        payment_mix=mix,
        overdue=overdue,
        returns=returns,
        top_customers=customers,
    )


def customer_orders(
    db: ProjectionDB, customer_id: UUID, *, now: datetime, as_of: datetime | None = None
) -> list[OrderSummary]:
    """One customer's orders (and those of the customers merged into it), newest first."""
    at = as_of or now
    states, merged = order_states(db, at)  # nothing dated after the report's date
    mine = [
        s
        for s in states.values()
        if s.customer_id is not None and merged.get(s.customer_id, s.customer_id) == customer_id
    ]
    return [
        OrderSummary(
            order_id=s.order_id,
            customer_id=s.customer_id,
            placed_at=s.placed_at,
            status=s.status,
            total=str(s.total),
            net=str(net_total(s)),
            payment_method=s.payment_method,
            paid=s.fully_paid,
            overdue=is_overdue(s, at),
        )
        for s in sorted(mine, key=lambda s: s.placed_at or at, reverse=True)
    ]


def overdue_now(db: ProjectionDB) -> list[tuple[Any, ...]]:
    """The live table the timers keep: invoices overdue as of the projector's clock."""
    q = db.dialect.qualify("orders_overdue")
    return db.fetch(f"SELECT {', '.join(OVERDUE_COLUMNS)} FROM {q} ORDER BY due_date, order_id")
