"""The envelope every stored event travels in (DESIGN.md, "The event")."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Generic, TypeVar
from uuid import UUID

import msgspec

from domain.events import DomainEvent

P = TypeVar("P", bound=Any)
_TAGS: dict[type, str] = {}


class Envelope(msgspec.Struct, Generic[P], frozen=True, kw_only=True, gc=False, array_like=True):
    """One event of the log: who/what/when around a typed payload.

    `position` and `recorded_at` are given by the store and are None on an event not yet
    appended. `forgotten` names the personal payload fields that could not be decrypted
    because the customer's key was deleted.

    Its MessagePack array form is the stored body (one C call to encode or decode), so the
    field order is part of the storage format: add new fields at the end, with defaults.
    `customer_id` comes first so that the store can read it at a fixed offset.
    """

    customer_id: UUID | None = None
    stream_id: UUID
    stream_type: str
    version: int
    occurred_at: datetime
    payload: P
    actor: str = "system"
    channel: str = "system"
    correlation_id: str | None = None
    causation_id: str | None = None
    command_id: str | None = None
    position: int | None = None
    recorded_at: datetime | None = None
    forgotten: tuple[str, ...] = ()

    @property
    def type(self) -> str:
        """The payload's stable tag, e.g. `customer.registered` (looked up once per payload
        class: msgspec builds `__struct_config__` anew on every access)."""
        cls = self.payload.__class__
        tag = _TAGS.get(cls)
        if tag is None:
            found = cls.__struct_config__.tag
            assert isinstance(found, str)
            tag = _TAGS[cls] = found
        return tag

    @property
    def schema_version(self) -> int:
        version: int = self.payload.__schema_version__
        return version


AnyEnvelope = Envelope[DomainEvent]
