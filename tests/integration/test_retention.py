"""The `retention` view and its report, on both backends.

Oracle tests compute the expected answers from the test's own list of commands, with code
written here; they never call projection code.
"""

from __future__ import annotations

import random
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest
from dateutil.relativedelta import relativedelta

from handlers.decision import CommandContext
from infra.clock import FixedClock
from infra.engine import Engine, open_engine
from infra.projection_db import projection_db
from projections.retention import Retention, RetentionReport, retention_report
from projections.runner import Runner
from tests.pg import fresh_schema, pg_url_with_schema

CTX = CommandContext(actor="employee:test", channel="test")
NOW = datetime(2026, 6, 1, 12, tzinfo=UTC)
CENT = Decimal("0.01")
SOURCES = ("web", "fair", "referral")
PLANS = {"FLAT-M": ("19.99", "month"), "FLAT-L": ("29.99", "month"), "FLAT-Y": ("120.00", "year")}
INTERACTIONS = {
    "email": ("interaction.log_email", {"direction": "in", "subject": "Re: offer"}),
    "call": ("interaction.log_call", {"direction": "out", "duration_min": 5}),
    "web": ("interaction.log_web", {"action": "visit", "page": "/shop"}),
    "meeting": ("interaction.log_meeting", {"duration_min": 30}),
}
TABLES = {
    "retention_customers": "customer_id",
    "retention_contacts": "customer_id",
    "retention_merges": "position",
    "retention_orders": "order_id",
    "retention_refunds": "position",
    "retention_terms": "position",
}


def eur(amount: str) -> dict[str, str]:
    return {"amount": amount, "currency": "EUR"}


def uid(rng: random.Random) -> UUID:
    return UUID(int=rng.getrandbits(128), version=4)


def month(at: datetime) -> str:
    return at.astimezone(UTC).strftime("%Y-%m")


def months_between(a: datetime, b: datetime) -> int:
    return (b.year - a.year) * 12 + b.month - a.month


# -- the shop's history, as commands and as the test's own record ------------------------


@dataclass
class Order:
    customer: UUID
    at: datetime
    total: Decimal
    refunds: list[tuple[datetime, Decimal]] = field(default_factory=list)
    cancelled_at: datetime | None = None


@dataclass
class Term:
    customer: UUID
    start: datetime
    monthly: Decimal
    closed_at: datetime | None = None
    end: datetime | None = None


@dataclass
class Shop:
    """Commands in the order they are sent, each with its business time, and what they say."""

    commands: list[tuple[datetime, str, dict[str, Any]]] = field(default_factory=list)
    registered: dict[UUID, tuple[datetime, str]] = field(default_factory=dict)
    contacts: dict[UUID, list[tuple[datetime, str]]] = field(
        default_factory=lambda: defaultdict(list)
    )
    orders: dict[UUID, Order] = field(default_factory=dict)
    terms: list[Term] = field(default_factory=list)
    merges: list[tuple[datetime, UUID, UUID | None]] = field(default_factory=list)

    def send(self, engine: Engine, until: datetime | None = None) -> None:
        for at, name, data in self.commands:
            if until is None or at <= until:
                engine.bus.execute_json(
                    name, {k: str(v) if isinstance(v, UUID) else v for k, v in data.items()}, CTX
                )


SETUP_AT = datetime(2020, 1, 1, tzinfo=UTC)


def setup_commands() -> list[tuple[datetime, str, dict[str, Any]]]:
    products: list[dict[str, Any]] = [
        {
            "sku": "COF-1",
            "name": "Coffee machine",
            "category": "machines",
            "list_price": eur("249.00"),
        },
        {"sku": "BEAN-1", "name": "Beans", "category": "coffee", "list_price": eur("12.50")},
    ]
    for sku, (price, period) in PLANS.items():
        products.append(
            {
                "sku": sku,
                "name": sku,
                "category": "tariffs",
                "kind": "plan",
                "billing_period": period,
                "list_price": eur(price),
            }
        )
    return [
        (SETUP_AT, "product.define", {**p, "occurred_at": SETUP_AT.isoformat()}) for p in products
    ]


