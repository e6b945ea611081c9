"""The compiled SQL path (projections/audience_sql.py) against the Python evaluator: for random
histories (calls with outcomes, e-mails, consents on two channels, orders and cancellations,
NPS answers, stage changes, birth dates, late events, merges), random rules over most of the
language (windowed count/sum/avg/min/max/last with `where`, day/week/month windows and
ranges, attributes, age, spend, orders, NPS, consents, member(), and/or/not) and random times,
the compiled answer of every customer (member, values, positions, next change) equals the
evaluator's over the same facts. A rule the compiler cannot express (`plan`) falls back, and a
define through the view (compiled) gives the members and timers the evaluator gives.
Hypothesis on SQLite; fixed examples on both backends. Brute force written in a test is in
test_audience_property.py (it runs the compiled define and backtest too)."""

from __future__ import annotations

import contextlib
import tempfile
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any
from uuid import UUID

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from domain.audiences.parse import parse_rule
from domain.errors import DomainError
from infra.clock import FixedClock
from infra.engine import Engine, open_engine
from infra.projector import open_runner
from projections import audiences as av
from projections.audience_sql import NotCompilable, answers, compile_rule
from projections.ports import ProjectionDB
from tests.integration.test_audience_backtest import do

# the compiled path is checked on both backends here (the engine keeps typed facts on
# PostgreSQL only)
pytestmark = pytest.mark.usefixtures("typed_facts_on_sqlite")


NOW = datetime(2026, 3, 31, 18, tzinfo=UTC)


# -- the two paths over one store -----------------------------------------------------------


def python_answers(db: ProjectionDB, rule: str, at: datetime, defs: dict[str, str]) -> dict:
    """Every customer that exists at `at`: the evaluator's (member, values, positions, next)."""
    from domain.audiences.state import Definition

    ds = {n: Definition(name=n, version=1, text=r, rule=parse_rule(r)) for n, r in defs.items()}
    ds["\x00t"] = Definition(name="\x00t", version=1, text=rule, rule=parse_rule(rule))
    order = av._needed(ds, "\x00t")
    p = av._projection_with(av._all_facts(db))
    out = {}
    for c, f in p._facts.items():
        if f.merged_into is not None or f.forgotten or not f.events:
            continue
        group = p._group(c)
        if av._born(group) > at:
            continue
        history, _ = av.history_at(group, at)
        answers_so_far: dict[str, bool] = {}
        edge = None
        for d in order:
            r = av.evaluator(d.rule).evaluate(history, at, answers_so_far)
            answers_so_far[d.name] = r.member
            if r.next_change is not None and (edge is None or r.next_change < edge):
                edge = r.next_change
        r = av.evaluator(parse_rule(rule)).evaluate(history, at, answers_so_far)
        out[c] = (r.member, r.values, r.positions, edge)
    return out


def sql_answers(db: ProjectionDB, rule: str, at: datetime, defs: dict[str, str]) -> dict:
    live = {n: parse_rule(r) for n, r in defs.items()}
    q = compile_rule(parse_rule(rule), live, at, db.dialect.name)
    assert av.facts_complete(lambda s, p=(): db.fetch(av._sql(db, s), p))
    rows = db.fetch(av._sql(db, q.sql), q.params)
    found = answers(q, rows, at, db.dialect.ts)
    (count,) = db.fetch(av._sql(db, q.count_sql), q.count_params)[0]
    assert count == sum(a.member for a in found.values())
    return {
        db.dialect.uuid(c): (a.member, a.values, a.positions, a.next_change)
        for c, a in found.items()
    }


def same_values(a: dict[str, Any], b: dict[str, Any]) -> bool:
    """Equal values; numbers compared as floats (a Decimal sum comes back as 30, not 30.00)."""
    if list(a) != list(b):
        return False
    for k, x in a.items():
        y = b[k]
        if (isinstance(x, int | float) and not isinstance(x, bool)) or hasattr(x, "as_tuple"):
            if y is None or abs(float(x) - float(y)) > 1e-6:
                return False
        elif x != y:
            return False
    return True


def agree(db: ProjectionDB, rule: str, at: datetime, defs: dict[str, str]) -> int:
    """The compiled answers equal the evaluator's for every customer; the member count."""
    want = python_answers(db, rule, at, defs)
    got = sql_answers(db, rule, at, defs)
    assert set(got) == set(want), (rule, at)
    for c, (member, values, positions, edge) in want.items():
        g = got[c]
        assert g[0] == member, (rule, at, c, g, want[c])
        if member:  # a non-member's values are not written anywhere: not computed
            assert same_values(values, g[1]), (rule, at, c, g[1], values)
            assert g[2] == positions, (rule, at, c, g[2], positions)
        # the compiled next change may only be earlier (a fact after T the rule does not
        # read, or another audience's edge, is in the evaluator's)
        assert g[3] is not None if edge is not None else True, (rule, at, c, g[3], edge)
        assert edge is None or g[3] <= edge, (rule, at, c, g[3], edge)
    return sum(m for m, *_ in want.values())


