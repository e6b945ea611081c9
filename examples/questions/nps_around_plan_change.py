"""NPS before and after a customer's first plan change, by upgrade or downgrade."""

READS = ["subscription.plan_changed", "survey.answered"]
CHART = ("bar", "change", ["nps_before", "nps_after"])
MONTHS = {"month": 1, "year": 12}  # compare prices per month: a yearly plan bills 12 at once


def start():
    return {"change": {}, "scores": {}}


def fold(state, event):
    if event.type == "subscription.plan_changed":
        p = event.payload
        new = p.new_price.amount / MONTHS[p.new_period]
        old = p.old_price.amount / MONTHS[p.old_period]
        kind = "upgrade" if new > old else "downgrade"
        first = state["change"].get(event.customer_id)
        if first is None or event.occurred_at < first[0]:
            state["change"][event.customer_id] = (event.occurred_at, kind)
    elif event.payload.kind == "nps":
        state["scores"].setdefault(event.customer_id, []).append(
            (event.occurred_at, event.payload.score)
        )


def nps(scores):
    """% promoters (9-10) minus % detractors (0-6); None without answers."""
    if not scores:
        return None
    promoters = sum(1 for s in scores if s >= 9)
    detractors = sum(1 for s in scores if s <= 6)
    return round(100 * (promoters - detractors) / len(scores), 1)


def answer(state):
    groups = {g: ([], [], set()) for g in ("upgrade", "downgrade", "any change", "no change")}
    for customer, scores in state["scores"].items():
        changed_at, kind = state["change"].get(customer, (None, "no change"))
        for at, score in scores:
            after = changed_at is not None and at >= changed_at
            for g in (kind, "any change") if changed_at else (kind,):
                groups[g][after].append(score)
                groups[g][2].add(customer)
    return [
        {
            "change": g,
            "customers": len(who),  # with at least one NPS answer
            "answers_before": len(before),
            "nps_before": nps(before),
            "answers_after": len(after),
            "nps_after": nps(after),
        }
        for g, (before, after, who) in groups.items()
    ]
