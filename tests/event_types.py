"""Test-only event types: every kind of field the codec must carry, and a reshaped type.

They live in a registry of their own, `TEST_EVENTS`, that also includes every product type,
so that tests running over it cover the types later issues add.
"""

from __future__ import annotations

import enum
from datetime import date, datetime
from decimal import Decimal
from typing import Annotated, Any, ClassVar, Literal
from uuid import UUID

import msgspec

from domain.catalogue import EVENTS
from domain.events import PERSONAL, DomainEvent, EventRegistry, PersonalStr


class Colour(enum.Enum):
    RED = "red"
    GREEN = "green"


class Line(msgspec.Struct, frozen=True, kw_only=True):
    sku: str
    quantity: Annotated[int, msgspec.Meta(ge=1, le=10_000)]
    unit_price: Decimal


class KitchenSink(DomainEvent, frozen=True, kw_only=True, tag="test.kitchen_sink"):
    note: PersonalStr
    nicknames: Annotated[list[str], PERSONAL] = []
    secret_number: Annotated[int | None, PERSONAL] = None
    count: int = 0
    ratio: float = 0.0
    amount: Decimal = Decimal("0")
    flag: bool = False
    day: date | None = None
    moment: datetime | None = None
    ref: UUID | None = None
    colour: Colour = Colour.RED
    level: Literal["low", "high"] = "low"
    lines: list[Line] = []
    tags: dict[str, int] = {}
    blob: bytes = b""
    pair: tuple[int, str] = (0, "")


class Plain(DomainEvent, frozen=True, kw_only=True, tag="test.plain"):
    value: int


class WidgetNamedV1(DomainEvent, frozen=True, kw_only=True, tag="test.widget_named"):
    """Version 1 stored one `full_name`; version 2 splits it."""

    full_name: PersonalStr
    size: int = 1


class WidgetNamed(DomainEvent, frozen=True, kw_only=True, tag="test.widget_named"):
    __schema_version__: ClassVar[int] = 2

    first_name: PersonalStr
    last_name: PersonalStr
    size_cm: int = 1


TEST_EVENTS = EventRegistry().include(EVENTS)
TEST_EVENTS.register(KitchenSink)
TEST_EVENTS.register(Plain)
TEST_EVENTS.register(WidgetNamed)


@TEST_EVENTS.upcaster("test.widget_named", from_version=1)
def _split_name(data: dict[str, Any]) -> dict[str, Any]:
    data = dict(data)
    full = data.pop("full_name", None)
    if full is not None:
        first, _, last = full.partition(" ")
        data["first_name"], data["last_name"] = first, last
    data["size_cm"] = data.pop("size", 1) * 10
    return data


V1_EVENTS = EventRegistry()
V1_EVENTS.register(WidgetNamedV1)