# -- histories ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Ev:
    kind: str  # call email consent withdraw order cancel nps stage birth
    who: int
    days_back: float
    n: int
    flag: bool


EVS = st.builds(
    Ev,
    kind=st.sampled_from(
        ["call", "call", "call", "email", "consent", "withdraw", "order", "cancel", "nps", "stage"]
    ),
    who=st.integers(0, 4),
    days_back=st.floats(0, 200),
    n=st.integers(0, 60),
    flag=st.booleans(),
)


class Feed:
    def __init__(self, engine: Engine, customers: int) -> None:
        self.engine = engine
        self.people = [UUID(int=i + 1, version=4) for i in range(customers)]
        self.orders: list[UUID] = []
        do(
            engine,
            "product.define",
            sku="C-BEANS",
            name="beans",
            category="coffee",
            list_price={"amount": "10.00", "currency": "EUR"},
            occurred_at=NOW - timedelta(days=3000),
        )
        for i, c in enumerate(self.people):
            birth = date(1980 + 7 * i, 3 + i, 31 - i) if i != 2 else None
            do(
                engine,
                "customer.register",
                customer_id=c,
                name="C",
                birth_date=None if birth is None else birth.isoformat(),
                gender=["female", "male", "unknown"][i % 3],
                stage="lead",
                occurred_at=NOW - timedelta(days=220 + i),
            )

    def send(self, e: Ev) -> None:
        """Send the event's command; one the domain refuses (a withdrawal with no consent, a
        second cancellation) appends nothing and is skipped."""
        with contextlib.suppress(DomainError):
            self._send(e)

    def _send(self, e: Ev) -> None:
        c = self.people[e.who % len(self.people)]
        at = NOW - timedelta(days=e.days_back)
        common = {"customer_id": c, "occurred_at": at}
        if e.kind == "call":
            outcome = ["sale", "reached", None][e.n % 3]
            do(
                self.engine,
                "interaction.log_call",
                direction="in" if e.flag else "out",
                duration_min=e.n + 0.5 * (e.n % 2),
                **({"outcome": outcome} if outcome else {}),
                **common,
            )
        elif e.kind == "email":
            do(self.engine, "interaction.log_email", direction="in" if e.flag else "out", **common)
        elif e.kind in ("consent", "withdraw"):
            command = (
                "customer.grant_consent" if e.kind == "consent" else "customer.withdraw_consent"
            )
            do(
                self.engine,
                command,
                consent_channel="email" if e.flag else "phone",
                **common,
            )
        elif e.kind == "order":
            units = e.n % 4 + 1
            r = do(
                self.engine,
                "order.place",
                items=[
                    {
                        "sku": "C-BEANS",
                        "quantity": units,
                        "unit_price": {"amount": "10.10", "currency": "EUR"},
                    }
                ],
                payment_method="card",
                **common,
            )
            self.orders.append(r.streams[0].id)
        elif e.kind == "cancel" and self.orders:
            order = self.orders[e.n % len(self.orders)]
            do(self.engine, "order.cancel", order_id=order, reason="r", occurred_at=at)
        elif e.kind == "nps":
            r = do(self.engine, "survey.send", kind="nps", trigger="periodic", **common)
            do(
                self.engine,
                "survey.answer",
                survey_id=r.streams[0].id,
                score=e.n % 11,
                occurred_at=at + timedelta(hours=1),
            )
        elif e.kind == "stage":
            stage = ["prospect", "customer", "lead"][e.n % 3]
            do(self.engine, "customer.change_stage", stage=stage, **common)

    def merge(self, survivor: int, duplicate: int) -> None:
        a, b = self.people[survivor % len(self.people)], self.people[duplicate % len(self.people)]
        if a != b:
            do(self.engine, "customer.merge", survivor_id=a, merged_id=b, occurred_at=NOW)


# -- rules ----------------------------------------------------------------------------------

WINDOWS = st.one_of(
    st.builds(
        lambda n, u: f"last {n} {u}",
        st.integers(1, 12),
        st.sampled_from(["days", "weeks", "months"]),
    ),
    st.builds(
        lambda a, b: f"from {min(a, b)} to {max(a, b)}",
        st.dates(date(2025, 9, 1), date(2026, 4, 30)),
        st.dates(date(2025, 9, 1), date(2026, 4, 30)),
    ),
)
OPS = st.sampled_from([">", ">=", "<", "<=", "=", "!="])
WHERE = st.sampled_from(
    ["", ' where direction = "in"', ' where outcome = "sale"', " where duration_min >= 10"]
)


