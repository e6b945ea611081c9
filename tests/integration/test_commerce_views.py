"""The `orders` and `pipeline` reports against recomputations written here (oracle tests),
and as-of reports against a store fed only the commands up to that date."""

from __future__ import annotations

import random
import statistics
from collections import Counter, defaultdict
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_EVEN, Decimal
from pathlib import Path
from typing import Any
from uuid import UUID

import msgspec
import pytest

from handlers.decision import CommandContext
from infra.clock import FixedClock
from infra.engine import Engine, open_engine
from infra.projector import open_runner
from projections.orders_view import orders_report
from projections.pipeline_view import pipeline_report

NOW = datetime(2026, 6, 1, tzinfo=UTC)
START = NOW - timedelta(days=200)
PRICES = {"M-1": "249.00", "M-2": "899.00", "B-1": "12.50", "A-1": "34.90"}
STAGES = ["interest", "quote", "negotiation"]
SOURCES = ["fair", "web", "referral"]
COMPETITORS = ["Acme", "Brew Co"]


def uid(rng: random.Random) -> UUID:
    return UUID(int=rng.getrandbits(128), version=4)


def eur(x: str) -> dict[str, str]:
    return {"amount": x, "currency": "EUR"}


def net(price: str, qty: int, discount: str) -> Decimal:
    return (Decimal(price) * qty * (1 - Decimal(discount))).quantize(
        Decimal("0.01"), ROUND_HALF_EVEN
    )


class History:
    """A seeded commerce history as a list of (business time, command, data), plus the oracle."""

    def __init__(self, seed: int) -> None:
        rng = random.Random(seed)
        self.commands: list[tuple[datetime, str, dict[str, Any]]] = []
        self.customers = [uid(rng) for _ in range(8)]
        for c in self.customers:
            self.add(START, "customer.register", customer_id=c, name="C")
        for sku, price in PRICES.items():
            self.add(
                START, "product.define", sku=sku, name=sku, category=sku[0], list_price=eur(price)
            )
        self.add(
            START,
            "pipeline.define",
            name="sales",
            stages=[
                {"name": s, "probability": p}
                for s, p in zip(STAGES, ("0.1", "0.5", "0.8"), strict=True)
            ],
        )
        self.orders: dict[UUID, dict[str, Any]] = {}
        self.deals: dict[UUID, dict[str, Any]] = {}
        for _ in range(30):
            self._order(
                rng,
                uid(rng),
                rng.choice(self.customers),
                START + timedelta(hours=rng.randrange(24, 4000)),
            )
        for _ in range(20):
            self._deal(rng)

    def add(self, at: datetime, command: str, /, **data: Any) -> None:
        data["occurred_at"] = at.isoformat()
        self.commands.append((at, command, data))

    def _order(
        self, rng: random.Random, order: UUID, customer: UUID, at: datetime, **extra: Any
    ) -> None:
        lines = {
            sku: (rng.randint(1, 3), rng.choice(("0", "0.1")))
            for sku in rng.sample(sorted(PRICES), 2)
        }
        items = [
            {"sku": s, "quantity": q, "unit_price": eur(PRICES[s]), "discount": d}
            for s, (q, d) in lines.items()
        ]
        method = rng.choice(("card", "invoice", "transfer"))
        o = {
            "customer": customer,
            "at": at,
            "lines": lines,
            "method": method,
            "cancelled": None,
            "returns": [],
            "invoice": None,
            "paid_at": None,
        }
        self.orders[order] = o
        if "deal_id" in extra:
            self.add(
                at,
                "deal.win",
                deal_id=extra["deal_id"],
                order_id=order,
                items=items,
                payment_method=method,
            )
        else:
            self.add(
                at,
                "order.place",
                order_id=order,
                customer_id=customer,
                items=items,
                payment_method=method,
            )
        t = at + timedelta(days=1)
        if rng.random() < 0.15:
            self.add(t, "order.cancel", order_id=order, reason="changed mind")
            o["cancelled"] = t
            return
        total = sum(net(PRICES[s], q, d) for s, (q, d) in lines.items())
        if method == "invoice":
            due = (t + timedelta(days=14)).date()
            self.add(
                t,
                "order.issue_invoice",
                order_id=order,
                number=f"I-{order.hex[:6]}",
                due_date=due.isoformat(),
            )
            o["invoice"] = due
        if rng.random() < 0.7:
            t += timedelta(days=rng.randint(1, 30))
            self.add(t, "order.pay", order_id=order, amount=eur(str(total)))
            o["paid_at"] = t
        t += timedelta(days=1)
        self.add(t, "order.ship", order_id=order)
        if rng.random() < 0.4:
            sku = rng.choice(sorted(lines))
            t += timedelta(days=3)
            self.add(
                t, "order.return", order_id=order, items=[{"sku": sku, "quantity": 1}], reason="x"
            )
            o["returns"].append((t, sku))

    def _deal(self, rng: random.Random) -> None:
        deal, customer = uid(rng), rng.choice(self.customers)
        t = START + timedelta(hours=rng.randrange(24, 3000))
        source = rng.choice(SOURCES)
        d: dict[str, Any] = {
            "source": source,
            "visits": [(STAGES[0], t)],
            "status": "open",
            "closed": None,
            "competitor": None,
            "value": Decimal(rng.randrange(100, 2000)),
        }
        self.deals[deal] = d
        self.add(
            t,
            "deal.open",
            deal_id=deal,
            pipeline="sales",
            customer_id=customer,
            lead_source=source,
            value=eur(str(d["value"])),
        )
        for _ in range(rng.randint(0, 4)):
            to = rng.choice(STAGES)
            if to == d["visits"][-1][0]:
                continue
            t += timedelta(hours=rng.randrange(5, 400))
            self.add(t, "deal.move", deal_id=deal, to_stage=to)
            d["visits"].append((to, t))
        t += timedelta(hours=rng.randrange(5, 400))
        r = rng.random()
        if r < 0.35:
            self._order(rng, uid(rng), customer, t, deal_id=deal)
            d.update(status="won", closed=t)
        elif r < 0.7:
            comp = rng.choice(COMPETITORS)
            self.add(t, "deal.lose", deal_id=deal, reason="price", competitor=comp)
            d.update(status="lost", closed=t, competitor=comp)

    def feed(self, engine: Engine, until: datetime | None = None) -> None:
        ctx = CommandContext(actor="test", channel="test")
        for at, name, data in sorted(self.commands, key=lambda c: c[0]):
            if until is None or at <= until:
                engine.bus.execute_json(
                    name, {k: str(v) if isinstance(v, UUID) else v for k, v in data.items()}, ctx
                )


