"""Event payloads and the registry of every event type.

A payload is a frozen msgspec Struct with a stable tag (`customer.registered`) and a
`__schema_version__`. Fields holding personal data are annotated with `PERSONAL`; the codec
encrypts them per customer and, once a customer is forgotten, decodes them as placeholders.
Upcasters turn the stored dict of an older version into the next version's shape.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Annotated, Any, ClassVar, TypeVar

import msgspec

from domain.errors import EventTypeError

PERSONAL = msgspec.Meta(extra={"personal": True}, extra_json_schema={"x-personal": True})
"""Marks a field as personal data: `name: Annotated[str, PERSONAL]`."""

PersonalStr = Annotated[str, PERSONAL]

FORGOTTEN = "\u2039forgotten\u203a"
"""What a personal text field reads as after its customer's key was deleted."""

Upcaster = Callable[[dict[str, Any]], dict[str, Any]]


class DomainEvent(msgspec.Struct, frozen=True, kw_only=True, gc=False, tag_field="type"):
    """Base of every event payload. Subclasses set `tag=` and, when reshaped, a new version."""

    __schema_version__: ClassVar[int] = 1
    __forgets_customer__: ClassVar[bool] = False


E = TypeVar("E", bound=type[DomainEvent])


@dataclass(frozen=True, slots=True)
class EventSpec:
    """What the codec needs to know of one event type."""

    tag: str
    cls: type[DomainEvent]
    version: int
    personal: tuple[str, ...]
    placeholders: dict[str, Any]
    forgets_customer: bool


@dataclass
class EventRegistry:
    """Every event type by its stable tag, with the upcasters of its older versions."""

    _specs: dict[str, EventSpec] = field(default_factory=dict)
    _by_cls: dict[type, EventSpec] = field(default_factory=dict)
    _upcasters: dict[tuple[str, int], Upcaster] = field(default_factory=dict)

    def register(self, cls: E) -> E:
        """Class decorator: add an event type. Its tag must be new, its personal fields valid."""
        tag = cls.__struct_config__.tag
        if not isinstance(tag, str) or "." not in tag:
            raise EventTypeError(f"{cls.__name__} needs a tag like 'customer.registered'")
        if tag in self._specs and self._specs[tag].cls is not cls:
            raise EventTypeError(f"event type {tag!r} is registered twice")
        personal, placeholders = _personal_fields(cls)
        spec = EventSpec(
            tag=tag,
            cls=cls,
            version=cls.__schema_version__,
            personal=personal,
            placeholders=placeholders,
            forgets_customer=cls.__forgets_customer__,
        )
        self._specs[tag] = spec
        self._by_cls[cls] = spec
        return cls

    def upcaster(self, tag: str, from_version: int) -> Callable[[Upcaster], Upcaster]:
        """Decorator: `fn(dict of version N) -> dict of version N+1` for one event type."""

        def add(fn: Upcaster) -> Upcaster:
            self._upcasters[(tag, from_version)] = fn
            return fn

        return add

    def upcast(self, tag: str, from_version: int, data: dict[str, Any]) -> dict[str, Any]:
        """Apply the chain of upcasters from `from_version` to the current version."""
        spec = self._specs[tag]
        for version in range(from_version, spec.version):
            step = self._upcasters.get((tag, version))
            if step is None:
                raise EventTypeError(f"no upcaster for {tag} v{version} -> v{version + 1}")
            data = step(data)
        return data

    def include(self, other: EventRegistry) -> EventRegistry:
        """Add every type and upcaster of another registry (tests extend the product's)."""
        for spec in other:
            self.register(spec.cls)
        self._upcasters.update(other._upcasters)
        return self

    def get(self, tag: str) -> EventSpec | None:
        return self._specs.get(tag)

    def spec_of(self, cls: type) -> EventSpec:
        try:
            return self._by_cls[cls]
        except KeyError:
            raise EventTypeError(f"{cls.__name__} is not a registered event type") from None

    def __iter__(self) -> Iterator[EventSpec]:
        return iter(list(self._specs.values()))

    def __len__(self) -> int:
        return len(self._specs)

    def __contains__(self, tag: object) -> bool:
        return tag in self._specs

    def tags(self) -> list[str]:
        return sorted(self._specs)


def _personal_fields(cls: type[DomainEvent]) -> tuple[tuple[str, ...], dict[str, Any]]:
    """Names of the fields marked PERSONAL and the value each reads as once forgotten."""
    info = msgspec.inspect.type_info(cls)
    assert isinstance(info, msgspec.inspect.StructType)
    names: list[str] = []
    placeholders: dict[str, Any] = {}
    for f in info.fields:
        ftype = f.type
        if not (
            isinstance(ftype, msgspec.inspect.Metadata) and (ftype.extra or {}).get("personal")
        ):
            continue
        names.append(f.name)
        placeholders[f.name] = _placeholder(cls, f.name, ftype.type)
    return tuple(names), placeholders


def _placeholder(cls: type, name: str, ftype: msgspec.inspect.Type) -> Any:
    if isinstance(ftype, msgspec.inspect.StrType):
        return FORGOTTEN
    if isinstance(ftype, msgspec.inspect.UnionType) and ftype.includes_none:
        return None
    if isinstance(ftype, msgspec.inspect.ListType):
        return []
    if isinstance(ftype, msgspec.inspect.VarTupleType):
        return ()
    raise EventTypeError(
        f"personal field {cls.__name__}.{name} must be a str, a list or optional, "
        "so that it can read as forgotten"
    )


EVENTS = EventRegistry()
"""The registry of the product's event types; modules register theirs at import time."""