def generate(seed: int, customers: int = 10) -> Shop:
    """A seeded history: registrations, interactions sent early and late (any business time),
    orders with returns and cancellations, subscriptions that change plan and end, and one
    customer merged into another; everything else sent in business-time order."""
    rng = random.Random(seed)
    shop = Shop(commands=setup_commands())
    ids = [uid(rng) for _ in range(customers)]
    for i, c in enumerate(ids):
        at = NOW - timedelta(days=rng.randint(200, 720), minutes=rng.randrange(1440))
        source = rng.choice(SOURCES)
        shop.registered[c] = (at, source)
        shop.commands.append(
            (
                at,
                "customer.register",
                {
                    "customer_id": c,
                    "name": f"C{i}",
                    "source": source,
                    "occurred_at": at.isoformat(),
                },
            )
        )
    setup, registrations = shop.commands[: -len(ids)], shop.commands[-len(ids) :]
    rng.shuffle(registrations)
    shop.commands = setup + registrations
    merged, survivor = ids[0], ids[1]
    merge_at = max(shop.registered[merged][0], shop.registered[survivor][0]) + timedelta(days=90)
    timed: list[tuple[datetime, str, dict[str, Any]]] = []
    early, late = [], []
    for c in ids:
        born = shop.registered[c][0]
        end = merge_at if c == merged else NOW - timedelta(days=1)
        span = int((end - born).total_seconds() // 60)
        for minute in sorted(rng.sample(range(1440, span), rng.randint(0, 6))):
            _order(rng, shop, timed, c, born + timedelta(minutes=minute))
        for _ in range(rng.randint(0, 3)):
            at = born + timedelta(minutes=rng.randrange(1, int((NOW - born).total_seconds() // 60)))
            channel = rng.choice(sorted(INTERACTIONS))
            name, data = INTERACTIONS[channel]
            shop.contacts[c].append((at, channel))
            command = (at, name, {**data, "customer_id": c, "occurred_at": at.isoformat()})
            (early if c == merged or rng.random() < 0.5 else late).append(command)
    for c in (merged, *ids[2:5]):
        _subscription(rng, shop, timed, c, merge_at if c == merged else None, retro=c == ids[2])
    shop.merges.append((merge_at, merged, survivor))
    timed.append(
        (
            merge_at,
            "customer.merge",
            {"survivor_id": survivor, "merged_id": merged, "occurred_at": merge_at.isoformat()},
        )
    )
    rng.shuffle(early)
    rng.shuffle(late)
    timed.sort(key=lambda cmd: cmd[0])  # stable: a stream's commands keep their order
    shop.commands += early + timed + late
    return shop


def _order(
    rng: random.Random,
    shop: Shop,
    timed: list[tuple[datetime, str, dict[str, Any]]],
    customer: UUID,
    at: datetime,
) -> None:
    order_id = uid(rng)
    beans, machine = rng.randint(1, 4), rng.random() < 0.3
    items = [{"sku": "BEAN-1", "quantity": beans, "unit_price": eur("12.50")}]
    total = Decimal("12.50") * beans
    if machine:
        items.append({"sku": "COF-1", "quantity": 1, "unit_price": eur("249.00")})
        total += Decimal("249.00")
    order = shop.orders[order_id] = Order(customer, at, total)
    timed.append(
        (
            at,
            "order.place",
            {
                "order_id": order_id,
                "customer_id": customer,
                "items": items,
                "payment_method": "card",
                "occurred_at": at.isoformat(),
            },
        )
    )
    roll = rng.random()
    cancel_at = at + timedelta(days=rng.randint(2, 60))
    if roll < 0.15 and cancel_at < NOW:
        order.cancelled_at = cancel_at
        timed.append(
            (
                order.cancelled_at,
                "order.cancel",
                {
                    "order_id": order_id,
                    "reason": "changed mind",
                    "occurred_at": order.cancelled_at.isoformat(),
                },
            )
        )
    elif roll < 0.4 and at + timedelta(days=40) < NOW:
        shipped, returned = at + timedelta(days=1), at + timedelta(days=rng.randint(3, 40))
        refund = Decimal(rng.choice(("5.00", "12.50")))
        order.refunds.append((returned, refund))
        timed.append(
            (shipped, "order.ship", {"order_id": order_id, "occurred_at": shipped.isoformat()})
        )
        timed.append(
            (
                returned,
                "order.return",
                {
                    "order_id": order_id,
                    "items": [{"sku": "BEAN-1", "quantity": 1}],
                    "reason": "damaged",
                    "refund": eur(str(refund)),
                    "occurred_at": returned.isoformat(),
                },
            )
        )


def _subscription(
    rng: random.Random,
    shop: Shop,
    timed: list[tuple[datetime, str, dict[str, Any]]],
    customer: UUID,
    before: datetime | None,
    *,
    retro: bool = False,
) -> None:
    """A subscription; `retro`: cancelled 100 days in with the service ended 45 days before."""
    sub = uid(rng)
    start = shop.registered[customer][0] + timedelta(
        days=rng.randint(1, 30), hours=rng.randint(0, 23)
    )
    if before is not None:
        start = min(start, before - timedelta(days=1))
    plan = rng.choice(("FLAT-M", "FLAT-Y"))
    price, period = PLANS[plan]
    term = Term(customer, start, Decimal(price) / (12 if period == "year" else 1))
    shop.terms.append(term)
    timed.append(
        (
            start,
            "subscription.start",
            {
                "subscription_id": sub,
                "customer_id": customer,
                "plan": plan,
                "price": eur(price),
                "period": period,
                "occurred_at": start.isoformat(),
            },
        )
    )
    last = start
    if not retro and rng.random() < 0.7:
        changed = start + timedelta(days=rng.randint(20, 200))
        if changed < NOW:
            term.closed_at = term.end = changed
            term = Term(customer, changed, Decimal("29.99"))
            shop.terms.append(term)
            timed.append(
                (
                    changed,
                    "subscription.change_plan",
                    {
                        "subscription_id": sub,
                        "plan": "FLAT-L",
                        "price": eur("29.99"),
                        "period": "month",
                        "occurred_at": changed.isoformat(),
                    },
                )
            )
            last = changed
    decided = last + timedelta(days=100 if retro else rng.randint(10, 300))
    if decided < NOW:
        # the end of service may be ahead, or back to any time since the last event
        back = -45 if retro else rng.randint(-40, 60)
        effective = max(last, decided + timedelta(days=back))
        term.closed_at, term.end = decided, effective
        timed.append(
            (
                decided,
                "subscription.cancel",
                {
                    "subscription_id": sub,
                    "reason": "moving",
                    "effective_at": effective.isoformat(),
                    "occurred_at": decided.isoformat(),
                },
            )
        )


# -- the oracle ------------------------------------------------------------------------


class Expected:
    """What the report should say at `at`, from the shop's own record."""

    def __init__(
        self, shop: Shop, at: datetime, inactive_days: int = 180, at_risk_days: int = 90
    ) -> None:
        self.shop, self.at = shop, at
        into: dict[UUID, UUID] = {}
        for when, merged, survivor in sorted(shop.merges, key=lambda m: m[0]):
            if when <= at:
                if survivor is None:
                    into.pop(merged, None)
                else:
                    into[merged] = survivor
        self.into = into
        self._acquisition()
        history: dict[UUID, list[tuple[datetime, Decimal]]] = defaultdict(list)
        for o in shop.orders.values():
            if o.at > at or (o.cancelled_at is not None and o.cancelled_at <= at):
                continue
            net = o.total - sum((amount for when, amount in o.refunds if when <= at), Decimal(0))
            history[self.root(o.customer)].append((o.at, net))
        for h in history.values():
            h.sort()
        cohort_members = self._cohorts(history)
        self._activity(history, inactive_days, at_risk_days)
        self._value(history)
        self.by_cohort = self._averages(cohort_members)
        sources: dict[str, list[UUID]] = defaultdict(list)
        for r, s in self.source_of.items():
            sources[s].append(r)
        for r in self.clv:
            if r not in self.source_of:
                sources["unknown"].append(r)
        self.by_source_value = self._averages(sources)

    def root(self, c: UUID) -> UUID:
        while c in self.into:
            c = self.into[c]
        return c

    def _acquisition(self) -> None:
        shop, at = self.shop, self.at
        family: dict[UUID, list[UUID]] = defaultdict(list)
        for c in shop.registered:
            family[self.root(c)].append(c)
        self.by_source: dict[tuple[str, str], int] = defaultdict(int)
        self.by_channel: dict[tuple[str, str], int] = defaultdict(int)
        self.source_of: dict[UUID, str] = {}
        for r, members in family.items():
            regs = sorted(shop.registered[c] for c in members if shop.registered[c][0] <= at)
            if not regs:
                continue
            self.source_of[r] = regs[0][1]
            self.by_source[(regs[0][1], month(regs[0][0]))] += 1
            contacts = sorted(x for c in members for x in shop.contacts[c] if x[0] <= at)
            self.by_channel[(contacts[0][1] if contacts else "none", month(regs[0][0]))] += 1

    def _cohorts(
        self, history: dict[UUID, list[tuple[datetime, Decimal]]]
    ) -> dict[str, list[UUID]]:
        self.cohorts: dict[str, tuple[int, list[int]]] = {}
        cohort_members: dict[str, list[UUID]] = defaultdict(list)
        for r, h in history.items():
            cohort_members[month(h[0][0])].append(r)
        for m, members in cohort_members.items():
            first = history[members[0]][0][0]
            retained = [
                sum(1 for r in members if any(months_between(first, t) == k for t, _ in history[r]))
                for k in range(months_between(first, self.at) + 1)
            ]
            self.cohorts[m] = (len(members), retained)
        self.buyers = len(history)
        self.repeat_buyers = sum(1 for h in history.values() if len(h) > 1)
        return cohort_members

    def _activity(
        self, history: dict[UUID, list[tuple[datetime, Decimal]]], inactive: int, risky: int
    ) -> None:
        at, churn, risk = self.at, timedelta(days=inactive), timedelta(days=risky)
        self.churned = {r for r, h in history.items() if at - h[-1][0] >= churn}
        self.at_risk = {r for r, h in history.items() if risk <= at - h[-1][0] < churn}
        self.won_back: dict[UUID, tuple[int, datetime]] = {}
        for r, h in history.items():
            backs = [h[i + 1][0] for i in range(len(h) - 1) if h[i + 1][0] - h[i][0] >= churn]
            if backs:
                self.won_back[r] = (len(backs), backs[-1])

    def _value(self, history: dict[UUID, list[tuple[datetime, Decimal]]]) -> None:
        revenue: dict[UUID, Decimal] = defaultdict(Decimal)
        for term in self.shop.terms:
            if term.start > self.at:
                continue
            known = term.closed_at is not None and term.closed_at <= self.at
            end = term.end if known else None
            charges = 0
            while True:
                due = term.start + relativedelta(months=charges)
                if due > self.at or (end is not None and due >= end):
                    break
                charges += 1
            revenue[self.root(term.customer)] += term.monthly * charges
        self.clv: dict[UUID, tuple[int, Decimal, Decimal, Decimal]] = {}
        for r in set(history) | set(revenue):
            spent = sum((net for _, net in history.get(r, [])), Decimal(0))
            subs = revenue.get(r, Decimal(0)).quantize(CENT)
            self.clv[r] = (len(history.get(r, [])), spent, subs, spent + subs)

    def _averages(self, groups: dict[str, list[UUID]]) -> dict[str, tuple[int, Decimal, Decimal]]:
        out = {}
        for key, members in groups.items():
            valued = [self.clv[r][3] for r in members if r in self.clv]
            if valued:
                total = sum(valued, Decimal(0))
                out[key] = (len(members), total, (total / len(members)).quantize(CENT))
        return out

    def check(self, report: RetentionReport) -> None:
        assert {
            (a.key, a.month): a.customers for a in report.acquisition_by_source
        } == self.by_source
        assert {
            (a.key, a.month): a.customers for a in report.acquisition_by_channel
        } == self.by_channel
        assert {c.month: (c.customers, c.retained) for c in report.cohorts} == self.cohorts
        for c in report.cohorts:
            assert c.shares == [n / c.customers for n in c.retained]
        assert (report.repeat.buyers, report.repeat.repeat_buyers) == (
            self.buyers,
            self.repeat_buyers,
        )
        assert report.repeat.rate == (self.repeat_buyers / self.buyers if self.buyers else 0.0)
        assert {i.customer_id for i in report.churned} == self.churned
        assert {i.customer_id for i in report.at_risk} == self.at_risk
        assert report.won_back_count == len(self.won_back)
        assert {w.customer_id: (w.times, w.won_back_at) for w in report.won_back} == self.won_back
        assert all(v.currency == "EUR" for v in report.customer_value)
        assert {
            v.customer_id: (v.orders, v.order_net, v.subscription_revenue, v.clv)
            for v in report.customer_value
        } == self.clv
        assert {
            g.key: (g.customers, g.total, g.average) for g in report.value_by_cohort
        } == self.by_cohort
        assert {
            g.key: (g.customers, g.total, g.average) for g in report.value_by_source
        } == self.by_source_value


def between(shop: Shop) -> list[datetime]:
    """Dates inside the windows where knowing the date matters: a service ended but its
    cancellation not yet decided; an order placed but not yet cancelled or refunded."""
    dates = [t.closed_at - timedelta(seconds=1) for t in shop.terms if t.closed_at]
    for o in shop.orders.values():
        later = [o.cancelled_at] if o.cancelled_at else [when for when, _ in o.refunds]
        dates += [o.at + (when - o.at) / 2 for when in later]
    return dates


# -- fixtures and helpers ----------------------------------------------------------------


@pytest.fixture
def engine(store_url: str) -> Iterator[Engine]:
    with open_engine(store_url, env={}, clock=FixedClock(NOW)) as e:
        yield e


@pytest.fixture
def other_url(store_url: str, tmp_path: Path) -> Iterator[str]:
    """A second empty store on the same backend."""
    if store_url.startswith("sqlite"):
        yield f"sqlite:///{tmp_path}/other.db"
    else:
        with fresh_schema("store") as schema:
            yield pg_url_with_schema(schema)


def runner(engine: Engine, page: int = 50_000) -> Runner:
    r = Runner(projection_db(engine.store), engine.store, [Retention()], engine.clock, page=page)
    r.setup()
    return r


def dump(r: Runner) -> dict[str, list[tuple[str, ...]]]:
    q = r.db.dialect.qualify
    return {
        table: [
            tuple(str(v) for v in row)
            for row in r.db.fetch(f"SELECT * FROM {q(table)} ORDER BY {key}")
        ]
        for table, key in TABLES.items()
    }


def run(engine: Engine, command: str, /, **data: Any) -> None:
    engine.bus.execute_json(
        command, {k: str(v) if isinstance(v, UUID) else v for k, v in data.items()}, CTX
    )


# -- the tests ---------------------------------------------------------------------------


class TestOracle:
    def test_the_report_equals_a_recomputation_from_the_commands(self, engine: Engine) -> None:
        shop = generate(seed=7)
        shop.send(engine)
        with runner(engine) as r:
            r.catch_up()
            for at in [*(NOW - timedelta(days=23 * k) for k in range(30)), *between(shop)]:
                for inactive, risk in ((180, 90), (120, 30), (60, 60)):
                    report = retention_report(
                        r.db, as_of=at, inactive_days=inactive, at_risk_days=risk
                    )
                    assert report.as_of == at
                    Expected(shop, at, inactive, risk).check(report)
            assert retention_report(r.db, now=NOW) == retention_report(r.db, as_of=NOW)
            expected = Expected(shop, NOW)
        # the seeded history exercises every part of the report
        assert expected.churned and expected.at_risk and expected.won_back
        assert expected.repeat_buyers and len(expected.cohorts) > 3
        assert any(o.refunds for o in shop.orders.values())
        assert any(o.cancelled_at for o in shop.orders.values())
        assert any(v[2] for v in expected.clv.values())
        assert any(t.end and t.closed_at and t.end < t.closed_at for t in shop.terms)
        assert any(
            t.end and t.closed_at and t.end + timedelta(days=31) < t.closed_at for t in shop.terms
        )

    def test_as_of_equals_a_store_fed_only_the_commands_up_to_then(
        self, engine: Engine, other_url: str
    ) -> None:
        shop = generate(seed=11)
        shop.send(engine)
        cut = NOW - timedelta(days=170)
        with open_engine(other_url, env={}, clock=FixedClock(NOW)) as other:
            shop.send(other, until=cut)
            with runner(engine) as full, runner(other) as partial:
                full.catch_up()
                partial.catch_up()
                for inactive, risk in ((180, 90), (90, 30)):
                    then = retention_report(
                        full.db, as_of=cut, inactive_days=inactive, at_risk_days=risk
                    )
                    assert then == retention_report(
                        partial.db, as_of=cut, inactive_days=inactive, at_risk_days=risk
                    )
                    assert then == retention_report(
                        partial.db, now=cut, inactive_days=inactive, at_risk_days=risk
                    )
                    Expected(shop, cut, inactive, risk).check(then)


class TestMerges:
    def test_a_merge_moves_the_merged_customers_orders_to_the_survivor(
        self, engine: Engine
    ) -> None:
        rng = random.Random(3)
        dup, survivor = uid(rng), uid(rng)
        t0 = NOW - timedelta(days=300)

        def at(days: int) -> str:
            return (t0 + timedelta(days=days)).isoformat()

        for _, name, data in setup_commands():
            run(engine, name, **data)
        run(engine, "customer.register", customer_id=dup, name="A", source="web", occurred_at=at(0))
        run(
            engine,
            "customer.register",
            customer_id=survivor,
            name="B",
            source="fair",
            occurred_at=at(40),
        )
        run(
            engine,
            "interaction.log_call",
            customer_id=dup,
            direction="in",
            duration_min=3,
            occurred_at=at(1),
        )
        run(
            engine,
            "interaction.log_web",
            customer_id=survivor,
            action="visit",
            page="/",
            occurred_at=at(41),
        )
        items = [{"sku": "BEAN-1", "quantity": 2, "unit_price": eur("12.50")}]
        for who, day in ((dup, 5), (dup, 20), (survivor, 60)):
            run(
                engine,
                "order.place",
                customer_id=who,
                items=items,
                payment_method="card",
                occurred_at=at(day),
            )
        run(engine, "customer.merge", survivor_id=survivor, merged_id=dup, occurred_at=at(100))
        with runner(engine) as r:
            r.catch_up()
            merged = retention_report(r.db, as_of=NOW)
            before = retention_report(r.db, as_of=t0 + timedelta(days=90))
            run(
                engine, "customer.unmerge", survivor_id=survivor, merged_id=dup, occurred_at=at(200)
            )
            r.catch_up()
            apart = retention_report(r.db, as_of=NOW)
            during = retention_report(r.db, as_of=t0 + timedelta(days=150))
        assert during.customer_value == merged.customer_value

        [value] = merged.customer_value
        assert (value.customer_id, value.orders, value.order_net) == (survivor, 3, Decimal("75.00"))
        assert value.cohort == month(t0 + timedelta(days=5)) and value.source == "web"
        assert [(a.key, a.customers) for a in merged.acquisition_by_source] == [("web", 1)]
        assert [(a.key, a.customers) for a in merged.acquisition_by_channel] == [("call", 1)]
        assert (merged.repeat.buyers, merged.repeat.repeat_buyers) == (1, 1)
        assert [c.customers for c in merged.cohorts] == [1]

        for report in (before, apart):
            spend = {v.customer_id: (v.orders, v.order_net) for v in report.customer_value}
            assert spend == {dup: (2, Decimal("50.00")), survivor: (1, Decimal("25.00"))}
            assert sorted(a.key for a in report.acquisition_by_source) == ["fair", "web"]
            assert (report.repeat.buyers, report.repeat.repeat_buyers) == (2, 1)


def test_paged_catch_up_equals_one_big_page(engine: Engine) -> None:
    shop = generate(seed=5, customers=6)
    shop.send(engine)
    with runner(engine, page=3) as paged:
        paged.catch_up()
        expected, report = dump(paged), retention_report(paged.db, as_of=NOW)
    with runner(engine) as whole:
        whole.rebuild("retention")  # a new generation from position 0 in one page
        assert dump(whole) == expected
        assert retention_report(whole.db, as_of=NOW) == report
        assert all(s.lag == 0 and s.dead_letters == 0 for s in whole.status())
    assert expected["retention_orders"] and expected["retention_terms"]


def test_a_report_needs_a_date_and_a_sensible_rule(engine: Engine) -> None:
    with runner(engine) as r:
        with pytest.raises(ValueError):
            retention_report(r.db)
        with pytest.raises(ValueError):
            retention_report(r.db, now=NOW, inactive_days=30, at_risk_days=90)
