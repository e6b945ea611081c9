"""Days from placing an order to its payment, shipping and delivery, per payment method."""

from statistics import median

READS = ["order.placed", "order.paid", "order.shipped", "order.delivered", "order.cancelled"]
CHART = ("bar", "payment_method", ["to_paid_days", "to_shipped_days", "to_delivered_days"])
STEPS = {"order.paid": "paid", "order.shipped": "shipped", "order.delivered": "delivered"}


def fold(state, event):
    if event.type == "order.placed":
        state[event.stream_id] = {"method": event.payload.payment_method, "at": event.occurred_at}
    elif (order := state.get(event.stream_id)) is not None:
        order[STEPS.get(event.type, "cancelled")] = event.occurred_at


def answer(state):
    methods = {}
    for order in state.values():
        methods.setdefault(order["method"], []).append(order)

    def days(orders, step):
        waits = [(o[step] - o["at"]).total_seconds() / 86400 for o in orders if step in o]
        return round(median(waits), 2) if waits else None

    return [
        {
            "payment_method": method,
            "orders": len(orders),
            "to_paid_days": days(orders, "paid"),
            "to_shipped_days": days(orders, "shipped"),
            "to_delivered_days": days(orders, "delivered"),
            "delivered": f"{sum(1 for o in orders if 'delivered' in o) / len(orders):.0%}",
            "cancelled": f"{sum(1 for o in orders if 'cancelled' in o) / len(orders):.0%}",
        }
        for method, orders in sorted(methods.items(), key=lambda kv: -len(kv[1]))
    ]
