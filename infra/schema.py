"""The published contract: JSON Schema of every command, event and reply (`crm schema`)."""

from __future__ import annotations

from typing import Any

import msgspec

from domain.events import EventRegistry


def contract(events: EventRegistry) -> dict[str, Any]:
    return {
        "commands": {},
        "events": {
            spec.tag: {"schema_version": spec.version, "schema": msgspec.json.schema(spec.cls)}
            for spec in sorted(events, key=lambda s: s.tag)
        },
        "replies": {},
    }