@pytest.fixture
def history() -> History:
    return History(seed=4)


@pytest.fixture
def engine(store_url: str, history: History) -> Iterator[Engine]:
    with open_engine(store_url, env={}, clock=FixedClock(NOW)) as e:
        history.feed(e)
        with open_runner(e, page=40) as runner:
            runner.catch_up()
            runner.fire_timers()
        yield e


def test_orders_report_equals_a_recomputation(engine: Engine, history: History) -> None:
    with open_runner(engine) as runner:
        report = orders_report(runner.db, now=NOW)
    live = {k: o for k, o in history.orders.items() if not o["cancelled"]}
    gross = sum(net(PRICES[s], q, d) for o in live.values() for s, (q, d) in o["lines"].items())
    refunds = sum(
        net(PRICES[sku], 1, o["lines"][sku][1]) for o in live.values() for _, sku in o["returns"]
    )
    (totals,) = report.totals
    assert (totals.orders, totals.gross, totals.refunds, totals.net) == (
        len(live),
        gross,
        refunds,
        gross - refunds,
    )
    assert {p.method: p.orders for p in report.payment_mix} == Counter(
        o["method"] for o in live.values()
    )
    sold: Counter[str] = Counter()
    returned: Counter[str] = Counter(sku for o in live.values() for _, sku in o["returns"])
    for o in live.values():
        for s, (q, _) in o["lines"].items():
            sold[s] += q
    assert {r.sku: (r.sold, r.returned) for r in report.returns} == {
        s: (sold[s], returned[s]) for s in sold
    }
    overdue = {
        k
        for k, o in live.items()
        if o["invoice"] and not o["paid_at"] and o["invoice"] < NOW.date()
    }
    assert {o.order_id for o in report.overdue} == overdue
    with open_runner(engine) as runner:  # the live table the timers keep says the same
        rows = runner.db.fetch(
            f"SELECT order_id FROM {runner.db.dialect.qualify('orders_overdue')}"
        )
    assert {runner.db.dialect.uuid(r[0]) for r in rows} == overdue


