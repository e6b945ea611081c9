"""The pure evaluator: is a customer in an audience at time T, why, and until when.

`Evaluator(rule).evaluate(history, at)` folds a customer's facts (`CustomerHistory`, built by
the caller with merged customers' facts already combined) at business time `at`: only facts
with `occurred_at <= at` count. The answer names every value the rule looked at, the positions
of the facts behind them, and `next_change`: the earliest time after `at` at which the answer
can change with no new fact arriving (an event leaving or entering a window, a birthday, a
fact already in the history with a later business time). Between `at` and `next_change`
the answer is exactly the one at `at`, so a scheduler re-evaluates the customer then, not before.

Windows: `last N units` holds the facts with `at - N < t <= at`; months are calendar months
(`months_before`: a day the earlier month lacks starts at the next month's first instant);
a range holds `[start 00:00, end+1 00:00)` UTC, capped at `at`.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from functools import lru_cache
from typing import Any

import msgspec

from domain.audiences import ast
from domain.audiences.errors import RuleError
from domain.audiences.parse import format_expr, format_rule
from domain.audiences.vocabulary import check_rule, field_info
from domain.money import Money

Members = Mapping[str, bool] | Callable[[str], bool] | None
"""Membership of other audiences (`member(x)`), as the caller knows it at T."""


class EventFact(msgspec.Struct, frozen=True, array_like=True, gc=False):
    """One event of the customer: its payload as the event Struct or a dict of its fields."""

    occurred_at: datetime
    position: int
    tag: str
    payload: Any


class ConsentFact(msgspec.Struct, frozen=True, array_like=True, gc=False):
    at: datetime
    position: int
    channel: str
    purpose: str
    granted: bool


class OrderFact(msgspec.Struct, frozen=True, array_like=True, gc=False):
    """An order placed at `at`; `net` is what it is worth now (after returns, cancellations)."""

    at: datetime
    position: int
    net: Decimal


class PlanFact(msgspec.Struct, frozen=True, array_like=True, gc=False):
    """From `at` on, `subscription` runs on `plan`; None once it has ended."""

    at: datetime
    position: int
    subscription: str
    plan: str | None


class NpsFact(msgspec.Struct, frozen=True, array_like=True, gc=False):
    at: datetime
    position: int
    score: int


class CustomerHistory(msgspec.Struct, kw_only=True, gc=False):
    """What the evaluator may look at for one customer; profile attributes as of T."""

    gender: str | None = None
    income_band: str | None = None
    kind: str | None = None
    stage: str | None = None
    source: str | None = None
    birth_date: date | None = None
    consents: list[ConsentFact] = []
    events: list[EventFact] = []
    orders: list[OrderFact] = []
    plans: list[PlanFact] = []
    nps: list[NpsFact] = []


class Evaluation(msgspec.Struct, frozen=True, kw_only=True):
    member: bool
    values: dict[str, Any]
    positions: list[int]
    next_change: datetime | None


class _Ctx:
    __slots__ = ("at", "h", "members", "next", "positions", "values")

    def __init__(self, h: CustomerHistory, at: datetime, members: Members) -> None:
        self.h, self.at, self.members = h, at, members
        self.values: dict[str, Any] = {}
        self.positions: set[int] = set()
        self.next: datetime | None = None

    def edge(self, t: datetime | None) -> None:
        if t is not None and (self.next is None or t < self.next):
            self.next = t


Compute = Callable[[_Ctx], tuple[Any, Iterable[int], datetime | None]]
Check = Callable[[_Ctx], bool]


class Evaluator:
    """A rule compiled once into closures; `evaluate` runs per customer with no parsing."""

    def __init__(self, rule: ast.Rule) -> None:
        check_rule(rule)
        self.rule = rule
        self._check = _rule(rule)

    def evaluate(
        self, history: CustomerHistory, at: datetime, members: Members = None
    ) -> Evaluation:
        if at.tzinfo is None:
            raise RuleError(f"evaluation time {at.isoformat()} has no time zone; give UTC")
        ctx = _Ctx(history, at.astimezone(UTC), members)
        member = self._check(ctx)
        return Evaluation(
            member=member,
            values=ctx.values,
            positions=sorted(ctx.positions),
            next_change=ctx.next,
        )


@lru_cache(maxsize=256)
def evaluator(rule: ast.Rule) -> Evaluator:
    """The compiled evaluator of a rule, cached (rules are frozen and hashable)."""
    return Evaluator(rule)


def evaluate(
    rule: ast.Rule, history: CustomerHistory, at: datetime, members: Members = None
) -> Evaluation:
    return evaluator(rule).evaluate(history, at, members)


# windows


_MICRO = timedelta(microseconds=1)


def _shift_months(t: datetime, n: int) -> datetime | None:
    """t moved n calendar months, same day and time; None if that month lacks the day."""
    y, m = divmod(t.month - 1 + n, 12)
    try:
        return t.replace(year=t.year + y, month=m + 1)
    except ValueError:
        return None


def _month_after(t: datetime, n: int) -> datetime:
    """The first instant of the month n + 1 months after t's month."""
    y, m = divmod(t.month + n, 12)
    return datetime(t.year + y, m + 1, 1, tzinfo=t.tzinfo)


