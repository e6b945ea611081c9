"""Days from a customer's first call to their first order, per acquisition channel."""

from statistics import mean, median

READS = ["customer.registered", "interaction.call_logged", "order.placed"]
CHART = ("bar", "channel", ["median_days", "mean_days"])


def start():
    return {"channel": {}, "first_call": {}, "first_order": {}}


def _earliest(firsts, customer, at):
    if customer not in firsts or at < firsts[customer]:
        firsts[customer] = at


def fold(state, event):
    if event.type == "customer.registered":
        state["channel"][event.customer_id] = event.payload.source
    elif event.type == "interaction.call_logged":
        _earliest(state["first_call"], event.customer_id, event.occurred_at)
    else:
        _earliest(state["first_order"], event.customer_id, event.occurred_at)


def answer(state):
    days, ordered_first = {}, {}
    for customer, ordered in state["first_order"].items():
        channel = state["channel"].get(customer, "unknown")
        called = state["first_call"].get(customer)
        if called is None or ordered < called:  # bought before we ever spoke on the phone
            ordered_first[channel] = ordered_first.get(channel, 0) + 1
            continue
        days.setdefault(channel, []).append((ordered - called).total_seconds() / 86400)
    return [
        {
            "channel": channel,
            "customers": len(values),
            "median_days": round(median(values), 1),
            "mean_days": round(mean(values), 1),
            "ordered_without_call_first": ordered_first.get(channel, 0),
        }
        for channel, values in sorted(days.items(), key=lambda kv: median(kv[1]))
    ]
