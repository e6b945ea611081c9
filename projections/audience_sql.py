"""A rule compiled to one SQL query over the `audiences` view's typed facts, at a time T.

Why: a new definition or a backtest asks one rule of every customer at once. Reading every
customer's facts back and folding them in Python costs as much as brute force; one grouped
query over `audience_facts` (one row per event, one per scalar field of it, one per profile,
consent, order, refund, cancellation, plan and NPS fact) lets the database do it.

The query mirrors `domain.audiences.evaluate` exactly, leaf by leaf:
- customers are the owners of `audience_people` (a merged customer's rows count under the
  survivor whose group holds it; forgotten ones under nobody) whose first event is at or
  before T; profile attributes and the birth date come from the owner's own facts only;
- windows are `(start, T]` with `start` computed in Python by the evaluator's own
  `window_start` (calendar months) and passed as a parameter; ranges are `range_span`;
- a missing value fails every test (`v IS NOT NULL AND ...`), count and sum of nothing are 0;
- age compares the birth date (ISO text) with dates computed in Python;
- `member(x)` is x's rule compiled inline (the evaluator reads x's answer at the same T).

Each leaf also yields when its value can next change with no new event (the earliest fact in
a `last N` window, to be moved by `leaves_at`; the earliest fact after T; the next birthday),
so a define can schedule the same timers the evaluator would. What the compiler does not
express raises `NotCompilable` and the caller falls back to the Python evaluator.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from typing import Any

import msgspec.inspect as mi

from domain.audiences import ast
from domain.audiences.evaluate import (
    age_at,
    leaves_at,
    next_birthday,
    range_span,
    window_start,
)
from domain.audiences.parse import format_expr, format_rule
from domain.audiences.vocabulary import FieldInfo, fields_of
from domain.events import EVENTS


class NotCompilable(Exception):
    """The rule holds something the SQL path does not express; evaluate it in Python."""


# -- which fields are stored as rows -------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Stored:
    """How one event field is kept: in `num` (numbers, booleans) or `txt` (texts, dates),
    and the Python type an aggregate of it has (to give the evaluator's values back)."""

    column: str
    info: FieldInfo
    py: type


def stored_fields(tag: str) -> dict[str, Stored]:
    """The fields of an event type that get a row: a single value that is not personal."""
    found = _STORED.get(tag)
    if found is None:
        spec = EVENTS.get(tag)
        assert spec is not None, tag
        info = mi.type_info(spec.cls)
        assert isinstance(info, mi.StructType)
        types = {f.name: _py_type(f.type) for f in info.fields}
        found = {
            name: Stored("num" if fi.kind in ("number", "bool") else "txt", fi, types[name])
            for name, fi in fields_of(tag).items()
            if fi.kind != "other" and name not in spec.personal
        }
        _STORED[tag] = found
    return found


_STORED: dict[str, dict[str, Stored]] = {}


def _py_type(t: mi.Type) -> type:
    while isinstance(t, mi.Metadata):
        t = t.type
    if isinstance(t, mi.UnionType):
        rest = [u for u in t.types if not isinstance(u, mi.NoneType)]
        return _py_type(rest[0]) if len(rest) == 1 else object
    match t:
        case mi.IntType():
            return int
        case mi.FloatType():
            return float
        case mi.DecimalType() | mi.StructType():  # Money: its Decimal amount
            return Decimal
        case mi.BoolType():
            return bool
        case mi.DateType() | mi.DateTimeType():
            return date
    return str


# -- compiling -----------------------------------------------------------------------------


@dataclass
class _Leaf:
    """One subquery joined on the customer (`who`): value `v`, positions `pos` (text, comma
    separated), `first` (the earliest fact inside a `last N` window) and `future` (the
    earliest fact after T)."""

    key: str
    sql: str
    params: list[object]
    shown: bool  # its value and positions belong to this rule (not to a member() inside)
    convert: Callable[[Any], Any]
    default: Any = None  # the evaluator's value when the customer has no such fact
    window: ast.Last | None = None  # `first` is moved by leaves_at
    age: bool = False  # `v` is a birth date: its next birthday is an edge


@dataclass
class Query:
    """A compiled rule at T: `sql` (a template) returns one row per customer that exists at
    T: who, member (1/0), then per leaf v, pos, first, future; `count_sql` the members."""

    sql: str
    params: list[object]
    count_sql: str
    count_params: list[object]
    leaves: list[_Leaf] = field(default_factory=list)
    flags: list[str] = field(default_factory=list)  # the member(x) values, after the leaves
    order: list[str] = field(default_factory=list)  # the keys of the values, in order


@dataclass(frozen=True, slots=True)
class Answer:
    member: bool
    values: dict[str, Any]
    positions: list[int]
    next_change: datetime | None


class _Sql:
    """SQL text and its parameters, written in order."""

    def __init__(self) -> None:
        self.parts: list[str] = []
        self.params: list[object] = []

    def add(self, text: str, *params: object) -> _Sql:
        assert text.count("?") == len(params), text
        self.parts.append(text)
        self.params.extend(params)
        return self

    def extend(self, other: _Sql) -> _Sql:
        self.parts.extend(other.parts)
        self.params.extend(other.params)
        return self

    @property
    def text(self) -> str:
        return "".join(self.parts)


class _Compiler:
    def __init__(self, defs: Mapping[str, ast.Rule], at: datetime, dialect: str) -> None:
        self.defs, self.at, self.dialect = defs, at, dialect
        self.leaves: dict[str, _Leaf] = {}
        self.shown = True
        self.inlining: tuple[str, ...] = ()
        self.flags: dict[str, _Sql] = {}  # member(x) of this rule: x's answer, a column
        self.order: list[str] = []  # the keys of the values, in the evaluator's order

    # boolean expressions over the leaves' columns -------------------------------------------

    def rule(self, r: ast.Rule, out: _Sql) -> None:
        match r:
            case ast.And() | ast.Or():
                joiner = " AND " if isinstance(r, ast.And) else " OR "
                out.add("(")
                for i, x in enumerate(r.items):
                    if i:
                        out.add(joiner)
                    self.rule(x, out)
                out.add(")")
            case ast.Not():
                out.add("(NOT ")
                self.rule(r.item, out)
                out.add(")")
            case ast.Compare():
                self.compare(r, out)
            case ast.Consent():
                a = self.leaf(format_rule(r), lambda: self.consent(r), _bool, False)
                out.add(f"({a}.v IS NOT NULL AND {a}.v > 0)")
            case ast.Member():
                self.member(r, out)

    def member(self, r: ast.Member, out: _Sql) -> None:
        inner = self.defs.get(r.audience)
        if inner is None or r.audience in self.inlining:
            out.add("(1 = 0)")
            return
        shown, self.shown = self.shown, False
        self.inlining = (*self.inlining, r.audience)
        try:
            answer = _Sql()
            self.rule(inner, answer)
            out.extend(answer)
            if shown and format_rule(r) not in self.flags:
                self.flags[format_rule(r)] = answer
                self.order.append(format_rule(r))
        finally:
            self.shown = shown
            self.inlining = self.inlining[:-1]

    def compare(self, r: ast.Compare, out: _Sql) -> None:
        e = r.expr
        key = format_expr(e)
        if isinstance(e, ast.Age):
            a = self.leaf(key, lambda: self.attr("birth_date"), _date, None, age=True)
            self.age_test(f"{a}.v", r.test, out)
            return
        window: ast.Last | None = None
        if isinstance(e, ast.Agg):
            column, default, conv = self.agg_kind(e)
            build: Callable[[], _Sql] = lambda: self.agg(e)  # noqa: E731
            window = e.window if isinstance(e.window, ast.Last) else None
        elif isinstance(e, ast.Attr):
            column, default, conv = "txt", None, _same
            build = lambda: self.attr(e.name)  # noqa: E731
        elif isinstance(e, ast.Orders | ast.Spend):
            spend = isinstance(e, ast.Spend)
            column, conv = "num", _decimal if spend else _int
            default = Decimal(0) if spend else 0
            build = lambda: self.orders(e.window, spend=spend)  # noqa: E731
            window = e.window if isinstance(e.window, ast.Last) else None
        elif isinstance(e, ast.Nps):
            column, default, conv = "num", None, _int
            build = self.nps
        else:
            raise NotCompilable(f"{key} is evaluated in Python")
        a = self.leaf(key, build, conv, default, window=window)
        value = f"{a}.v" if default is None else f"COALESCE({a}.v, 0)"
        _test(value, column, r.test, out)

    def agg_kind(self, e: ast.Agg) -> tuple[str, Any, Callable[[Any], Any]]:
        """The column the aggregate's value is compared in, its value with no fact, and the
        conversion to the evaluator's type."""
        if e.field is None or e.fn == "count":
            return "num", 0, _int
        s = self.stored(e.event, e.field)
        if e.fn == "sum":
            return "num", 0, _as(s.py)
        if e.fn == "avg":
            return "num", None, _decimal if s.py is Decimal else _float
        if s.info.kind == "bool":
            return "num", None, _bool
        if s.info.kind == "date":
            return "txt", None, _date
        if s.info.kind == "text":
            return "txt", None, _same
        return "num", None, _as(s.py)

    @staticmethod
    def stored(tag: str, name: str) -> Stored:
        s = stored_fields(tag).get(name)
        if s is None:
            raise NotCompilable(f"{tag}.{name} is not kept as a row")
        return s

    def leaf(
        self,
        key: str,
        build: Callable[[], _Sql],
        convert: Callable[[Any], Any],
        default: Any,
        *,
        window: ast.Last | None = None,
        age: bool = False,
    ) -> str:
        found = self.leaves.get(key)
        if self.shown and key not in self.order:
            self.order.append(key)
        if found is None:
            q = build()
            found = _Leaf(key, q.text, q.params, self.shown, convert, default, window, age)
            self.leaves[key] = found
        elif self.shown:
            found.shown = True
        return f"l{list(self.leaves).index(key)}"

    # leaves ---------------------------------------------------------------------------------

    def bounds(self, col: str, window: ast.Window | None, out: _Sql) -> None:
        """Rows with lo < at <= hi: inside the window at T, or able to enter it later."""
        lo: datetime | None = None
        hi: datetime | None = None
        if isinstance(window, ast.Last):
            lo = window_start(window, self.at)
        elif isinstance(window, ast.Range):
            lo, hi = range_span(window, self.at.tzinfo)
        if lo is not None:
            out.add(f" AND {col} > ?", lo)
        if hi is not None:
            out.add(f" AND {col} <= ?", hi)

    def edges(self, out: _Sql) -> None:
        """Positions inside (at <= T), the earliest inside and the earliest after T of z."""
        pos = _concat(f"CASE WHEN z.at <= ? THEN {_text('z.position')} END", self.dialect)
        out.add(f", {pos} AS pos", self.at)
        out.add(", min(CASE WHEN z.at <= ? THEN z.at END) AS first", self.at)
        out.add(", min(CASE WHEN z.at > ? THEN z.at END) AS future", self.at)

    def agg(self, e: ast.Agg) -> _Sql:
        """Over the event rows (field ''), joined with the value's row (if any) and one row
        per `where` test: every inside event counts for the positions, values only where
        present (a missing value is no row)."""
        s = None if e.field is None else self.stored(e.event, e.field)
        last = e.fn == "last" and s is not None
        inner = _Sql().add("SELECT p.owner AS who, x.at, x.position")
        if s is not None:
            inner.add(f", y.{s.column} AS val")
        if last:
            assert s is not None
            ok = f"CASE WHEN x.at <= ? AND y.{s.column} IS NOT NULL THEN 1 ELSE 0 END"
            inner.add(f", {ok} AS ok", self.at)
            inner.add(
                f", ROW_NUMBER() OVER (PARTITION BY p.owner, {ok}"
                " ORDER BY x.at DESC, x.position DESC) AS rn",
                self.at,
            )
        inner.add(
            " FROM {audience_facts} x JOIN {audience_people} p ON p.customer_id = x.customer_id"
        )
        if s is not None:
            inner.add(
                " LEFT JOIN {audience_facts} y ON y.customer_id = x.customer_id"
                " AND y.position = x.position AND y.type = x.type AND y.at = x.at"
                " AND y.field = ?",
                e.field,
            )
            self.bounds("y.at", e.window, inner)
        for i, w in enumerate(e.where):
            ws = self.stored(e.event, w.field)
            inner.add(
                f" JOIN {{audience_facts}} w{i} ON w{i}.customer_id = x.customer_id"
                f" AND w{i}.position = x.position AND w{i}.type = x.type AND w{i}.at = x.at"
                f" AND w{i}.field = ?",
                w.field,
            )
            self.bounds(f"w{i}.at", e.window, inner)
            inner.add(" AND ")
            _test(f"w{i}.{ws.column}", ws.column, w.test, inner)
        inner.add(" WHERE x.type = ? AND x.field = ''", e.event)
        self.bounds("x.at", e.window, inner)
        inner.add(" AND p.owner IS NOT NULL")
        out = _Sql().add("SELECT z.who")
        if s is None:
            out.add(", count(CASE WHEN z.at <= ? THEN 1 END) AS v", self.at)
        elif last:
            out.add(", max(CASE WHEN z.ok = 1 AND z.rn = 1 THEN z.val END) AS v")
        else:
            value = f"{e.fn}(CASE WHEN z.at <= ? THEN z.val END)"
            if s.py is Decimal and e.fn in ("sum", "avg"):
                value = _round(value, self.dialect)
            out.add(f", {value} AS v", self.at)
        self.edges(out)
        out.add(" FROM (").extend(inner).add(") z GROUP BY z.who")
        return out

    def latest(
        self,
        kind: str,
        where: _Sql,
        *,
        own: bool = False,
        by: str = "",
        column: str = "num",
        positions: bool = True,
        value: str = "",
    ) -> _Sql:
        """The latest fact of `kind` at or before T (per `by` too), by (at, position); its
        positions; the earliest such fact after T as `future`."""
        who = "x.customer_id" if own else "p.owner"
        past = "CASE WHEN x.at <= ? THEN 1 ELSE 0 END"
        pos = _concat(f"CASE WHEN rn = 1 AND past = 1 THEN {_text('position')} END", self.dialect)
        out = _Sql().add(
            f"SELECT who, {value or f'max(CASE WHEN rn = 1 AND past = 1 THEN {column} END)'}"
            f" AS v, {pos if positions else 'NULL'} AS pos, NULL AS first,"
            " min(CASE WHEN past = 0 THEN at END) AS future FROM ("
            f"SELECT {who} AS who, x.num, x.txt, x.at, x.position, {past} AS past,"
            f" ROW_NUMBER() OVER (PARTITION BY {who}{', ' + by if by else ''}, {past}"
            " ORDER BY x.at DESC, x.position DESC) AS rn FROM {audience_facts} x",
            self.at,
            self.at,
        )
        if not own:
            out.add(" JOIN {audience_people} p ON p.customer_id = x.customer_id")
        out.add(" WHERE x.type = ?", kind).extend(where)
        if not own:
            out.add(" AND p.owner IS NOT NULL")
        return out.add(") z GROUP BY who")

    def attr(self, name: str) -> _Sql:
        """A profile attribute of the customer itself (not of those merged into it)."""
        where = _Sql().add(" AND x.field = ?", name)
        return self.latest("~profile", where, own=True, column="txt", positions=False)

    def nps(self) -> _Sql:
        return self.latest("~nps", _Sql().add(" AND x.field = 'score'"))

    def consent(self, r: ast.Consent) -> _Sql:
        """Granted if the latest fact of any matching purpose grants."""
        where = _Sql().add(" AND x.field = ?", r.channel)
        if r.purpose is not None:
            where.add(" AND x.txt = ?", r.purpose)
        return self.latest("~consent", where, by="x.txt")

    def orders(self, window: ast.Window | None, *, spend: bool) -> _Sql:
        """Orders placed in the window; for spend, each one's net worth at T (0 once
        cancelled, else less the refunds up to T). A refund or cancellation after T is an
        edge of spend too."""
        out = _Sql().add("SELECT z.who")
        if spend:
            net = (
                "CASE WHEN z.num = 0 OR EXISTS (SELECT 1 FROM {audience_facts} c"
                " WHERE c.customer_id = z.customer_id AND c.type = '~cancel'"
                " AND c.field = z.field AND c.at <= ?) THEN 0 ELSE z.num - COALESCE(("
                "SELECT sum(r.num) FROM {audience_facts} r WHERE r.customer_id = z.customer_id"
                " AND r.type = '~refund' AND r.field = z.field AND r.at <= ?), 0) END"
            )
            value = _round(f"sum(CASE WHEN z.at <= ? THEN {net} END)", self.dialect)
            out.add(f", {value} AS v", self.at, self.at, self.at)
        else:
            out.add(", count(CASE WHEN z.at <= ? THEN 1 END) AS v", self.at)
        self.edges(out)
        out.add(
            " FROM (SELECT p.owner AS who, x.customer_id, x.field, x.num, x.at, x.position"
            " FROM {audience_facts} x JOIN {audience_people} p ON p.customer_id = x.customer_id"
            " WHERE x.type = '~order'"
        )
        self.bounds("x.at", window, out)
        out.add(" AND p.owner IS NOT NULL) z GROUP BY z.who")
        if not spend:
            return out
        return (
            _Sql()
            .add(
                "SELECT o.who, o.v, o.pos, o.first, CASE WHEN o.future IS NULL THEN c.future"
                " WHEN c.future IS NULL OR o.future < c.future THEN o.future ELSE c.future END"
                " AS future FROM ("
            )
            .extend(out)
            .add(
                ") o LEFT JOIN (SELECT p.owner AS who, min(x.at) AS future"
                " FROM {audience_facts} x JOIN {audience_people} p"
                " ON p.customer_id = x.customer_id WHERE x.type IN ('~refund', '~cancel')"
                " AND x.at > ? AND p.owner IS NOT NULL GROUP BY p.owner) c ON c.who = o.who",
                self.at,
            )
        )

    # age ------------------------------------------------------------------------------------

    def age_test(self, v: str, test: ast.Test, out: _Sql) -> None:
        """Whole years at T from the birth date `v` (ISO text): age >= k iff the birth date
        is at most (T's year - k, T's month, T's day), compared as text (as `age_at`)."""
        today = self.at.date()

        def ge(k: int) -> None:
            y = today.year - k
            if y < 1:
                out.add("(1 = 0)")
            elif y > 9999:
                out.add(f"({v} IS NOT NULL)")
            else:
                out.add(f"({v} IS NOT NULL AND {v} <= ?)", f"{y:04d}-{today:%m-%d}")

        def between(lo: int, hi: int) -> None:  # lo <= age <= hi
            out.add("(")
            ge(lo)
            out.add(" AND NOT ")
            ge(hi + 1)
            out.add(")")

        def eq(x: Decimal) -> None:
            if x == x.to_integral_value():
                between(int(x), int(x))
            else:
                out.add("(1 = 0)")

        def num(lit: ast.Lit) -> Decimal:
            if not isinstance(lit, ast.Num):
                raise NotCompilable("age compared with something not a number")
            return lit.value

        if isinstance(test, ast.Between):
            between(math.ceil(num(test.low)), math.floor(num(test.high)))
            return
        if isinstance(test, ast.In):
            out.add("(1 = 0")
            for lit in test.values:
                out.add(" OR ")
                eq(num(lit))
            out.add(")")
            return
        x = num(test.value)
        negate = test.op in ("<", "<=", "!=")
        if negate:
            out.add(f"({v} IS NOT NULL AND NOT ")
        match test.op:
            case ">=" | "<":
                ge(math.ceil(x))
            case ">" | "<=":
                ge(math.floor(x) + 1)
            case _:
                eq(x)
        if negate:
            out.add(")")


def _text(col: str) -> str:
    return f"CAST({col} AS TEXT)"


def _concat(expr: str, dialect: str) -> str:
    return f"string_agg({expr}, ',')" if dialect == "postgresql" else f"group_concat({expr}, ',')"


def _round(expr: str, dialect: str) -> str:
    """Decimal amounts are kept as floats: their sums are rounded so 10.10 + 19.90 is 30."""
    if dialect == "postgresql":
        return f"CAST(round(CAST({expr} AS numeric), 6) AS double precision)"
    return f"round({expr}, 6)"


def _lit(lit: ast.Lit, column: str) -> object:
    v = lit.value
    if column == "num":
        return float(v)  # type: ignore[arg-type]
    return v.isoformat() if isinstance(v, date) else str(v)


def _test(value: str, column: str, test: ast.Test, out: _Sql) -> None:
    """A test as SQL over `value`; a missing value (NULL) fails it."""
    if isinstance(test, ast.Cmp):
        op = "<>" if test.op == "!=" else test.op
        out.add(f"({value} IS NOT NULL AND {value} {op} ?)", _lit(test.value, column))
    elif isinstance(test, ast.Between):
        out.add(
            f"({value} IS NOT NULL AND {value} >= ? AND {value} <= ?)",
            _lit(test.low, column),
            _lit(test.high, column),
        )
    else:
        marks = ", ".join("?" * len(test.values))
        out.add(
            f"({value} IS NOT NULL AND {value} IN ({marks}))",
            *(_lit(x, column) for x in test.values),
        )


# -- value conversions: the evaluator's types ------------------------------------------------


def _same(v: Any) -> Any:
    return v


def _int(v: Any) -> Any:
    return None if v is None else int(v)


def _float(v: Any) -> Any:
    return None if v is None else float(v)


def _bool(v: Any) -> Any:
    return None if v is None else bool(v)


def _date(v: Any) -> Any:
    return None if v is None else date.fromisoformat(str(v)[:10])


def _decimal(v: Any) -> Any:
    """A Decimal amount from its float: 6 places at most, no trailing zeros (30.00 -> 30)."""
    if v is None:
        return None
    text = f"{float(v):.6f}".rstrip("0").rstrip(".")
    return Decimal("0" if text in ("", "-0") else text)


def _as(py: type) -> Callable[[Any], Any]:
    return {int: _int, Decimal: _decimal, float: _float}.get(py, _same)


# -- the query ------------------------------------------------------------------------------


def compile_rule(rule: ast.Rule, defs: Mapping[str, ast.Rule], at: datetime, dialect: str) -> Query:
    """The rule at T as SQL templates: `sql` returns, per customer that exists at T, whether
    it is a member and each leaf's value, positions and edges; `count_sql` the member count.
    `defs` are the live audiences `member(...)` may name (their rules compiled inline)."""
    c = _Compiler(defs, at, dialect)
    where = _Sql()
    c.rule(rule, where)
    base = _Sql().add(
        "SELECT owner AS who FROM {audience_people} WHERE owner IS NOT NULL"
        " GROUP BY owner HAVING min(born) <= ?",
        at,
    )
    joins, cols = _Sql(), ""
    for i, leaf in enumerate(c.leaves.values()):
        joins.add(" LEFT JOIN (").extend(_Sql().add(leaf.sql, *leaf.params))
        joins.add(f") l{i} ON l{i}.who = b.who")
        cols += f", l{i}.v, l{i}.pos, l{i}.first, l{i}.future"
    rows = _Sql().add("SELECT b.who, CASE WHEN ").extend(where).add(f" THEN 1 ELSE 0 END{cols}")
    for flag in c.flags.values():
        rows.add(", CASE WHEN ").extend(flag).add(" THEN 1 ELSE 0 END")
    rows.add(" FROM (").extend(base).add(") b").extend(joins)
    count = _Sql().add("SELECT count(*) FROM (").extend(base).add(") b").extend(joins)
    count.add(" WHERE ").extend(where)
    return Query(
        rows.text,
        rows.params,
        count.text,
        count.params,
        list(c.leaves.values()),
        [*c.flags],
        c.order,
    )


def answers(
    q: Query, rows: list[tuple[Any, ...]], at: datetime, ts: Callable[[object], datetime | None]
) -> dict[Any, Answer]:
    """Each row of `q.sql` as the evaluator's answer: member, values, positions, next change."""
    out = {}
    for row in rows:
        values: dict[str, Any] = {}
        positions: set[int] = set()
        edge: datetime | None = None
        member = bool(row[1])
        for i, leaf in enumerate(q.leaves):
            v, pos, first, future = row[2 + 4 * i : 6 + 4 * i]
            value = leaf.convert(v) if member or leaf.age else None
            for t in (ts(future), _moved(leaf, ts(first)), _birthday(leaf, value, at)):
                if t is not None and (edge is None or t < edge):
                    edge = t
            if not leaf.shown or not member:
                continue  # a non-member row is written nowhere: its edge is what counts
            if leaf.age:
                value = None if value is None else age_at(value, at)
            values[leaf.key] = leaf.default if value is None else value
            if pos:
                positions.update(int(p) for p in str(pos).split(","))
        if member:
            for j, key in enumerate(q.flags):
                values[key] = bool(row[2 + 4 * len(q.leaves) + j])
            values = {k: values[k] for k in q.order if k in values}
        out[row[0]] = Answer(member, values, sorted(positions), edge)
    return out


def _moved(leaf: _Leaf, first: datetime | None) -> datetime | None:
    """`leaves_at(first, window)`; for months, a day 2 to 28 is the same day n months on
    (what `leaves_at` finds, without trying its other candidates: a define asks it of
    every customer with a fact in the window)."""
    w = leaf.window
    if first is None or w is None:
        return None
    if w.unit == "months" and 2 <= first.day <= 28:
        y, m = divmod(first.month - 1 + w.n, 12)
        return first.replace(year=first.year + y, month=m + 1)
    return leaves_at(first, w)


def _birthday(leaf: _Leaf, value: Any, at: datetime) -> datetime | None:
    return next_birthday(value, at) if leaf.age and isinstance(value, date) else None
