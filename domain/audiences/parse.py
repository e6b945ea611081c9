"""The text form of a rule: `parse_rule(text) -> Rule` (lark, LALR) and `format_rule(rule) -> str`.

`parse_rule(format_rule(r)) == r` for every valid rule. A bad rule raises a RuleError placed at
its line and column: RuleSyntaxError says what was expected there in words a marketer reads.
The grammar is documented with examples in docs/audiences.md.
"""

from __future__ import annotations

import json
import re
from datetime import date
from decimal import Decimal
from typing import Any

from lark import Lark, Token, Transformer, v_args
from lark.exceptions import UnexpectedCharacters, UnexpectedInput, UnexpectedToken, VisitError
from lark.tree import Meta

from domain.audiences import ast
from domain.audiences.errors import RuleError, RuleSyntaxError, RuleTypeError, UnknownName
from domain.audiences.vocabulary import (
    ATTRIBUTES,
    check_test,
    check_window,
    event_name,
    expr_info,
    field_info,
    resolve_event,
)
from domain.events import EVENTS

GRAMMAR = r"""
start: or_
or_: and_ (OR and_)*
and_: not_ (AND not_)*
not_: NOT not_ -> negate
    | LPAR or_ RPAR -> group
    | expr test -> compare
    | CONSENT LPAR word (COMMA word)? RPAR -> consent
    | MEMBER LPAR word RPAR -> member

test: OP literal -> cmp
    | BETWEEN literal AND literal -> between
    | IN LSQB literal (COMMA literal)* RSQB -> in_

expr: agg_fn LPAR dotted (WHERE where (AND where)*)? COMMA window RPAR -> agg
    | NAME -> name
    | NAME LPAR window RPAR -> windowed
agg_fn: COUNT | SUM | AVG | MIN | MAX | LAST

dotted: NAME (DOT NAME)*
where: NAME test
window: LAST INT unit -> last
      | FROM DATE TO DATE -> range
unit: DAYS | DAY | WEEKS | WEEK | MONTHS | MONTH
word: NAME | STRING
literal: NUMBER | STRING | TRUE | FALSE | DATE

OR: "or"
AND: "and"
NOT: "not"
CONSENT: "consent"
MEMBER: "member"
BETWEEN: "between"
IN: "in"
WHERE: "where"
LAST: "last"
FROM: "from"
TO: "to"
TRUE: "true"
FALSE: "false"
COUNT: "count"
SUM: "sum"
AVG: "avg"
MIN: "min"
MAX: "max"
DAYS: "days"
DAY: "day"
WEEKS: "weeks"
WEEK: "week"
MONTHS: "months"
MONTH: "month"
OP: /[<>]=?|!=|=/
LPAR: "("
RPAR: ")"
LSQB: "["
RSQB: "]"
COMMA: ","
DOT: "."
DATE.3: /\d{4}-\d{2}-\d{2}/
NUMBER.2: /-?\d+(\.\d+)?([eE][+-]?\d+)?/
INT: /\d+/
NAME: /[a-z_][a-z0-9_]*/
STRING: /"(?:[^"\\]|\\.)*"/
%ignore /\s+/
"""

_PARSER = Lark(GRAMMAR, parser="lalr", propagate_positions=True, maybe_placeholders=False)

KEYWORDS = frozenset(
    [
        "or",
        "and",
        "not",
        "consent",
        "member",
        "between",
        "in",
        "where",
        "last",
        "from",
        "to",
        "true",
        "false",
        "count",
        "sum",
        "avg",
        "min",
        "max",
        "days",
        "day",
        "weeks",
        "week",
        "months",
        "month",
    ]
)
_BARE = re.compile(r"[a-z_][a-z0-9_]*\Z")

_WINDOW = 'a window like "last 4 months" or "from 2026-01-01 to 2026-03-31"'
_CONDITION = (
    "a condition like sum(call.duration_min, last 4 months) > 300, age > 30 or consent(phone)"
)
_VALUE = "a value (a number, a quoted text, true, false or a date like 2026-01-01)"
_COMPARISON = "a comparison (>, >=, <, <=, =, !=, between or in)"
_EXPECTED: dict[str, str] = {
    "OR": '"or"',
    "AND": '"and"',
    "NAME": "a name",
    "LPAR": '"("',
    "RPAR": '")"',
    "LSQB": '"["',
    "RSQB": '"]"',
    "COMMA": '","',
    "DOT": '"."',
    "WHERE": '"where"',
    "LAST": _WINDOW,
    "FROM": _WINDOW,
    "TO": '"to"',
    "INT": "a whole number",
    "DATE": "a date like 2026-01-01",
    "$END": "the end of the rule",
    **dict.fromkeys(
        ("DAYS", "DAY", "WEEKS", "WEEK", "MONTHS", "MONTH"), '"days", "weeks" or "months"'
    ),
    **dict.fromkeys(("NUMBER", "STRING", "TRUE", "FALSE"), _VALUE),
    **dict.fromkeys(("OP", "BETWEEN", "IN"), _COMPARISON),
}
_STARTS = frozenset({"NOT", "CONSENT", "MEMBER", "COUNT", "SUM", "AVG", "MIN", "MAX"})


