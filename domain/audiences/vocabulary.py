"""What a rule may name: event types (full tags and short aliases), their fields and the kind
of value each field holds, the profile attributes; and the checks that a rule fits them.

Every registered event type is addressable by its full tag; ALIASES is the documented table of
short names. Field kinds come from the event Struct's type info, so a new event type or field
is usable in rules as soon as it is registered.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from functools import cache
from typing import Literal, get_args

import msgspec.inspect as mi

from domain import catalogue
from domain.audiences import ast
from domain.audiences.errors import RuleTypeError, UnknownEventType, UnknownField
from domain.customers.events import CustomerKind, Gender, Stage
from domain.money import Money

ALIASES: dict[str, str] = {
    "call": "interaction.call_logged",
    "email": "interaction.email_logged",
    "meeting": "interaction.meeting_logged",
    "questionnaire": "interaction.questionnaire_answered",
    "conversation": "interaction.conversation_logged",
    "web": "interaction.web_activity",
    "order": "order.placed",
    "payment": "order.payment_received",
    "return": "order.returned",
    "cancellation": "order.cancelled",
    "ticket": "ticket.opened",
    "escalation": "ticket.escalated",
    "survey": "survey.answered",
    "deal": "deal.opened",
    "quote": "deal.quote_sent",
    "offer": "offer.presented",
    "subscription": "subscription.started",
    "breakdown": "equipment.breakdown_reported",
    "maintenance": "equipment.maintenance_recorded",
    "reading": "equipment.usage_recorded",
}
"""Short name -> event tag, for the common event types (the text form prints these)."""

ALIAS_OF: dict[str, str] = {tag: short for short, tag in ALIASES.items()}

Kind = Literal["number", "text", "bool", "date", "other"]
KIND_WORDS: dict[str, str] = {
    "number": "a number",
    "text": "a text",
    "bool": "true or false",
    "date": "a date",
    "other": "a list or record",
}
Norm = Literal["plain", "money", "uuid", "datetime"]


@dataclass(frozen=True, slots=True)
class FieldInfo:
    """The kind of value a field holds, the allowed texts of a Literal, how to read it."""

    kind: Kind
    norm: Norm = "plain"
    choices: tuple[str, ...] = ()


ATTRIBUTES: dict[str, FieldInfo] = {
    "gender": FieldInfo("text", choices=get_args(Gender)),
    "kind": FieldInfo("text", choices=get_args(CustomerKind)),
    "stage": FieldInfo("text", choices=get_args(Stage)),
    "income_band": FieldInfo("text"),
    "source": FieldInfo("text"),
}
DERIVED: dict[str, FieldInfo] = {
    "age": FieldInfo("number"),
    "spend": FieldInfo("number"),
    "orders": FieldInfo("number"),
    "plan": FieldInfo("text"),
    "nps": FieldInfo("number"),
}


def resolve_event(name: str) -> str:
    """The full tag for a tag or a short name; UnknownEventType otherwise."""
    if name in catalogue.EVENTS:
        return name
    tag = ALIASES.get(name)
    if tag is None:
        raise UnknownEventType(name, sorted(ALIASES))
    return tag


def event_name(tag: str) -> str:
    """How the text form names an event type: its short name if it has one."""
    return ALIAS_OF.get(tag, tag)


@cache
def fields_of(tag: str) -> dict[str, FieldInfo]:
    spec = catalogue.EVENTS.get(tag)
    if spec is None:
        raise UnknownEventType(tag, sorted(ALIASES))
    info = mi.type_info(spec.cls)
    assert isinstance(info, mi.StructType)
    return {f.name: _field_info(f.type) for f in info.fields}


def _field_info(t: mi.Type) -> FieldInfo:
    while isinstance(t, mi.Metadata):
        t = t.type
    if isinstance(t, mi.UnionType):
        rest = [u for u in t.types if not isinstance(u, mi.NoneType)]
        if len(rest) != 1:
            return FieldInfo("other")
        return _field_info(rest[0])
    match t:
        case mi.IntType() | mi.FloatType() | mi.DecimalType():
            return FieldInfo("number")
        case mi.StructType() if t.cls is Money:
            return FieldInfo("number", norm="money")
        case mi.StrType():
            return FieldInfo("text")
        case mi.LiteralType() if all(isinstance(v, str) for v in t.values):
            return FieldInfo("text", choices=tuple(str(v) for v in t.values))
        case mi.UUIDType():
            return FieldInfo("text", norm="uuid")
        case mi.BoolType():
            return FieldInfo("bool")
        case mi.DateType():
            return FieldInfo("date")
        case mi.DateTimeType():
            return FieldInfo("date", norm="datetime")
    return FieldInfo("other")


def field_info(tag: str, field: str) -> FieldInfo:
    fields = fields_of(tag)
    info = fields.get(field)
    if info is None:
        raise UnknownField(tag, field, sorted(fields))
    return info


def check_agg(agg: ast.Agg) -> FieldInfo:
    """Check an aggregate against its event type; returns the kind of value it yields."""
    fields_of(agg.event)
    for w in agg.where:
        check_test(f"{event_name(agg.event)}.{w.field}", field_info(agg.event, w.field), w.test)
    if agg.field is None:
        if agg.fn != "count":
            raise RuleTypeError(f"{agg.fn}() needs a field, like {agg.fn}(call.duration_min, ...)")
        return FieldInfo("number")
    info = field_info(agg.event, agg.field)
    name = f"{event_name(agg.event)}.{agg.field}"
    if info.kind == "other":
        if agg.fn == "count":
            return FieldInfo("number")
        raise RuleTypeError(f"{name} holds no single value that {agg.fn}() can use")
    if agg.fn in ("sum", "avg") and info.kind != "number":
        raise RuleTypeError(f"{agg.fn}() adds numbers; {name} is {KIND_WORDS[info.kind]}")
    if agg.fn in ("min", "max") and info.kind not in ("number", "date"):
        raise RuleTypeError(f"{agg.fn}() needs numbers or dates; {name} is {KIND_WORDS[info.kind]}")
    if agg.fn == "count":
        return FieldInfo("number")
    return info if agg.fn in ("last", "min", "max") else FieldInfo("number")


def check_window(window: ast.Window | None) -> None:
    if isinstance(window, ast.Last) and window.n < 1:
        raise RuleTypeError(f"a window is at least 1 {window.unit.rstrip('s')}")
    if isinstance(window, ast.Range) and window.end < window.start:
        raise RuleTypeError(f"the range ends ({window.end}) before it starts ({window.start})")


def expr_info(expr: ast.Expr) -> FieldInfo:
    """Check an expression; returns the kind of value it yields."""
    match expr:
        case ast.Agg():
            check_window(expr.window)
            return check_agg(expr)
        case ast.Attr():
            return ATTRIBUTES[expr.name]
        case ast.Spend() | ast.Orders():
            check_window(expr.window)
            return DERIVED[expr.__struct_config__.tag]  # type: ignore[index]
    return DERIVED[expr.__struct_config__.tag]  # type: ignore[index]


_LIT_KIND: dict[type, Kind] = {
    ast.Num: "number",
    ast.Text: "text",
    ast.Bool: "bool",
    ast.Day: "date",
}


def check_test(name: str, info: FieldInfo, test: ast.Test) -> None:
    """The literals fit the kind of value; ordering only for numbers and dates."""
    if info.kind == "other":
        raise RuleTypeError(f"{name} holds no single value to compare")
    if isinstance(test, ast.Cmp):
        lits: tuple[ast.Lit, ...] = (test.value,)
        if test.op in ast.ORDERING and info.kind not in ("number", "date"):
            raise RuleTypeError(
                f"{test.op} orders numbers or dates; {name} is {KIND_WORDS[info.kind]}"
            )
    elif isinstance(test, ast.Between):
        lits = (test.low, test.high)
        if info.kind not in ("number", "date"):
            raise RuleTypeError(
                f"between orders numbers or dates; {name} is {KIND_WORDS[info.kind]}"
            )
    else:
        lits = test.values
        if not lits:
            raise RuleTypeError(f"{name} in [] lists no value")
    for lit in lits:
        kind = _LIT_KIND[type(lit)]
        if kind != info.kind:
            raise RuleTypeError(
                f"{name} is {KIND_WORDS[info.kind]}; {_show(lit)} is {KIND_WORDS[kind]}"
            )
        if info.choices and isinstance(lit, ast.Text) and lit.value not in info.choices:
            choices = ", ".join(f'"{c}"' for c in info.choices)
            raise RuleTypeError(f"{name} is one of {choices}; not {_show(lit)}")


def _show(lit: ast.Lit) -> str:
    v = lit.value
    if isinstance(v, str):
        return f'"{v}"'
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, Decimal | date):
        return str(v)
    return repr(v)


def check_rule(rule: ast.Rule) -> None:
    """Check a rule that did not come from text (a decoded AST) against the vocabulary."""
    for node in ast.walk(rule):
        if isinstance(node, ast.And | ast.Or) and len(node.items) < 2:
            raise RuleTypeError(f"{node.__struct_config__.tag} needs at least two parts")
        if isinstance(node, ast.Compare):
            check_test(_expr_name(node.expr), expr_info(node.expr), node.test)


def _expr_name(expr: ast.Expr) -> str:
    if isinstance(expr, ast.Agg):
        field = f".{expr.field}" if expr.field else ""
        return f"{expr.fn}({event_name(expr.event)}{field})"
    if isinstance(expr, ast.Attr):
        return expr.name
    return str(expr.__struct_config__.tag)
