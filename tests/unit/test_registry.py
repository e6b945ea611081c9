from __future__ import annotations

from datetime import date
from typing import Annotated, ClassVar

import msgspec
import pytest

from domain.catalogue import EVENTS
from domain.errors import EventTypeError
from domain.events import FORGOTTEN, PERSONAL, DomainEvent, EventRegistry, PersonalStr
from tests.event_types import TEST_EVENTS, KitchenSink, WidgetNamed


class TestRegistry:
    def test_product_types_are_registered_by_stable_tags(self) -> None:
        assert {"customer.registered", "customer.forgotten"} <= set(EVENTS.tags())
        assert all("." in tag and "/" not in tag for tag in EVENTS.tags())

    def test_personal_fields_and_their_placeholders(self) -> None:
        spec = TEST_EVENTS.spec_of(KitchenSink)
        assert spec.personal == ("note", "nicknames", "secret_number")
        assert spec.placeholders == {"note": FORGOTTEN, "nicknames": [], "secret_number": None}

    def test_customer_registered_marks_its_personal_data(self) -> None:
        spec = EVENTS.get("customer.registered")
        assert spec is not None
        assert set(spec.personal) == {"name", "email", "phone", "birth_date"}
        assert "income_band" not in spec.personal

    def test_a_tag_is_required(self) -> None:
        class Untagged(DomainEvent, frozen=True, kw_only=True):
            x: int = 0

        with pytest.raises(EventTypeError, match="needs a tag"):
            EventRegistry().register(Untagged)

    def test_a_tag_cannot_name_two_types(self) -> None:
        class A(DomainEvent, frozen=True, kw_only=True, tag="dup.event"):
            x: int = 0

        class B(DomainEvent, frozen=True, kw_only=True, tag="dup.event"):
            y: int = 0

        registry = EventRegistry()
        registry.register(A)
        with pytest.raises(EventTypeError, match="registered twice"):
            registry.register(B)

    def test_a_personal_field_must_be_able_to_read_as_forgotten(self) -> None:
        class BadPersonal(DomainEvent, frozen=True, kw_only=True, tag="bad.personal"):
            born: Annotated[date, PERSONAL]

        with pytest.raises(EventTypeError, match=r"BadPersonal\.born"):
            EventRegistry().register(BadPersonal)

    def test_personal_marker_is_published_in_the_schema(self) -> None:
        schema = msgspec.json.schema(KitchenSink)
        props = schema["$defs"]["KitchenSink"]["properties"]
        assert props["note"].get("x-personal") is True
        assert "x-personal" not in props["count"]


class TestUpcasters:
    def test_chain_runs_from_the_stored_version_to_the_current(self) -> None:
        data = TEST_EVENTS.upcast("test.widget_named", 1, {"full_name": "Ada Lovelace", "size": 3})
        assert data == {"first_name": "Ada", "last_name": "Lovelace", "size_cm": 30}
        assert msgspec.convert({"type": "test.widget_named", **data}, WidgetNamed)

    def test_a_missing_step_is_named(self) -> None:
        class V3(DomainEvent, frozen=True, kw_only=True, tag="gap.event"):
            __schema_version__: ClassVar[int] = 3
            x: PersonalStr = ""

        registry = EventRegistry()
        registry.register(V3)
        registry.upcaster("gap.event", 1)(lambda d: d)
        with pytest.raises(EventTypeError, match="v2 -> v3"):
            registry.upcast("gap.event", 1, {})