def _phrases(expected: set[str]) -> str:
    """What the parser would have accepted, in words; a condition's starts read as one."""
    if expected & {"CONSENT", "MEMBER"}:
        expected = (expected - _STARTS - {"NAME", "LPAR", "LAST"}) | {"$CONDITION"}
    if "NUMBER" in expected:
        expected = expected - {"DATE"}
    phrases: list[str] = []
    for name in sorted(expected, key=lambda n: (n == "$END", n)):
        phrase = _CONDITION if name == "$CONDITION" else _EXPECTED.get(name, name.lower())
        if phrase not in phrases:
            phrases.append(phrase)
    return " or ".join(phrases) if phrases else "something else"


def parse_rule(text: str) -> ast.Rule:
    """The rule a text says; RuleError (with line and column) when it says none."""
    try:
        tree = _PARSER.parse(text)
    except UnexpectedInput as e:
        raise _syntax_error(text, e) from None
    try:
        return _ToAst(text).transform(tree)
    except VisitError as e:
        if isinstance(e.orig_exc, RuleError):
            raise e.orig_exc from None
        raise


def _syntax_error(text: str, e: UnexpectedInput) -> RuleSyntaxError:
    pos = e.pos_in_stream if e.pos_in_stream is not None else len(text)
    if isinstance(e, UnexpectedToken):
        expected = e.accepts or e.expected
        found = "the end of the rule" if e.token.type == "$END" else f'"{e.token}"'
        line, column = (e.line, e.column) if e.token.type != "$END" else _end(text)
        if e.token.type == "$END":
            pos = len(text)
    elif isinstance(e, UnexpectedCharacters):
        expected = _accepts_before(text, pos) or e.allowed or set()
        found = f'"{text[pos]}"'
        line, column = e.line, e.column
    else:
        expected, found = set(), "the end of the rule"
        line, column = _end(text)
    wanted = _phrases(set(expected))
    return RuleSyntaxError(line, column, pos, found, wanted)


def _accepts_before(text: str, pos: int) -> set[str]:
    """The terminals the parser accepts after the text before `pos` (exact, unlike the lexer's)."""
    try:
        ip = _PARSER.parse_interactive(text[:pos])
        ip.exhaust_lexer()
        return set(ip.accepts())
    except UnexpectedInput:
        return set()


def _end(text: str) -> tuple[int, int]:
    lines = text.split("\n")
    return len(lines), len(lines[-1]) + 1