def months_before(at: datetime, n: int) -> datetime:
    """`at` minus n calendar months; a day the earlier month lacks (31 Apr) is its next day's
    first instant (1 May 00:00), so the window start never moves back as `at` moves on
    (relativedelta clamps to the 30th at `at`'s time of day, which does)."""
    earlier = _shift_months(at, -n)
    return earlier if earlier is not None else _month_after(at, -n)


@lru_cache(maxsize=4096)
def window_start(window: ast.Last, at: datetime) -> datetime:
    """The open lower bound of a `last N` window at `at` (cached: a run shares one `at`)."""
    if window.unit == "days":
        return at - timedelta(days=window.n)
    if window.unit == "weeks":
        return at - timedelta(weeks=window.n)
    return months_before(at, window.n)


def leaves_at(t: datetime, window: ast.Last) -> datetime:
    """The first T at which a fact of time t is no longer in the window (`start(T) >= t`)."""
    if window.unit == "days":
        return t + timedelta(days=window.n)
    if window.unit == "weeks":
        return t + timedelta(weeks=window.n)
    n = window.n
    later = _shift_months(t, n)
    candidates = [_month_after(t, n)]
    if later is not None:
        candidates.append(later)
    if t.day == 1 and t == t.replace(hour=0, minute=0, second=0, microsecond=0):
        # the days of month M+n-1 that month M-1 lacks start their window at t itself
        first_missing = (t - timedelta(days=1)).day + 1
        prior = _shift_months(t, n - 1)
        assert prior is not None
        missing = prior.replace(day=first_missing) if first_missing <= _days_in(prior) else None
        if missing is not None:
            candidates.append(missing)
    return min(c for c in candidates if months_before(c, n) >= t)


def _days_in(t: datetime) -> int:
    return (_month_after(t, 0) - timedelta(days=1)).day


def range_span(window: ast.Range, tz: Any = UTC) -> tuple[datetime, datetime]:
    """`(lo, hi)` with a fact in the range iff `lo < t <= hi` (microsecond resolution)."""
    start = datetime(window.start.year, window.start.month, window.start.day, tzinfo=tz)
    end = datetime(window.end.year, window.end.month, window.end.day, tzinfo=tz)
    return start - _MICRO, end + timedelta(days=1) - _MICRO


def _scan(
    items: Iterable[Any],
    at: datetime,
    window: ast.Window | None,
    when: str,
    keep: Callable[[Any], bool] | None = None,
) -> tuple[list[Any], datetime | None]:
    """The items in the window at `at`, and the earliest later time one enters or leaves it."""
    span_lo = span_hi = None
    lo: datetime | None = None
    hi = at
    if isinstance(window, ast.Last):
        lo = window_start(window, at)
    elif isinstance(window, ast.Range):
        span_lo, span_hi = range_span(window, at.tzinfo)
        lo, hi = span_lo, min(at, span_hi)
    inside: list[Any] = []
    first: datetime | None = None
    future: datetime | None = None
    for x in items:
        if keep is not None and not keep(x):
            continue
        t = getattr(x, when)
        if t > hi:
            if (
                t > at
                and (span_hi is None or t <= span_hi)
                and (future is None or t < future)
                and (span_lo is None or t > span_lo)
            ):
                future = t
            continue
        if lo is not None and t <= lo:
            continue
        inside.append(x)
        if first is None or t < first:
            first = t
    if isinstance(window, ast.Last) and first is not None:
        leave = leaves_at(first, window)
        if future is None or leave < future:
            future = leave
    return inside, future


