"""`backtest` (the size over time of a rule never defined) against a brute-force count written
here (oracle) over the test's own history: at each T, only facts with occurred_at <= T, a
customer with none yet does not exist, a merged customer counts once as its survivor, a
forgotten one never. And `crm audience backtest` as a user runs it. On both backends.

The oracle (`History`, the rule nodes below) is shared with test_audience_property.py."""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest
from dateutil.relativedelta import relativedelta
from typer.testing import CliRunner

from domain.audiences.errors import RuleSyntaxError, UnknownAudience
from handlers.decision import CommandContext
from infra.cli.audiences import audience_app
from infra.clock import FixedClock
from infra.engine import Engine, open_engine
from infra.projector import open_runner
from projections.audiences import backtest, members

NOW = datetime(2026, 6, 1, 12, tzinfo=UTC)

# -- the oracle: the test's own record of what it sent, and rules evaluated over it ----------


@dataclass(frozen=True)
class Fact:
    """One event the test caused: `seq` is the order it was sent (the log's order)."""

    seq: int
    kind: str  # registered, call, email, consent, order, merge, forget
    customer: UUID
    at: datetime
    minutes: int = 0
    direction: str = "in"
    granted: bool = False
    amount: Decimal = Decimal(0)


@dataclass
class History:
    facts: list[Fact] = field(default_factory=list)
    merged: dict[UUID, UUID] = field(default_factory=dict)  # duplicate -> survivor
    forgotten: set[UUID] = field(default_factory=set)

    def add(self, kind: str, customer: UUID, at: datetime, **kw: Any) -> None:
        self.facts.append(Fact(len(self.facts), kind, customer, at, **kw))

    def groups(self, at: datetime) -> dict[UUID, list[Fact]]:
        """Per survivor, the facts of it and of the customers merged into it with business
        time <= at; customers with no such fact do not exist yet."""
        out: dict[UUID, list[Fact]] = {}
        for f in self.facts:
            owner = self.merged.get(f.customer, f.customer)
            if f.at <= at and owner not in self.forgotten and f.customer not in self.forgotten:
                out.setdefault(owner, []).append(f)
        return out

    def selected(self, rule: Node, at: datetime) -> set[UUID]:
        return {c for c, facts in self.groups(at).items() if rule.holds(facts, at)}


OPS = {
    ">": lambda a, b: a > b,
    ">=": lambda a, b: a >= b,
    "<": lambda a, b: a < b,
    "<=": lambda a, b: a <= b,
    "=": lambda a, b: a == b,
}


class Node:
    def text(self) -> str:
        raise NotImplementedError

    def holds(self, facts: list[Fact], at: datetime) -> bool:
        raise NotImplementedError


@dataclass(frozen=True)
class Agg(Node):
    """count or sum(call.duration_min) of calls or e-mails in the last n days or weeks."""

    fn: str  # count | sum
    kind: str  # call | email
    n: int
    unit: str  # days | weeks
    op: str
    value: int
    direction: str | None = None

    def text(self) -> str:
        what = self.kind if self.fn == "count" else f"{self.kind}.duration_min"
        where = f' where direction = "{self.direction}"' if self.direction else ""
        return f"{self.fn}({what}{where}, last {self.n} {self.unit}) {self.op} {self.value}"

    def holds(self, facts: list[Fact], at: datetime) -> bool:
        span = timedelta(days=self.n) if self.unit == "days" else timedelta(weeks=self.n)
        inside = [
            f
            for f in facts
            if f.kind == self.kind
            and at - span < f.at <= at
            and (self.direction is None or f.direction == self.direction)
        ]
        total = len(inside) if self.fn == "count" else sum(f.minutes for f in inside)
        return OPS[self.op](total, self.value)


@dataclass(frozen=True)
class Spend(Node):
    """Net spend of orders (placed in the last n days, if n)."""

    n: int | None
    op: str
    value: int

    def text(self) -> str:
        window = "" if self.n is None else f"(last {self.n} days)"
        return f"spend{window} {self.op} {self.value}"

    def holds(self, facts: list[Fact], at: datetime) -> bool:
        lo = None if self.n is None else at - timedelta(days=self.n)
        total = sum(
            (f.amount for f in facts if f.kind == "order" and (lo is None or f.at > lo)),
            Decimal(0),
        )
        return OPS[self.op](total, self.value)


@dataclass(frozen=True)
class Consent(Node):
    """The latest e-mail consent fact by business time (then log order) grants."""

    def text(self) -> str:
        return "consent(email)"

    def holds(self, facts: list[Fact], at: datetime) -> bool:
        mine = [f for f in facts if f.kind == "consent"]
        latest = max(mine, key=lambda f: (f.at, f.seq), default=None)
        return latest is not None and latest.granted


@dataclass(frozen=True)
class Not(Node):
    item: Node

    def text(self) -> str:
        return f"not ({self.item.text()})"

    def holds(self, facts: list[Fact], at: datetime) -> bool:
        return not self.item.holds(facts, at)


