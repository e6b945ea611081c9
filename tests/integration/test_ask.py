"""`crm ask`: the example questions against oracles, as-of bounds, reads, errors, both backends.

The scenario is a seeded history of commands (registrations, calls, orders and deliveries,
tickets, subscriptions and their plan changes, NPS surveys) issued through the command bus
with the streams interleaved at random, so that log order and business time disagree. The
test keeps its own list of facts (what each command said, at which step it was issued) and
computes every expected answer from that list with code of its own.
"""

from __future__ import annotations

import contextlib
import json
import random
import statistics
import time
from collections import Counter, defaultdict
from collections.abc import Container, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

import pytest
import typer
from typer.testing import CliRunner

from domain.catalogue import EVENTS
from domain.events import FORGOTTEN
from handlers.decision import CommandContext
from infra.cli.ask import ask
from infra.clock import FixedClock
from infra.engine import Engine, open_engine
from infra.store.event_store import EventStore
from replay.ask import FoldFailed, run_question
from replay.questions import Question, load_question
from tests.conftest import BACKENDS
from tests.pg import fresh_schema, pg_url_with_schema

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "questions"
NOW = datetime(2026, 6, 1, tzinfo=UTC)
START = NOW - timedelta(days=420)
DAY = timedelta(days=1)
CTX = CommandContext(actor="employee:test", channel="test")
SOURCES = ("web", "referral", "call", "fair")
PLANS = {"FLAT-M": ("19.90", "month"), "FLAT-L": ("34.90", "month"), "FLAT-Y": ("299.00", "year")}


@dataclass(frozen=True)
class Fact:
    """What one command told the engine: `step` is the command's index in issue order."""

    kind: str
    customer: UUID
    at: datetime
    step: int
    data: dict[str, Any] = field(default_factory=dict)


@dataclass
class Scenario:
    facts: list[Fact]
    heads: list[int]  # the log's head after each command
    edge: dict[str, UUID]  # crafted customers of the complaint question


def eur(amount: str) -> dict[str, str]:
    return {"amount": amount, "currency": "EUR"}