# expressions


def _getter(tag: str, field: str) -> Callable[[Any], Any]:
    norm = field_info(tag, field).norm

    def raw(p: Any) -> Any:
        return p.get(field) if type(p) is dict else getattr(p, field, None)

    if norm == "plain":
        return raw

    def get(p: Any) -> Any:
        v = raw(p)
        if v is None:
            return None
        if norm == "money":
            return v.amount if isinstance(v, Money) else Decimal(str(v["amount"]))
        if norm == "uuid":
            return str(v)
        return v.astimezone(UTC).date() if isinstance(v, datetime) else v

    return get


@lru_cache(maxsize=1024)
def field_getter(tag: str, field: str) -> Callable[[Any], Any]:
    """How the evaluator reads a field of an event's payload (the SQL path stores exactly
    these values as rows)."""
    return _getter(tag, field)


def _agg(expr: ast.Agg) -> Compute:
    tag, fn, window = expr.event, expr.fn, expr.window
    filters = [(_getter(tag, w.field), _test(w.test)) for w in expr.where]
    get = _getter(tag, expr.field) if expr.field else None

    def keep(e: EventFact) -> bool:
        if e.tag != tag:
            return False
        if not filters:
            return True
        p = e.payload
        return all(test(g(p)) for g, test in filters)

    def compute(ctx: _Ctx) -> tuple[Any, Iterable[int], datetime | None]:
        inside, edge = _scan(ctx.h.events, ctx.at, window, "occurred_at", keep)
        positions = [e.position for e in inside]
        if get is None:
            return len(inside), positions, edge
        if fn == "last":
            best = None
            for e in inside:
                v = get(e.payload)
                if v is not None and (
                    best is None or (e.occurred_at, e.position) > (best[0], best[1])
                ):
                    best = (e.occurred_at, e.position, v)
            return (best[2] if best else None), positions, edge
        values = [v for v in (get(e.payload) for e in inside) if v is not None]
        return _fold(fn, values), positions, edge

    return compute


def _fold(fn: str, values: list[Any]) -> Any:
    if fn == "count":
        return len(values)
    if fn == "sum":
        return sum(values, 0)
    if not values:
        return None
    if fn == "avg":
        return sum(values, 0) / len(values)
    return min(values) if fn == "min" else max(values)


def _orders(expr: ast.Spend | ast.Orders) -> Compute:
    window, spend = expr.window, isinstance(expr, ast.Spend)

    def compute(ctx: _Ctx) -> tuple[Any, Iterable[int], datetime | None]:
        inside, edge = _scan(ctx.h.orders, ctx.at, window, "at")
        value = sum((o.net for o in inside), Decimal(0)) if spend else len(inside)
        return value, [o.position for o in inside], edge

    return compute


def _latest_by(
    facts: Iterable[Any], at: datetime, key: Callable[[Any], Any]
) -> tuple[dict[Any, Any], datetime | None]:
    """Per key, the latest fact (by time, then position) at or before `at`; the next later time."""
    latest: dict[Any, Any] = {}
    future: datetime | None = None
    for f in facts:
        if f.at > at:
            if future is None or f.at < future:
                future = f.at
            continue
        k = key(f)
        cur = latest.get(k)
        if cur is None or (f.at, f.position) > (cur.at, cur.position):
            latest[k] = f
    return latest, future


def _nps(ctx: _Ctx) -> tuple[Any, Iterable[int], datetime | None]:
    latest, edge = _latest_by(ctx.h.nps, ctx.at, lambda f: None)
    f = latest.get(None)
    return (f.score, [f.position], edge) if f else (None, (), edge)


def _plan(ctx: _Ctx) -> tuple[Any, Iterable[int], datetime | None]:
    latest, edge = _latest_by(ctx.h.plans, ctx.at, lambda f: f.subscription)
    live = [f for f in latest.values() if f.plan is not None]
    best = max(live, key=lambda f: (f.at, f.position), default=None)
    return (best.plan if best else None), [f.position for f in latest.values()], edge


def age_at(birth: date, at: datetime) -> int:
    today = at.date()
    return today.year - birth.year - ((today.month, today.day) < (birth.month, birth.day))