@dataclass(frozen=True)
class Both(Node):
    op: str  # and | or
    left: Node
    right: Node

    def text(self) -> str:
        return f"({self.left.text()}) {self.op} ({self.right.text()})"

    def holds(self, facts: list[Fact], at: datetime) -> bool:
        a, b = self.left.holds(facts, at), self.right.holds(facts, at)
        return a and b if self.op == "and" else a or b


# -- feeding the engine and the oracle from the same commands -------------------------------


def do(engine: Engine, command: str, /, **data: Any) -> Any:
    return engine.bus.execute_json(
        command,
        {k: str(v) if isinstance(v, UUID | datetime) else v for k, v in data.items()},
        CommandContext(actor="employee:ann", channel="test"),
    )


class Feeder:
    """Sends commands and records the facts they cause in the oracle's history."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.h = History()
        self.consenting: set[UUID] = set()
        do(
            engine,
            "product.define",
            sku="C-BEANS",
            name="beans",
            category="coffee",
            list_price={"amount": "10.00", "currency": "EUR"},
            occurred_at=NOW - timedelta(days=3000),
        )

    def register(self, c: UUID, at: datetime) -> None:
        do(self.engine, "customer.register", customer_id=c, name="C", occurred_at=at)
        self.h.add("registered", c, at)

    def call(self, c: UUID, at: datetime, minutes: int, direction: str = "in") -> None:
        do(
            self.engine,
            "interaction.log_call",
            customer_id=c,
            direction=direction,
            duration_min=minutes,
            occurred_at=at,
        )
        self.h.add("call", c, at, minutes=minutes, direction=direction)

    def email(self, c: UUID, at: datetime, direction: str) -> None:
        do(self.engine, "interaction.log_email", customer_id=c, direction=direction, occurred_at=at)
        self.h.add("email", c, at, direction=direction)

    def consent(self, c: UUID, at: datetime) -> None:
        """Grant the e-mail consent, or withdraw it if granted (the customer decides in log
        order; the business times may be in any order)."""
        granted = c not in self.consenting
        command = "customer.grant_consent" if granted else "customer.withdraw_consent"
        do(self.engine, command, customer_id=c, consent_channel="email", occurred_at=at)
        self.consenting ^= {c}
        self.h.add("consent", c, at, granted=granted)

    def order(self, c: UUID, at: datetime, units: int) -> None:
        do(
            self.engine,
            "order.place",
            customer_id=c,
            items=[
                {
                    "sku": "C-BEANS",
                    "quantity": units,
                    "unit_price": {"amount": "10.00", "currency": "EUR"},
                }
            ],
            payment_method="card",
            occurred_at=at,
        )
        self.h.add("order", c, at, amount=Decimal(10 * units))

    def merge(self, survivor: UUID, duplicate: UUID, at: datetime) -> None:
        do(self.engine, "customer.merge", survivor_id=survivor, merged_id=duplicate, occurred_at=at)
        self.h.merged[duplicate] = survivor
        self.h.add("merge", survivor, at)
        self.h.add("merge", duplicate, at)

    def forget(self, c: UUID, at: datetime) -> None:
        do(self.engine, "customer.forget", customer_id=c, occurred_at=at)
        self.h.forgotten.add(c)


# -- the backtest ----------------------------------------------------------------------------


@pytest.fixture
def engine(store_url: str) -> Iterator[Engine]:
    with open_engine(store_url, env={}, clock=FixedClock(NOW)) as e:
        yield e


def fed(engine: Engine, seed: int) -> tuple[Feeder, list[UUID]]:
    """Twenty customers registering over the year, calls, e-mails, consents, orders sent in
    random business-time order (late events), a merge and a forgotten customer."""
    rng = random.Random(seed)
    feeder = Feeder(engine)
    customers = [UUID(int=rng.getrandbits(128), version=4) for _ in range(20)]
    born = {
        c: NOW - timedelta(days=rng.randrange(30, 360), hours=rng.randrange(24)) for c in customers
    }
    for c in customers:
        feeder.register(c, born[c])
    for _ in range(220):
        c = rng.choice(customers)
        at = born[c] + (NOW - born[c]) * rng.random()
        kind = rng.random()
        if kind < 0.45:
            feeder.call(c, at, rng.randint(1, 60), rng.choice(["in", "out"]))
        elif kind < 0.7:
            feeder.email(c, at, rng.choice(["in", "out"]))
        elif kind < 0.85:
            feeder.consent(c, at)
        else:
            feeder.order(c, at, rng.randint(1, 5))
    feeder.merge(customers[0], customers[1], NOW - timedelta(days=2))
    feeder.forget(customers[2], NOW - timedelta(days=1))
    return feeder, customers


RULES: list[Node] = [
    Agg("sum", "call", 30, "days", ">", 60),
    Both("or", Agg("count", "email", 2, "weeks", ">=", 1, "in"), Consent()),
    Not(Consent()),  # holds for a customer with no consent: only once they exist
    Both("and", Spend(None, ">=", 40), Not(Agg("count", "call", 10, "days", ">", 0))),
]


@pytest.mark.parametrize(
    ("every", "step"),
    [("1w", timedelta(weeks=1)), ("3d", timedelta(days=3)), ("1m", relativedelta(months=1))],
)
def test_backtest_points_equal_a_brute_force_count(engine: Engine, every: str, step: Any) -> None:
    feeder, _ = fed(engine, 7)
    start, end = NOW - timedelta(days=380), NOW
    times = []
    while (t := start + step * len(times)) <= end:
        times.append(t)
    with open_runner(engine, page=97) as runner:
        runner.catch_up(["audiences"])
        for rule in RULES:
            points = backtest(runner.db, rule.text(), start=start, end=end, every=step)
            assert [p.at for p in points] == times
            want = [len(feeder.h.selected(rule, t)) for t in times]
            assert [p.size for p in points] == want, rule.text()
            assert max(want) > 0 and (min(want) < max(want)), rule.text()  # it says something
    assert len({len(feeder.h.groups(t)) for t in times}) > 5  # customers appear over time


def test_backtest_reads_other_audiences_at_each_time_and_refuses_bad_rules(engine: Engine) -> None:
    feeder, _ = fed(engine, 11)
    callers = Agg("count", "call", 3, "weeks", ">=", 2)
    do(engine, "audience.define", name="callers", rule=callers.text())
    do(engine, "audience.define", name="unconsented", rule="not consent(email)")
    start, step = NOW - timedelta(days=200), timedelta(days=5)
    times = [start + step * i for i in range(41)]
    with open_runner(engine) as runner:
        runner.catch_up(["audiences"])
        points = backtest(
            runner.db, "member(callers) and not consent(email)", start=start, end=NOW, every=step
        )
        rule = Both("and", callers, Not(Consent()))
        assert [p.size for p in points] == [len(feeder.h.selected(rule, t)) for t in times]
        for t in (NOW - timedelta(days=300), NOW - timedelta(days=90), NOW):
            # `members --as-of` agrees: no customer before its first fact
            got = {m.customer_id for m in members(runner.db, "unconsented", now=NOW, as_of=t)}
            assert got == feeder.h.selected(Not(Consent()), t)
        with pytest.raises(RuleSyntaxError) as bad:
            backtest(
                runner.db, "sum(call.duration_min, 4 months) > 1", start=start, end=NOW, every=step
            )
        assert (bad.value.line, bad.value.column) == (1, 24)
        with pytest.raises(UnknownAudience):
            backtest(runner.db, "member(nobody)", start=start, end=NOW, every=step)


def test_cli_backtest_formats_chart_and_errors(
    store_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CRM_STORE_URL", store_url)
    monkeypatch.setenv("CRM_NOW", NOW.isoformat())
    with open_engine(store_url, env={}, clock=FixedClock(NOW)) as engine:
        feeder, _ = fed(engine, 3)
    rule = RULES[0]
    cli = CliRunner()
    chart = tmp_path / "backtest.png"
    args = ["backtest", rule.text(), "--from", "2025-12-01", "--to", "2026-05-31", "--every", "2w"]
    shown = cli.invoke(audience_app, [*args, "--format", "json", "--chart", str(chart)])
    assert shown.exit_code == 0, shown.output
    rows = json.loads(shown.stdout.splitlines()[0])
    start = datetime(2025, 12, 1, 23, 59, 59, tzinfo=UTC)  # a date is the end of that day
    times = [start + timedelta(weeks=2 * i) for i in range(13)]
    assert rows == [{"at": t.isoformat(), "size": len(feeder.h.selected(rule, t))} for t in times]
    assert chart.stat().st_size > 10_000
    as_csv = cli.invoke(audience_app, [*args, "--format", "csv"])
    assert as_csv.exit_code == 0 and as_csv.stdout.splitlines()[0] == "at,size"
    assert len(as_csv.stdout.splitlines()) == 14
    table = cli.invoke(audience_app, args)
    assert table.exit_code == 0 and "backtest" in table.stdout
    bad = cli.invoke(
        audience_app, ["backtest", "sum(call.duration_min, 4 months) > 1", "--from", "2026-01-01"]
    )
    assert bad.exit_code == 1
    error = json.loads(bad.stdout)["error"]
    assert error["code"] == "rule_syntax_error"
    assert (error["details"]["line"], error["details"]["column"]) == ("1", "24")
    assert cli.invoke(audience_app, [*args[:-1], "weekly"]).exit_code == 2
    assert (
        cli.invoke(audience_app, ["backtest", "consent(email)", "--from", "tomorrow"]).exit_code
        == 2
    )