class Builder:
    """Commands grouped in sequences that must keep their order (one stream each)."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.first: list[tuple[str, dict[str, Any], Fact | None]] = []
        self.sequences: list[list[tuple[str, dict[str, Any], Fact | None]]] = []

    def customer(self, registered: datetime, source: str) -> UUID:
        c = uuid4()
        data = {"customer_id": str(c), "name": "Ada Test", "source": source}
        fact = self._fact("registered", c, registered, source=source)
        self.first.append(
            ("customer.register", {**data, "occurred_at": registered.isoformat()}, fact)
        )
        return c

    def _fact(self, what: str, customer: UUID, at: datetime, **data: Any) -> Fact:
        return Fact(what, customer, at, -1, data)

    def call(self, c: UUID, at: datetime) -> None:
        body = {"customer_id": str(c), "direction": "in", "duration_min": 3}
        self.sequences.append(
            [
                (
                    "interaction.log_call",
                    {**body, "occurred_at": at.isoformat()},
                    self._fact("call", c, at),
                )
            ]
        )

    def order(self, c: UUID, at: datetime, delivered_after: timedelta | None) -> None:
        """Placed at `at`; paid (or not) by the payment method's habit; shipped and delivered
        `delivered_after` later, or else cancelled now and then. Steps in business time."""
        o = str(uuid4())
        method = self.rng.choice(("card", "invoice", "transfer"))
        place = {
            "order_id": o,
            "customer_id": str(c),
            "items": [{"sku": "BEAN-1", "quantity": 2, "unit_price": eur("12.50")}],
            "payment_method": method,
            "occurred_at": at.isoformat(),
        }
        steps: list[tuple[datetime, str, dict[str, Any], Fact | None]] = [
            (at, "order.place", place, self._fact("order", c, at, order=o, method=method))
        ]
        cancel = delivered_after is None and self.rng.random() < 0.5
        if not cancel and self.rng.random() < 0.8:
            paid = at + timedelta(days={"card": 0.01, "invoice": 12, "transfer": 2}[method])
            paid += timedelta(hours=self.rng.uniform(0, 30))
            body = {"order_id": o, "amount": eur("25.00")}
            steps.append((paid, "order.pay", body, self._fact("paid", c, paid, order=o)))
        if delivered_after is not None:
            shipped = at + delivered_after / 2
            d = at + delivered_after
            steps.append(
                (shipped, "order.ship", {"order_id": o}, self._fact("shipped", c, shipped, order=o))
            )
            steps.append(
                (d, "order.deliver", {"order_id": o}, self._fact("delivered", c, d, order=o))
            )
        elif cancel:
            gone = at + timedelta(hours=self.rng.uniform(1, 20))
            body = {"order_id": o, "reason": "changed my mind"}
            steps.append((gone, "order.cancel", body, self._fact("cancelled", c, gone, order=o)))
        self.sequences.append(
            [
                (name, {**data, "occurred_at": when.isoformat()}, fact)
                for when, name, data, fact in sorted(steps, key=lambda s: s[0])
            ]
        )

    def ticket(self, c: UUID, at: datetime, kind: str, category: str) -> None:
        data = {
            "customer_id": str(c),
            "kind": kind,
            "category": category,
            "subject": f"Secret subject {c}",
            "occurred_at": at.isoformat(),
        }
        fact = self._fact("ticket", c, at, kind=kind, category=category)
        self.sequences.append([("ticket.open", data, fact)])

    def subscription(self, c: UUID, at: datetime, plans: Sequence[tuple[str, datetime]]) -> None:
        s = str(uuid4())
        first, price_period = plans[0][0], PLANS[plans[0][0]]
        seq: list[tuple[str, dict[str, Any], Fact | None]] = [
            (
                "subscription.start",
                {
                    "subscription_id": s,
                    "customer_id": str(c),
                    "plan": first,
                    "price": eur(price_period[0]),
                    "period": price_period[1],
                    "occurred_at": at.isoformat(),
                },
                None,
            )
        ]
        old = first
        for plan, when in plans[1:]:
            price, period = PLANS[plan]
            seq.append(
                (
                    "subscription.change_plan",
                    {
                        "subscription_id": s,
                        "plan": plan,
                        "price": eur(price),
                        "period": period,
                        "occurred_at": when.isoformat(),
                    },
                    self._fact(
                        "plan_change",
                        c,
                        when,
                        old_price=Decimal(PLANS[old][0]),
                        old_period=PLANS[old][1],
                        new_price=Decimal(price),
                        new_period=period,
                    ),
                )
            )
            old = plan
        self.sequences.append(seq)

    def nps(self, c: UUID, sent: datetime, score: int) -> None:
        s = str(uuid4())
        answered = sent + timedelta(hours=5)
        self.sequences.append(
            [
                (
                    "survey.send",
                    {
                        "survey_id": s,
                        "customer_id": str(c),
                        "kind": "nps",
                        "trigger": "periodic",
                        "occurred_at": sent.isoformat(),
                    },
                    None,
                ),
                (
                    "survey.answer",
                    {"survey_id": s, "score": score, "occurred_at": answered.isoformat()},
                    self._fact("nps", c, answered, score=score),
                ),
            ]
        )

    def commands(self) -> list[tuple[str, dict[str, Any], Fact | None]]:
        """Registrations first, then the sequences interleaved at random, each kept in order."""
        out = list(self.first)
        pending = [list(s) for s in self.sequences if s]
        while pending:
            seq = self.rng.choice(pending)
            out.append(seq.pop(0))
            if not seq:
                pending.remove(seq)
        return out


def random_day(rng: random.Random, lo: datetime, hi: datetime) -> datetime:
    return lo + (hi - lo) * rng.random()


def build(engine: Engine, seed: int = 11, customers: int = 24) -> Scenario:
    rng = random.Random(seed)
    for sku, name, category, extra in (
        ("BEAN-1", "Beans", "coffee", {}),
        *(
            (plan, plan, "tariffs", {"kind": "plan", "billing_period": period})
            for plan, (_, period) in PLANS.items()
        ),
    ):
        price = PLANS.get(sku, ("12.50",))[0]
        engine.bus.execute_json(
            "product.define",
            {"sku": sku, "name": name, "category": category, "list_price": eur(price), **extra},
            CTX,
        )
    b = Builder(rng)
    registered: list[tuple[UUID, datetime]] = []
    for _ in range(customers):
        t0 = random_day(rng, START, START + 40 * DAY)
        c = b.customer(t0, rng.choice(SOURCES))
        registered.append((c, t0))
        for _ in range(rng.randint(0, 4)):
            b.call(c, random_day(rng, t0, NOW - DAY))
        for _ in range(rng.randint(0, 4)):
            at = random_day(rng, t0, NOW - 20 * DAY)
            delivered = timedelta(days=rng.uniform(1, 6)) if rng.random() < 0.8 else None
            b.order(c, at, delivered)
            if delivered is not None and rng.random() < 0.5:
                kind = "complaint" if rng.random() < 0.7 else "request"
                b.ticket(c, at + delivered + timedelta(days=rng.uniform(0, 45)), kind, "delivery")
        if rng.random() < 0.7:
            start = random_day(rng, t0, t0 + 60 * DAY)
            plans = [(rng.choice(list(PLANS)), start)]
            when = start
            for _ in range(rng.randint(0, 2)):
                when = random_day(rng, when + DAY, when + 120 * DAY)
                plans.append((rng.choice([p for p in PLANS if p != plans[-1][0]]), when))
            b.subscription(c, start, plans)
        for _ in range(rng.randint(0, 6)):
            b.nps(c, random_day(rng, t0, NOW - DAY), rng.randint(0, 10))
    edge = crafted(b)
    facts: list[Fact] = []
    heads: list[int] = []
    commands = b.commands()
    for step, (name, data, fact) in enumerate(commands):
        engine.bus.execute_json(name, data, CTX)
        heads.append(engine.store.head())
        if fact is not None:
            facts.append(Fact(fact.kind, fact.customer, fact.at, step, fact.data))
        if step == len(commands) // 2:
            time.sleep(0.01)  # SQLite records time in milliseconds: keep the halves apart
    return Scenario(facts, heads, edge)


def crafted(b: Builder) -> dict[str, UUID]:
    """Customers at the edges of the complaint question's rules."""
    delivered = START + 100 * DAY
    edge: dict[str, UUID] = {}
    for name, complaint_after, order_after, kind in (
        ("at_30_days", timedelta(days=30), None, "complaint"),
        ("past_30_days", timedelta(days=30, minutes=1), None, "complaint"),
        ("ordered_again", timedelta(days=2), timedelta(days=10), "complaint"),
        ("a_request", timedelta(days=2), None, "request"),
    ):
        c = b.customer(START + DAY, "web")
        b.order(c, delivered - 3 * DAY, timedelta(days=3))
        b.ticket(c, delivered + complaint_after, kind, "quality")
        if order_after is not None:
            b.order(c, delivered + order_after, None)
        edge[name] = c
    recent = b.customer(START + DAY, "web")
    b.order(recent, NOW - 25 * DAY, timedelta(days=3))
    b.ticket(recent, NOW - 20 * DAY, "complaint", "quality")
    edge["too_recent"] = recent
    return edge