@st.composite
def leaf(draw: st.DrawFn) -> str:
    kind = draw(st.integers(0, 11))
    w, op = draw(WINDOWS), draw(OPS)
    if kind == 0:
        return f"count(call{draw(WHERE)}, {w}) {op} {draw(st.integers(0, 3))}"
    if kind == 1:
        fn = draw(st.sampled_from(["sum", "avg", "min", "max", "last"]))
        return f"{fn}(call.duration_min{draw(WHERE)}, {w}) {op} {draw(st.integers(0, 90))}"
    if kind == 2:
        return f'last(call.outcome, {w}) = "sale"'
    if kind == 3:
        return f'count(email where direction = "out", {w}) {op} {draw(st.integers(0, 2))}'
    if kind == 4:
        return draw(st.sampled_from(["consent(email)", "consent(phone)"]))
    if kind == 5:
        return f'stage {draw(st.sampled_from(["=", "!="]))} "{draw(st.sampled_from(["lead", "customer", "prospect"]))}"'
    if kind == 6:
        lo = draw(st.integers(20, 50))
        return draw(st.sampled_from([f"age between {lo} and {lo + 6}", f"age {op} {lo}"]))
    if kind == 7:
        window = draw(st.sampled_from(["", f"({w})"]))
        return f"spend{window} {op} {draw(st.sampled_from([0, 20.2, 40.4, 60]))}"
    if kind == 8:
        window = draw(st.sampled_from(["", f"({w})"]))
        return f"orders{window} {op} {draw(st.integers(0, 2))}"
    if kind == 9:
        return f"nps {op} {draw(st.integers(0, 10))}"
    if kind == 10:
        return 'gender in ["female", "unknown"]'
    return "member(m0)"


RULES = st.recursive(
    leaf(),
    lambda inner: st.one_of(
        st.builds(lambda r: f"not ({r})", inner),
        st.builds(
            lambda a, op, b: f"({a}) {op} ({b})", inner, st.sampled_from(["and", "or"]), inner
        ),
    ),
    max_leaves=3,
)
M0 = "sum(call.duration_min, last 2 months) > 40 or consent(email)"


@dataclass(frozen=True)
class Case:
    customers: int
    events: list[Ev]
    late: list[Ev]
    merge: tuple[int, int] | None
    rules: list[str]
    times: list[float]  # days before NOW


CASES = st.builds(
    Case,
    customers=st.integers(2, 5),
    events=st.lists(EVS, min_size=5, max_size=30),
    late=st.lists(EVS, max_size=6),
    merge=st.one_of(st.none(), st.tuples(st.integers(0, 4), st.integers(0, 4))),
    rules=st.lists(RULES, min_size=1, max_size=3),
    times=st.lists(st.floats(-40, 230), min_size=1, max_size=3),
)


def check(url: str, case: Case) -> list[int]:
    sizes = []
    with open_engine(url, env={}, clock=FixedClock(NOW)) as engine:
        feed = Feed(engine, case.customers)
        for e in case.events:
            feed.send(e)
        with open_runner(engine, page=11) as runner:
            runner.catch_up(["audiences"])
            for e in case.late:
                feed.send(e)
            if case.merge is not None:
                feed.merge(*case.merge)
            runner.catch_up(["audiences"])
            for rule in case.rules:
                for back in case.times:
                    sizes.append(agree(runner.db, rule, NOW - timedelta(days=back), {"m0": M0}))
    return sizes


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(CASES)
def test_compiled_answers_equal_the_evaluator(case: Case) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        check(f"sqlite:///{tmp}/crm.db", case)


FIXED_EVENTS = [
    Ev("call", i % 4, (i * 7.3) % 190, (i * 13) % 60, i % 2 == 0) for i in range(40)
] + [
    Ev("email", 1, 3, 0, False),
    Ev("email", 1, 10, 0, False),
    Ev("consent", 0, 50, 0, True),
    Ev("withdraw", 0, 20, 0, True),
    Ev("consent", 2, 5, 0, False),
    Ev("order", 1, 40, 2, True),
    Ev("order", 1, 10, 1, True),
    Ev("order", 3, 100, 3, True),
    Ev("cancel", 1, 5, 0, True),
    Ev("nps", 2, 30, 9, True),
    Ev("nps", 2, 3, 4, True),
    Ev("stage", 3, 60, 1, True),
]
FIXED_RULES = [
    "sum(call.duration_min, last 4 months) > 300",
    'count(call where direction = "in" and duration_min >= 10, last 6 weeks) >= 2',
    "avg(call.duration_min, last 3 months) > 25 or max(call.duration_min, last 30 days) >= 50",
    'last(call.outcome, from 2025-12-01 to 2026-02-28) = "sale"',
    "age between 25 and 40 and not consent(phone)",
    'spend > 40 and stage != "customer"',
    "orders(last 60 days) >= 1 or nps <= 6",
    "member(m0) and not consent(email)",
    "min(call.duration_min, last 1 months) < 5",
]


