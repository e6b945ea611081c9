"""The audience rule AST: tagged msgspec Structs, the wire and storage form of a rule.

A rule is a boolean tree (`And`, `Or`, `Not`) over conditions: a `Compare` of an expression
(windowed aggregate, profile attribute, derived value) with literals, `Consent` or `Member`.
Events are named by their full tag here (`interaction.call_logged`); short names are text only.
Numbers are Decimals so that `spend > 100.10` means exactly that.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from datetime import date
from decimal import Decimal
from typing import Literal

import msgspec

from domain.audiences.errors import AudienceCycle


class _Node(msgspec.Struct, frozen=True, kw_only=True, gc=False, tag_field="node"):
    pass


# literals


class Num(_Node, frozen=True, kw_only=True, tag="num"):
    value: Decimal


class Text(_Node, frozen=True, kw_only=True, tag="text"):
    value: str


class Bool(_Node, frozen=True, kw_only=True, tag="bool"):
    value: bool


class Day(_Node, frozen=True, kw_only=True, tag="date"):
    value: date


Lit = Num | Text | Bool | Day

# tests: what a value is compared with

Op = Literal[">", ">=", "<", "<=", "=", "!="]
ORDERING: frozenset[str] = frozenset({">", ">=", "<", "<="})


class Cmp(_Node, frozen=True, kw_only=True, tag="cmp"):
    op: Op
    value: Lit


class Between(_Node, frozen=True, kw_only=True, tag="between"):
    """Both ends included."""

    low: Lit
    high: Lit


class In(_Node, frozen=True, kw_only=True, tag="in"):
    values: tuple[Lit, ...] = msgspec.field(default=())


Test = Cmp | Between | In

# windows


Unit = Literal["days", "weeks", "months"]


class Last(_Node, frozen=True, kw_only=True, tag="last"):
    """`(T - n units, T]` in UTC; months are calendar months."""

    n: int
    unit: Unit


class Range(_Node, frozen=True, kw_only=True, tag="range"):
    """The UTC calendar days `start` to `end`, both included: `[start 00:00, end+1 00:00)`."""

    start: date
    end: date


Window = Last | Range

# expressions

AggFn = Literal["count", "sum", "avg", "min", "max", "last"]
AttrName = Literal["gender", "income_band", "kind", "stage", "source"]


class Where(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    field: str
    test: Test


class Agg(_Node, frozen=True, kw_only=True, tag="agg"):
    fn: AggFn
    event: str
    field: str | None = None
    where: tuple[Where, ...] = ()
    window: Window


class Attr(_Node, frozen=True, kw_only=True, tag="attr"):
    name: AttrName


class Age(_Node, frozen=True, kw_only=True, tag="age"):
    """Whole years since the birth date, at T."""


class Spend(_Node, frozen=True, kw_only=True, tag="spend"):
    """Net spend of the customer's orders (placed in the window, if one is given)."""

    window: Window | None = None


class Orders(_Node, frozen=True, kw_only=True, tag="orders"):
    """How many orders the customer placed (in the window, if one is given)."""

    window: Window | None = None


class Plan(_Node, frozen=True, kw_only=True, tag="plan"):
    """The plan of the customer's most recently started or changed live subscription."""


class Nps(_Node, frozen=True, kw_only=True, tag="nps"):
    """The score of the customer's latest NPS answer."""


Expr = Agg | Attr | Age | Spend | Orders | Plan | Nps

# rules


class And(_Node, frozen=True, kw_only=True, tag="and"):
    items: tuple[Rule, ...]


class Or(_Node, frozen=True, kw_only=True, tag="or"):
    items: tuple[Rule, ...]


class Not(_Node, frozen=True, kw_only=True, tag="not"):
    item: Rule


class Compare(_Node, frozen=True, kw_only=True, tag="compare"):
    expr: Expr
    test: Test


class Consent(_Node, frozen=True, kw_only=True, tag="consent"):
    """Consent on a channel: for `purpose`, or for any purpose when it is None."""

    channel: str
    purpose: str | None = None


class Member(_Node, frozen=True, kw_only=True, tag="member"):
    audience: str


Rule = And | Or | Not | Compare | Consent | Member

RULE_DECODER = msgspec.json.Decoder(Rule)
RULE_ENCODER = msgspec.json.Encoder()


def walk(rule: Rule) -> Iterator[Rule]:
    """Every node of the boolean tree, parents before children."""
    stack: list[Rule] = [rule]
    while stack:
        node = stack.pop()
        yield node
        if isinstance(node, And | Or):
            stack.extend(reversed(node.items))
        elif isinstance(node, Not):
            stack.append(node.item)


def references(rule: Rule) -> set[str]:
    """The audiences a rule refers to through `member(...)`."""
    return {n.audience for n in walk(rule) if isinstance(n, Member)}


def check_no_cycles(definitions: Mapping[str, Rule]) -> None:
    """Raise AudienceCycle naming the circle if audiences refer to each other in one.

    A name referred to but not defined ends a path (it cannot close a cycle).
    """
    refs = {name: sorted(references(rule)) for name, rule in definitions.items()}
    done: set[str] = set()
    for root in sorted(refs):
        if root in done:
            continue
        path: list[str] = [root]
        on_path = {root}
        iters = [iter(refs[root])]
        while iters:
            nxt = next(iters[-1], None)
            if nxt is None:
                iters.pop()
                finished = path.pop()
                on_path.discard(finished)
                done.add(finished)
                continue
            if nxt in on_path:
                raise AudienceCycle([*path[path.index(nxt) :], nxt])
            if nxt in done or nxt not in refs:
                continue
            path.append(nxt)
            on_path.add(nxt)
            iters.append(iter(refs[nxt]))