# -- oracles: the expected answers, from the test's own facts ------------------------------


def upto(facts: list[Fact], as_of: datetime | None = None, step: int | None = None) -> list[Fact]:
    return [
        f for f in facts if (as_of is None or f.at <= as_of) and (step is None or f.step <= step)
    ]


def oracle_complaints(facts: list[Fact], now: datetime) -> list[tuple[Any, ...]]:
    orders: dict[UUID, list[datetime]] = defaultdict(list)
    deliveries: dict[UUID, list[datetime]] = defaultdict(list)
    complaints: dict[UUID, list[tuple[datetime, str]]] = defaultdict(list)
    for f in facts:
        if f.kind == "order":
            orders[f.customer].append(f.at)
        elif f.kind == "delivered":
            deliveries[f.customer].append(f.at)
        elif f.kind == "ticket" and f.data["kind"] == "complaint":
            complaints[f.customer].append((f.at, f.data["category"]))
    expected = []
    for customer, theirs in complaints.items():
        for at, category in sorted(theirs):
            # within 30 days of a delivery: the complaint falls in (delivered, delivered + 30 d]
            before = [
                d for d in deliveries[customer] if timedelta(0) < at - d <= timedelta(days=30)
            ]
            ordered_since = [o for o in orders[customer] if o > at]
            if before and not ordered_since and now - at >= timedelta(days=30):
                expected.append(
                    (
                        str(customer),
                        max(before).date().isoformat(),
                        at.date().isoformat(),
                        category,
                        len([o for o in orders[customer] if o <= at]),
                        (now - at).days,
                    )
                )
                break
    return sorted(expected)


