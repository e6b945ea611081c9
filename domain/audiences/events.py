"""Events of the audience registry: every definition lives on one stream (`REGISTRY_ID`), so
one decision sees them all (names, references, cycles). Each carries the parsed rule (the
AST, its wire form), its text and its version. No personal data."""

from __future__ import annotations

from uuid import UUID, uuid5

from domain.audiences.ast import Rule
from domain.events import EVENTS, DomainEvent

REGISTRY_ID = uuid5(UUID("6f1d2c3b-8a4e-4f5a-9b7c-0d1e2f3a4b5c"), "audiences")
REGISTRY_TYPE = "audience_registry"


@EVENTS.register
class AudienceDefined(DomainEvent, frozen=True, kw_only=True, tag="audience.defined"):
    name: str
    text: str
    rule: Rule
    version: int = 1


@EVENTS.register
class AudienceChanged(DomainEvent, frozen=True, kw_only=True, tag="audience.changed"):
    name: str
    text: str
    rule: Rule
    version: int


@EVENTS.register
class AudienceRetired(DomainEvent, frozen=True, kw_only=True, tag="audience.retired"):
    name: str
    version: int


AUDIENCE_EVENTS = (AudienceDefined, AudienceChanged, AudienceRetired)
