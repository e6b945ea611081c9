"""The published contract: JSON Schema of every command, event and reply (`crm schema`)."""

from __future__ import annotations

from typing import Any

import msgspec

from domain.events import EventRegistry
from handlers.registry import CommandRegistry
from handlers.replies import ErrorReply, OkReply


def contract(events: EventRegistry, commands: CommandRegistry) -> dict[str, Any]:
    return {
        "commands": {spec.name: msgspec.json.schema(spec.type) for spec in commands},
        "events": {
            spec.tag: {"schema_version": spec.version, "schema": msgspec.json.schema(spec.cls)}
            for spec in sorted(events, key=lambda s: s.tag)
        },
        "replies": {"ok": msgspec.json.schema(OkReply), "error": msgspec.json.schema(ErrorReply)},
    }