class _ToAst(Transformer[Token, ast.Rule]):
    """Tree -> AST, checking names and types; an error is placed at the offending text.

    Expressions, tests and windows are returned with their span (a Token or a Meta: both have
    line, column, start_pos, end_pos), so a later check can point at them.
    """

    def __init__(self, text: str) -> None:
        super().__init__()
        self.text = text

    def _fail(self, err: RuleError, where: Any) -> RuleError:
        start, end = where.start_pos, where.end_pos
        return err.at(where.line, where.column, start, self.text[start:end])

    def __default__(self, data: Any, children: list[Any], meta: Any) -> Any:
        raise AssertionError(f"no rule for {data}")

    def start(self, c: list[Any]) -> ast.Rule:
        return c[0]

    def or_(self, c: list[Any]) -> ast.Rule:
        items = tuple(x for x in c if not isinstance(x, Token))
        return items[0] if len(items) == 1 else ast.Or(items=items)

    def and_(self, c: list[Any]) -> ast.Rule:
        items = tuple(x for x in c if not isinstance(x, Token))
        return items[0] if len(items) == 1 else ast.And(items=items)

    def negate(self, c: list[Any]) -> ast.Rule:
        return ast.Not(item=c[1])

    def group(self, c: list[Any]) -> ast.Rule:
        return c[1]

    def consent(self, c: list[Any]) -> ast.Rule:
        words = [x for x in c if not isinstance(x, Token)]
        return ast.Consent(channel=words[0], purpose=words[1] if len(words) > 1 else None)

    def member(self, c: list[Any]) -> ast.Rule:
        return ast.Member(audience=c[2])

    def word(self, c: list[Token]) -> str:
        tok = c[0]
        return self._string(tok) if tok.type == "STRING" else str(tok)

    def _string(self, tok: Token) -> str:
        try:
            return str(json.loads(tok, strict=False))
        except ValueError:
            raise self._fail(RuleTypeError(f"{tok} is not a well-quoted text"), tok) from None

    def compare(self, c: list[Any]) -> ast.Rule:
        (expr, expr_at), (test, test_at) = c
        try:
            info = expr_info(expr)
        except RuleError as e:
            raise self._fail(e, expr_at) from None
        try:
            check_test(_expr_label(expr), info, test)
        except RuleError as e:
            raise self._fail(e, test_at) from None
        return ast.Compare(expr=expr, test=test)

    @v_args(meta=True)
    def cmp(self, meta: Meta, c: list[Any]) -> tuple[ast.Test, Meta]:
        return ast.Cmp(op=str(c[0]), value=c[1]), meta  # type: ignore[arg-type]

    @v_args(meta=True)
    def between(self, meta: Meta, c: list[Any]) -> tuple[ast.Test, Meta]:
        return ast.Between(low=c[1], high=c[3]), meta

    @v_args(meta=True)
    def in_(self, meta: Meta, c: list[Any]) -> tuple[ast.Test, Meta]:
        return ast.In(values=tuple(x for x in c if not isinstance(x, Token))), meta

    def literal(self, c: list[Token]) -> ast.Lit:
        tok = c[0]
        match tok.type:
            case "NUMBER":
                return ast.Num(value=Decimal(str(tok)))
            case "STRING":
                return ast.Text(value=self._string(tok))
            case "TRUE" | "FALSE":
                return ast.Bool(value=tok.type == "TRUE")
        return ast.Day(value=self._date(tok))

    def _date(self, tok: Token) -> date:
        try:
            return date.fromisoformat(str(tok))
        except ValueError:
            raise self._fail(RuleTypeError(f"{tok} is not a date"), tok) from None

    def agg_fn(self, c: list[Token]) -> Token:
        return c[0]

    def unit(self, c: list[Token]) -> Token:
        return c[0]

    @v_args(meta=True)
    def agg(self, meta: Meta, c: list[Any]) -> tuple[ast.Expr, Meta]:
        fn = str(c[0])
        event, field = self._source(c[2])
        wheres: list[ast.Where] = []
        window: ast.Window | None = None
        for x in c[3:]:
            if isinstance(x, tuple) and isinstance(x[0], ast.Where):
                where, where_at = x
                try:
                    info = field_info(event, where.field)
                    check_test(f"{event_name(event)}.{where.field}", info, where.test)
                except RuleError as e:
                    raise self._fail(e, where_at) from None
                wheres.append(where)
            elif isinstance(x, tuple):
                window = x[0]
        assert window is not None
        expr = ast.Agg(fn=fn, event=event, field=field, where=tuple(wheres), window=window)  # type: ignore[arg-type]
        return expr, meta

    def _source(self, parts: list[Token]) -> tuple[str, str | None]:
        names = [str(p) for p in parts]
        if len(names) >= 2 and f"{names[0]}.{names[1]}" in EVENTS:
            tag, rest = f"{names[0]}.{names[1]}", parts[2:]
        else:
            try:
                tag = resolve_event(names[0])
            except RuleError as e:
                raise self._fail(e, parts[0]) from None
            rest = parts[1:]
        if len(rest) > 1:
            raise self._fail(RuleTypeError("a field is one name, like call.duration_min"), rest[1])
        if rest:
            try:
                field_info(tag, str(rest[0]))
            except RuleError as e:
                raise self._fail(e, rest[0]) from None
        return tag, str(rest[0]) if rest else None

    def dotted(self, c: list[Token]) -> list[Token]:
        return [t for t in c if t.type == "NAME"]

    @v_args(meta=True)
    def where(self, meta: Meta, c: list[Any]) -> tuple[ast.Where, Meta]:
        return ast.Where(field=str(c[0]), test=c[1][0]), meta

    def name(self, c: list[Token]) -> tuple[ast.Expr, Token]:
        tok = c[0]
        word = str(tok)
        if word in ATTRIBUTES:
            return ast.Attr(name=word), tok  # type: ignore[arg-type]
        if word in _SIMPLE:
            return _SIMPLE[word], tok
        known = ", ".join([*ATTRIBUTES, *_SIMPLE])
        raise self._fail(
            UnknownName(f"{word!r} is no attribute; use one of {known} or count/sum/avg/...()"),
            tok,
        )

    @v_args(meta=True)
    def windowed(self, meta: Meta, c: list[Any]) -> tuple[ast.Expr, Meta]:
        tok, window = c[0], c[2][0]
        if str(tok) == "spend":
            return ast.Spend(window=window), meta
        if str(tok) == "orders":
            return ast.Orders(window=window), meta
        raise self._fail(UnknownName(f"{tok}(...) takes no window; spend and orders do"), tok)

    @v_args(meta=True)
    def last(self, meta: Meta, c: list[Token]) -> tuple[ast.Window, Meta]:
        unit = str(c[2])
        plural = unit if unit.endswith("s") else unit + "s"
        return self._window(ast.Last(n=int(c[1]), unit=plural), meta)  # type: ignore[arg-type]

    @v_args(meta=True)
    def range(self, meta: Meta, c: list[Token]) -> tuple[ast.Window, Meta]:
        return self._window(ast.Range(start=self._date(c[1]), end=self._date(c[3])), meta)

    def _window(self, window: ast.Window, meta: Meta) -> tuple[ast.Window, Meta]:
        try:
            check_window(window)
        except RuleError as e:
            raise self._fail(e, meta) from None
        return window, meta