def oracle_first_call(facts: list[Fact]) -> dict[str, tuple[int, float, float, int]]:
    source: dict[UUID, str] = {}
    calls: dict[UUID, list[datetime]] = defaultdict(list)
    orders: dict[UUID, list[datetime]] = defaultdict(list)
    for f in facts:
        if f.kind == "registered":
            source[f.customer] = f.data["source"]
        elif f.kind == "call":
            calls[f.customer].append(f.at)
        elif f.kind == "order":
            orders[f.customer].append(f.at)
    days: dict[str, list[float]] = defaultdict(list)
    first: Counter[str] = Counter()
    for customer, placed in orders.items():
        ordered = min(placed)
        channel = source.get(customer, "unknown")
        if not calls[customer] or ordered < min(calls[customer]):
            first[channel] += 1
        else:
            days[channel].append((ordered - min(calls[customer])) / DAY)
    return {
        ch: (len(v), round(statistics.median(v), 1), round(statistics.mean(v), 1), first[ch])
        for ch, v in days.items()
    }


def oracle_nps(facts: list[Fact]) -> dict[str, tuple[int, int, float | None, int, float | None]]:
    changes = sorted((f for f in facts if f.kind == "plan_change"), key=lambda f: f.at)
    first: dict[UUID, Fact] = {}
    for f in changes:
        first.setdefault(f.customer, f)
    per_month = {"month": 1, "year": 12}

    def kind_of(f: Fact) -> str:
        new = f.data["new_price"] / per_month[f.data["new_period"]]
        old = f.data["old_price"] / per_month[f.data["old_period"]]
        return "upgrade" if new > old else "downgrade"

    groups: dict[str, tuple[list[int], list[int], set[UUID]]] = {
        g: ([], [], set()) for g in ("upgrade", "downgrade", "any change", "no change")
    }
    for f in facts:
        if f.kind != "nps":
            continue
        change = first.get(f.customer)
        names = [kind_of(change), "any change"] if change else ["no change"]
        for g in names:
            after = change is not None and f.at >= change.at
            groups[g][1 if after else 0].append(f.data["score"])
            groups[g][2].add(f.customer)

    def nps(scores: list[int]) -> float | None:
        if not scores:
            return None
        good = len([s for s in scores if s in (9, 10)])
        bad = len([s for s in scores if s <= 6])
        return round((good - bad) * 100 / len(scores), 1)

    return {
        g: (len(who), len(before), nps(before), len(after), nps(after))
        for g, (before, after, who) in groups.items()
    }