def test_pipeline_report_equals_a_recomputation(engine: Engine, history: History) -> None:
    with open_runner(engine) as runner:
        report = pipeline_report(runner.db, now=NOW)
    deals = history.deals.values()
    for conv in report.conversion:
        reached = [d for d in deals if conv.from_stage in {s for s, _ in d["visits"]}]
        if conv.to_stage == "won":
            got = [d for d in reached if d["status"] == "won"]
        else:
            got = [d for d in reached if conv.to_stage in {s for s, _ in d["visits"]}]
        assert (conv.reached, conv.converted) == (len(reached), len(got)), conv
    stays: dict[str, list[float]] = defaultdict(list)
    for d in deals:
        ends = [t for _, t in d["visits"][1:]] + ([d["closed"]] if d["closed"] else [])
        for (stage, start), end in zip(d["visits"], ends, strict=False):
            stays[stage].append((end - start).total_seconds() / 86400)
    for row in report.days:
        expected = round(statistics.median(stays[row.stage]), 3) if stays[row.stage] else None
        assert (row.stays, row.median_days) == (len(stays[row.stage]), expected)
    by_source = {w.key: (w.won, w.lost) for w in report.win_rate_by_source}
    for source in SOURCES:
        won = sum(d["source"] == source and d["status"] == "won" for d in deals)
        lost = sum(d["source"] == source and d["status"] == "lost" for d in deals)
        assert by_source.get(source, (0, 0)) == (won, lost)
    assert {x.competitor: x.deals for x in report.losses} == Counter(
        d["competitor"] for d in deals if d["status"] == "lost"
    )
    open_deals = [d for d in deals if d["status"] == "open"]
    assert report.open_deals == len(open_deals)
    assert report.open_amount == sum(d["value"] for d in open_deals)


def test_as_of_reports_equal_a_store_fed_only_the_events_up_to_then(
    engine: Engine, history: History, tmp_path: Path
) -> None:
    cut = START + timedelta(days=70)
    with open_engine(f"sqlite:///{tmp_path}/cut.db", env={}, clock=FixedClock(NOW)) as partial:
        history.feed(partial, until=cut)
        with open_runner(partial) as runner:
            runner.catch_up()
            expected = (orders_report(runner.db, now=cut), pipeline_report(runner.db, now=cut))
    with open_runner(engine) as runner:
        got = (
            orders_report(runner.db, now=NOW, as_of=cut),
            pipeline_report(runner.db, now=NOW, as_of=cut),
        )
    assert msgspec.to_builtins(got) == msgspec.to_builtins(expected)
    assert got[0].totals and got[1].conversion[0].reached > 0  # the cut is inside the history


def test_a_report_without_as_of_leaves_out_what_is_dated_after_now(
    engine: Engine, history: History
) -> None:
    with open_runner(engine) as runner:
        before = orders_report(runner.db, now=NOW)
        ctx = CommandContext(actor="test", channel="test")
        items = [{"sku": "B-1", "quantity": 2, "unit_price": eur("12.50")}]
        engine.bus.execute_json(
            "order.place",
            {
                "customer_id": str(history.customers[0]),
                "items": items,
                "payment_method": "card",
                "occurred_at": (NOW + timedelta(days=10)).isoformat(),
            },
            ctx,
        )
        runner.catch_up()
        assert orders_report(runner.db, now=NOW) == before
        later = orders_report(runner.db, now=NOW + timedelta(days=11))
    assert later.totals[0].orders == before.totals[0].orders + 1