_SIMPLE: dict[str, ast.Expr] = {
    "age": ast.Age(),
    "spend": ast.Spend(),
    "orders": ast.Orders(),
    "plan": ast.Plan(),
    "nps": ast.Nps(),
}


def _expr_label(expr: ast.Expr) -> str:
    if isinstance(expr, ast.Agg):
        source = event_name(expr.event) + (f".{expr.field}" if expr.field else "")
        return f"{expr.fn}({source})"
    return _format_expr(expr)


# formatting


def format_rule(rule: ast.Rule) -> str:
    """The text form of a rule, with short event names and as few parentheses as possible."""
    return _format(rule)


def _format(rule: ast.Rule) -> str:
    match rule:
        case ast.Or():
            return " or ".join(_wrap(i, isinstance(i, ast.Or)) for i in rule.items)
        case ast.And():
            return " and ".join(_wrap(i, isinstance(i, ast.And | ast.Or)) for i in rule.items)
        case ast.Not():
            return "not " + _wrap(rule.item, isinstance(rule.item, ast.And | ast.Or))
        case ast.Compare():
            return f"{_format_expr(rule.expr)} {_format_test(rule.test)}"
        case ast.Consent():
            purpose = f", {_word(rule.purpose)}" if rule.purpose is not None else ""
            return f"consent({_word(rule.channel)}{purpose})"
        case ast.Member():
            return f"member({_word(rule.audience)})"
    raise TypeError(f"not a rule: {rule!r}")


def _wrap(rule: ast.Rule, paren: bool) -> str:
    text = _format(rule)
    return f"({text})" if paren else text


def _word(w: str) -> str:
    return w if _BARE.match(w) and w not in KEYWORDS else _quote(w)


def _quote(s: str) -> str:
    return json.dumps(s, ensure_ascii=False)


def format_literal(lit: ast.Lit) -> str:
    match lit:
        case ast.Num():
            return str(lit.value)
        case ast.Text():
            return _quote(lit.value)
        case ast.Bool():
            return "true" if lit.value else "false"
    return lit.value.isoformat()


def _format_test(test: ast.Test) -> str:
    match test:
        case ast.Cmp():
            return f"{test.op} {format_literal(test.value)}"
        case ast.Between():
            return f"between {format_literal(test.low)} and {format_literal(test.high)}"
    return "in [" + ", ".join(format_literal(v) for v in test.values) + "]"


def format_window(window: ast.Window) -> str:
    if isinstance(window, ast.Last):
        unit = window.unit[:-1] if window.n == 1 else window.unit
        return f"last {window.n} {unit}"
    return f"from {window.start.isoformat()} to {window.end.isoformat()}"


def _format_expr(expr: ast.Expr) -> str:
    match expr:
        case ast.Agg():
            source = event_name(expr.event) + (f".{expr.field}" if expr.field else "")
            where = ""
            if expr.where:
                where = " where " + " and ".join(
                    f"{w.field} {_format_test(w.test)}" for w in expr.where
                )
            return f"{expr.fn}({source}{where}, {format_window(expr.window)})"
        case ast.Attr():
            return expr.name
        case ast.Spend() | ast.Orders():
            name = str(expr.__struct_config__.tag)
            return name if expr.window is None else f"{name}({format_window(expr.window)})"
    return str(expr.__struct_config__.tag)


format_expr = _format_expr
