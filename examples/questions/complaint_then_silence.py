"""Customers who complained within 30 days of a delivery and then stopped ordering."""

from datetime import timedelta

READS = ["order.placed", "order.delivered", "ticket.opened"]
WINDOW = timedelta(days=30)  # the complaint falls in (delivery, delivery + 30 days]
SILENCE = timedelta(days=30)  # and no order since, for at least this long


def start():
    return {"orders": {}, "deliveries": {}, "complaints": {}}


def fold(state, event):
    # Business times may arrive out of order across streams: keep them, sort in answer().
    if event.type == "ticket.opened":
        if event.payload.kind == "complaint":
            state["complaints"].setdefault(event.customer_id, []).append(
                (event.occurred_at, event.payload.category)
            )
    elif event.type == "order.delivered":
        state["deliveries"].setdefault(event.customer_id, []).append(event.occurred_at)
    else:
        state["orders"].setdefault(event.customer_id, []).append(event.occurred_at)


def answer(state, ctx):
    rows = []
    for customer, complaints in state["complaints"].items():
        deliveries = state["deliveries"].get(customer, [])
        orders = state["orders"].get(customer, [])
        for at, category in sorted(complaints):
            delivered = [d for d in deliveries if at - WINDOW <= d < at]
            if not delivered or any(o > at for o in orders) or ctx.now - at < SILENCE:
                continue
            rows.append(
                {
                    "customer_id": str(customer),
                    "delivered_at": max(delivered).date().isoformat(),
                    "complained_at": at.date().isoformat(),
                    "category": category,
                    "orders_before": sum(1 for o in orders if o <= at),
                    "silent_days": (ctx.now - at).days,
                }
            )
            break  # the first complaint after which they never ordered again
    return sorted(rows, key=lambda r: -r["silent_days"])