def oracle_lead_times(facts: list[Fact]) -> dict[str, tuple[Any, ...]]:
    placed = {f.data["order"]: f for f in facts if f.kind == "order"}
    steps: dict[str, dict[str, datetime]] = defaultdict(dict)
    for f in facts:
        if f.kind in ("paid", "shipped", "delivered", "cancelled") and f.data["order"] in placed:
            steps[f.data["order"]][f.kind] = f.at
    by_method: dict[str, list[str]] = defaultdict(list)
    for order, f in placed.items():
        by_method[f.data["method"]].append(order)

    def wait(orders: list[str], step: str) -> float | None:
        waits = [(steps[o][step] - placed[o].at) / DAY for o in orders if step in steps[o]]
        return round(statistics.median(waits), 2) if waits else None

    def share(orders: list[str], step: str) -> str:
        return f"{len([o for o in orders if step in steps[o]]) / len(orders):.0%}"

    return {
        method: (
            len(orders),
            wait(orders, "paid"),
            wait(orders, "shipped"),
            wait(orders, "delivered"),
            share(orders, "delivered"),
            share(orders, "cancelled"),
        )
        for method, orders in by_method.items()
    }


# -- answers as the oracles shape them -----------------------------------------------------


def complaints_of(rows: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    keys = ("customer_id", "delivered_at", "complained_at", "category", "orders_before")
    return sorted((*(r[k] for k in keys), r["silent_days"]) for r in rows)


def first_call_of(rows: list[dict[str, Any]]) -> dict[str, tuple[int, float, float, int]]:
    return {
        r["channel"]: (
            r["customers"],
            r["median_days"],
            r["mean_days"],
            r["ordered_without_call_first"],
        )
        for r in rows
    }


def nps_of(
    rows: list[dict[str, Any]],
) -> dict[str, tuple[int, int, float | None, int, float | None]]:
    return {
        r["change"]: (
            r["customers"],
            r["answers_before"],
            r["nps_before"],
            r["answers_after"],
            r["nps_after"],
        )
        for r in rows
    }


def lead_times_of(rows: list[dict[str, Any]]) -> dict[str, tuple[Any, ...]]:
    keys = ("orders", "to_paid_days", "to_shipped_days", "to_delivered_days")
    return {
        r["payment_method"]: (*(r[k] for k in keys), r["delivered"], r["cancelled"]) for r in rows
    }


def approx_table(answer: dict[str, tuple[Any, ...]]) -> dict[str, Any]:
    """Means over floats summed in another order may differ in the last bit: round-trip safe."""
    return {
        k: tuple(pytest.approx(v, abs=0.051) if isinstance(v, float) else v for v in t)
        for k, t in answer.items()
    }


QUESTIONS = {
    "complaint_then_silence": (oracle_complaints, complaints_of),
    "first_call_to_first_order": (lambda facts, now: oracle_first_call(facts), first_call_of),
    "nps_around_plan_change": (lambda facts, now: oracle_nps(facts), nps_of),
    "order_lead_times": (lambda facts, now: oracle_lead_times(facts), lead_times_of),
}


# -- fixtures ------------------------------------------------------------------------------


@dataclass
class World:
    url: str
    engine: Engine
    scenario: Scenario


@pytest.fixture(scope="module", params=BACKENDS)
def world(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[World]:
    """One scenario per backend, shared by the module's tests (they only read)."""
    with contextlib.ExitStack() as stack:
        if request.param == "sqlite":
            url = f"sqlite:///{tmp_path_factory.mktemp('ask')}/crm.db"
        else:
            url = pg_url_with_schema(stack.enter_context(fresh_schema("ask")))
        engine = stack.enter_context(open_engine(url, env={}, clock=FixedClock(NOW)))
        yield World(url, engine, build(engine))


def question(name: str) -> Question:
    return load_question(EXAMPLES / f"{name}.py", EVENTS.tags())


# -- the example questions -----------------------------------------------------------------


@pytest.mark.parametrize("name", list(QUESTIONS))
def test_each_example_answers_as_its_oracle(world: World, name: str) -> None:
    oracle, shape = QUESTIONS[name]
    answer = run_question(question(name), world.engine.store, now=NOW)
    expected = oracle(world.scenario.facts, NOW)
    got = shape(answer.value)
    if isinstance(expected, dict):
        assert got == approx_table(expected)
    else:
        assert got == expected
    assert expected, "the scenario should give every question something to answer"


def test_the_complaint_rules_at_their_edges(world: World) -> None:
    rows = run_question(question("complaint_then_silence"), world.engine.store, now=NOW).value
    found = {r["customer_id"] for r in rows}
    edge = {k: str(v) for k, v in world.scenario.edge.items()}
    assert edge["at_30_days"] in found  # (delivery, delivery + 30 days] holds its end
    assert edge["past_30_days"] not in found
    assert edge["ordered_again"] not in found
    assert edge["a_request"] not in found
    assert edge["too_recent"] not in found  # silent for less than 30 days: too early to say


@pytest.mark.parametrize("name", list(QUESTIONS))
def test_as_of_folds_only_what_occurred_by_then(world: World, name: str) -> None:
    oracle, shape = QUESTIONS[name]
    at = NOW - timedelta(days=150)
    answer = run_question(question(name), world.engine.store, now=NOW, as_of=at)
    expected = oracle(upto(world.scenario.facts, as_of=at), at)
    assert shape(answer.value) == (
        approx_table(expected) if isinstance(expected, dict) else expected
    )
    full = run_question(question(name), world.engine.store, now=NOW)
    assert answer.events < full.events


@pytest.mark.parametrize("name", list(QUESTIONS))
def test_recorded_as_of_reads_what_was_known_then(world: World, name: str) -> None:
    oracle, shape = QUESTIONS[name]
    store = world.engine.store
    step = len(world.scenario.heads) // 2
    position = world.scenario.heads[step]
    recorded = store.read_rows(0, 1_000_000, (), position)[-1].recorded_at
    assert recorded is not None
    expected = oracle(upto(world.scenario.facts, step=step), NOW)
    expected = approx_table(expected) if isinstance(expected, dict) else expected
    by_position = run_question(question(name), store, now=NOW, recorded_as_of=position)
    by_time = run_question(question(name), store, now=NOW, recorded_as_of=recorded)
    assert shape(by_position.value) == expected
    assert shape(by_time.value) == expected
    assert by_position.events == by_time.events
    at = NOW - timedelta(days=150)
    both = run_question(question(name), store, now=NOW, as_of=at, recorded_as_of=position)
    expected_both = oracle(upto(world.scenario.facts, as_of=at, step=step), at)
    assert shape(both.value) == (
        approx_table(expected_both) if isinstance(expected_both, dict) else expected_both
    )


# -- what is read --------------------------------------------------------------------------


class Recording:
    """The store, noting every read: which types were asked for, which came back."""

    def __init__(self, store: EventStore) -> None:
        self.store = store
        self.asked: list[tuple[str, ...]] = []
        self.topics: Counter[str] = Counter()
        self.unseal: list[Container[str] | None] = []

    def read_rows(
        self, after: int = 0, limit: int = 1000, types: Sequence[str] = (), stop: int | None = None
    ) -> Sequence[Any]:
        self.asked.append(tuple(types))
        rows = self.store.read_rows(after, limit, types, stop)
        self.topics.update(r.topic for r in rows)
        return rows

    def decode_rows(self, rows: Sequence[Any], unseal: Container[str] | None = None) -> list[Any]:
        self.unseal.append(unseal)
        return self.store.decode_rows(rows, unseal)

    def head(self) -> int:
        return self.store.head()


@pytest.mark.parametrize("name", list(QUESTIONS))
def test_only_the_declared_types_are_read(world: World, name: str) -> None:
    q = question(name)
    recording = Recording(world.engine.store)
    answer = run_question(q, recording, now=NOW, page=7)  # small pages: many reads
    assert recording.asked and all(asked == q.reads for asked in recording.asked)
    everything = Counter(r.topic for r in world.engine.store.read_rows(0, 1_000_000))
    assert set(recording.topics) <= set(q.reads)
    assert recording.topics == Counter({t: n for t, n in everything.items() if t in q.reads})
    assert answer.read == sum(recording.topics.values()) < sum(everything.values())
    assert all(u is not None and not any(t in u for t in q.reads) for u in recording.unseal)


def test_personal_fields_are_opened_only_when_the_question_asks(
    world: World, tmp_path: Path
) -> None:
    body = (
        'READS = ["ticket.opened"]\n'
        "def start(): return []\n"
        "def fold(state, event): state.append(event.payload.subject)\n"
        "def answer(state): return sorted(set(state))\n"
    )
    (tmp_path / "closed.py").write_text(body)
    (tmp_path / "opened.py").write_text("PERSONAL = True\n" + body)
    closed = run_question(
        load_question(tmp_path / "closed.py", EVENTS.tags()), world.engine.store, now=NOW
    )
    opened = run_question(
        load_question(tmp_path / "opened.py", EVENTS.tags()), world.engine.store, now=NOW
    )
    assert closed.value == [FORGOTTEN]
    assert opened.value and all(s.startswith("Secret subject ") for s in opened.value)


def test_a_fold_that_raises_names_the_event(world: World, tmp_path: Path) -> None:
    path = tmp_path / "third.py"
    path.write_text(
        'READS = ["ticket.opened"]\n'
        "def start(): return 0\n"
        "def fold(state, event):\n"
        "    if state == 2:\n"
        "        raise ValueError('no third ticket, please')\n"
        "    return state + 1\n"
        "def answer(state): return state\n"
    )
    third = world.engine.store.read_rows(0, 3, ["ticket.opened"])[2]
    with pytest.raises(FoldFailed) as caught:
        run_question(load_question(path, EVENTS.tags()), world.engine.store, now=NOW)
    assert caught.value.position == third.position and caught.value.type == "ticket.opened"
    assert caught.value.line == 5 and "no third ticket" in str(caught.value)


# -- the command line ----------------------------------------------------------------------


def cli() -> typer.Typer:
    app = typer.Typer()
    app.command()(ask)
    return app


def test_crm_ask_prints_the_answer_as_json_and_csv(world: World, tmp_path: Path) -> None:
    env = {"CRM_STORE_URL": world.url, "CRM_NOW": NOW.isoformat()}
    runner = CliRunner()
    path = str(EXAMPLES / "first_call_to_first_order.py")
    result = runner.invoke(
        cli(), [path, "--format", "json", "--chart", str(tmp_path / "c.png")], env=env
    )
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout.strip().splitlines()[-1])
    assert first_call_of(rows) == approx_table(oracle_first_call(world.scenario.facts))
    assert (tmp_path / "c.png").stat().st_size > 1000
    result = runner.invoke(cli(), [path, "--format", "csv", "--as-of", "2026-01-01"], env=env)
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[0] == (
        "channel,customers,median_days,mean_days,ordered_without_call_first"
    )


@pytest.mark.parametrize(
    ("source", "code", "says"),
    [
        (None, 2, "no question file"),
        ("READS = ['order.placed']\ndef fold(s, e):\n    return (s\n", 2, "line 3"),
        (
            "READS = ['order.plced']\ndef fold(s, e): pass\ndef answer(s): return s\n",
            2,
            "order.placed",
        ),
        ("READS = ['order.placed']\ndef answer(s): return s\n", 2, "fold() is missing"),
        (
            "READS = ['order.placed']\ndef fold(s, e):\n    return 1 / 0\ndef answer(s): return s\n",
            1,
            "position",
        ),
    ],
)
def test_crm_ask_errors_are_one_clear_line(
    world: World, tmp_path: Path, source: str | None, code: int, says: str
) -> None:
    path = tmp_path / "q.py"
    if source is not None:
        path.write_text(source)
    env = {"CRM_STORE_URL": world.url, "CRM_NOW": NOW.isoformat()}
    result = CliRunner().invoke(cli(), [str(path)], env=env)
    assert result.exit_code == code, result.output
    assert says in result.output and "Traceback" not in result.output