def test_fixed_examples_on_both_backends(store_url: str) -> None:
    case = Case(
        customers=4,
        events=FIXED_EVENTS,
        late=[Ev("call", 0, 100, 45, True), Ev("consent", 3, 150, 0, False)],
        merge=(0, 3),
        rules=FIXED_RULES,
        times=[0, 15.5, 45, 100, 180, -20],
    )
    sizes = check(store_url, case)
    assert max(sizes) > 0 and min(sizes) == 0


def test_what_the_compiler_cannot_express_falls_back_and_agrees(store_url: str) -> None:
    """`plan` is evaluated in Python: the define takes the Python path (and the compiled
    define is used otherwise), both give the evaluator's members; backtest likewise."""
    rule = 'plan = "gold" or sum(call.duration_min, last 2 months) > 40'
    with pytest.raises(NotCompilable):
        compile_rule(parse_rule(rule), {}, NOW, "sqlite")
    used: list[bool] = []
    real = av.Audiences._define_compiled

    def spy(self: av.Audiences, *args: Any, **kw: Any) -> bool:
        used.append(real(self, *args, **kw))
        return used[-1]

    with open_engine(store_url, env={}, clock=FixedClock(NOW)) as engine:
        feed = Feed(engine, 4)
        for e in FIXED_EVENTS:
            feed.send(e)
        with open_runner(engine, page=13) as runner, pytest.MonkeyPatch.context() as mp:
            mp.setattr(av.Audiences, "_define_compiled", spy)
            runner.catch_up(["audiences"])
            do(engine, "audience.define", name="fallback", rule=rule)
            runner.catch_up(["audiences"])
            do(engine, "audience.define", name="compiled", rule=FIXED_RULES[1])
            runner.catch_up(["audiences"])
            assert used == [False, True]
            for name, text in (("fallback", rule), ("compiled", FIXED_RULES[1])):
                got = {m.customer_id for m in av.members(runner.db, name, now=NOW)}
                want = {c for c, a in python_answers(runner.db, text, NOW, {}).items() if a[0]}
                assert got == want, name
                times = [NOW - timedelta(days=d) for d in (90, 60, 30, 0)]
                points = av.backtest(
                    runner.db, text, start=times[0], end=NOW, every=timedelta(days=30)
                )
                python = av.backtest(
                    runner.db,
                    text,
                    start=times[0],
                    end=NOW,
                    every=timedelta(days=30),
                    compiled=False,
                )
                assert points == python


def test_a_compiled_define_schedules_the_evaluators_timers(store_url: str) -> None:
    """Defined after the history (compiled), then only the clock moves: the members follow
    the evaluator at each later time (the timers the define wrote fire when they must)."""
    clock = FixedClock(NOW)
    with open_engine(store_url, env={}, clock=clock) as engine:
        feed = Feed(engine, 4)
        for e in FIXED_EVENTS:
            feed.send(e)
        with open_runner(engine, page=13) as runner:
            runner.catch_up(["audiences"])
            for i, rule in enumerate(FIXED_RULES[:7]):
                do(engine, "audience.define", name=f"a{i}", rule=rule)
            runner.catch_up(["audiences"])
            now = NOW
            for step in (0, 3, 11, 30, 47):
                now += timedelta(days=step, hours=5)
                clock.advance_to(now)
                runner.fire_timers()
                for i, rule in enumerate(FIXED_RULES[:7]):
                    got = {m.customer_id for m in av.members(runner.db, f"a{i}", now=now)}
                    want = python_answers(runner.db, rule, now, {})
                    assert got == {c for c, a in want.items() if a[0]}, (rule, now)


@given(
    st.datetimes(datetime(2024, 1, 1), datetime(2027, 12, 31), timezones=st.just(UTC)),
    st.integers(1, 14),
)
@settings(max_examples=400)
def test_the_month_edge_shortcut_is_leaves_at(t: datetime, n: int) -> None:
    from domain.audiences import ast
    from domain.audiences.evaluate import leaves_at
    from projections.audience_sql import _Leaf, _moved

    window = ast.Last(n=n, unit="months")
    leaf = _Leaf("k", "", [], True, int, window=window)
    assert _moved(leaf, t) == leaves_at(t, window)