def next_birthday(birth: date, at: datetime) -> datetime:
    """The first midnight (UTC) after `at` at which the age goes up (29 Feb: 1 Mar if none)."""
    today = at.date()
    year = today.year if (today.month, today.day) < (birth.month, birth.day) else today.year + 1
    try:
        day = date(year, birth.month, birth.day)
    except ValueError:
        day = date(year, 3, 1)
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


def _age(ctx: _Ctx) -> tuple[Any, Iterable[int], datetime | None]:
    birth = ctx.h.birth_date
    if birth is None:
        return None, (), None
    return age_at(birth, ctx.at), (), next_birthday(birth, ctx.at)


def _attr(name: str) -> Compute:
    def compute(ctx: _Ctx) -> tuple[Any, Iterable[int], datetime | None]:
        return getattr(ctx.h, name), (), None

    return compute


def _compute(expr: ast.Expr) -> Compute:
    match expr:
        case ast.Agg():
            return _agg(expr)
        case ast.Spend() | ast.Orders():
            return _orders(expr)
        case ast.Attr():
            return _attr(expr.name)
        case ast.Age():
            return _age
        case ast.Plan():
            return _plan
    return _nps


_MISSING = object()


def _leaf(key: str, compute: Compute) -> Callable[[_Ctx], Any]:
    """A value computed once per evaluation; its positions and next edge go to the context."""

    def value(ctx: _Ctx) -> Any:
        v = ctx.values.get(key, _MISSING)
        if v is _MISSING:
            v, positions, edge = compute(ctx)
            ctx.values[key] = v
            ctx.positions.update(positions)
            ctx.edge(edge)
        return v

    return value


# tests and rules

_OPS: dict[str, Callable[[Any, Any], bool]] = {
    ">": operator.gt,
    ">=": operator.ge,
    "<": operator.lt,
    "<=": operator.le,
    "=": operator.eq,
    "!=": operator.ne,
}


def _lit(lit: ast.Lit) -> Any:
    return lit.value


def _match(v: Any, lit: Any) -> Any:
    """The literal in the form to compare with v: a float value compares with a float."""
    return float(lit) if type(v) is float and isinstance(lit, Decimal) else lit


def _test(test: ast.Test) -> Callable[[Any], bool]:
    """A missing value (None) satisfies no test."""
    if isinstance(test, ast.Cmp):
        op, lit = _OPS[test.op], _lit(test.value)
        return lambda v: v is not None and op(v, _match(v, lit))
    if isinstance(test, ast.Between):
        low, high = _lit(test.low), _lit(test.high)
        return lambda v: v is not None and _match(v, low) <= v <= _match(v, high)
    lits = tuple(_lit(x) for x in test.values)
    return lambda v: v is not None and any(v == _match(v, x) for x in lits)


def _consent(node: ast.Consent) -> Compute:
    channel, purpose = node.channel, node.purpose

    def compute(ctx: _Ctx) -> tuple[Any, Iterable[int], datetime | None]:
        facts = [
            f
            for f in ctx.h.consents
            if f.channel == channel and (purpose is None or f.purpose == purpose)
        ]
        latest, edge = _latest_by(facts, ctx.at, lambda f: f.purpose)
        granted = any(f.granted for f in latest.values())
        return granted, [f.position for f in latest.values()], edge

    return compute


def _member(name: str) -> Compute:
    def compute(ctx: _Ctx) -> tuple[Any, Iterable[int], datetime | None]:
        m = ctx.members
        if m is None:
            return False, (), None
        return bool(m(name) if callable(m) else m.get(name, False)), (), None

    return compute


def _rule(rule: ast.Rule) -> Check:
    match rule:
        case ast.And():
            parts = [_rule(r) for r in rule.items]
            # every part runs (no short cut), so values and next_change cover the whole rule
            return lambda ctx: all([p(ctx) for p in parts])
        case ast.Or():
            parts = [_rule(r) for r in rule.items]
            return lambda ctx: any([p(ctx) for p in parts])
        case ast.Not():
            inner = _rule(rule.item)
            return lambda ctx: not inner(ctx)
        case ast.Compare():
            value = _leaf(format_expr(rule.expr), _compute(rule.expr))
            test = _test(rule.test)
            return lambda ctx: test(value(ctx))
        case ast.Consent():
            value = _leaf(format_rule(rule), _consent(rule))
            return lambda ctx: bool(value(ctx))
    assert isinstance(rule, ast.Member)
    value = _leaf(format_rule(rule), _member(rule.audience))
    return lambda ctx: bool(value(ctx))
