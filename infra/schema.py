"""The published contract: JSON Schema of every command, event, reply and NATS message
(`crm schema`)."""

from __future__ import annotations

from typing import Any

import msgspec

from domain.events import EventRegistry, EventSpec
from handlers.parsing import CommandMessage, ImportLine
from handlers.registry import CommandRegistry
from handlers.replies import ErrorReply, OkReply
from infra.codec import _split_struct
from infra.nats.event_message import EventMessage
from infra.nats.feed import ViewChange
from infra.nats.queries import QueryReply, QueryRequest


def event_data(spec: EventSpec) -> type[msgspec.Struct]:
    """The `data` of an event on the bus: its public fields (personal ones travel sealed)."""
    names = [f.name for f in msgspec.structs.fields(spec.cls) if f.name not in spec.personal]
    return _split_struct(spec, names, "Data")


def contract(events: EventRegistry, commands: CommandRegistry) -> dict[str, Any]:
    specs = sorted(events, key=lambda s: s.tag)
    return {
        "commands": {spec.name: msgspec.json.schema(spec.type) for spec in commands},
        "events": {
            spec.tag: {
                "schema_version": spec.version,
                "personal": list(spec.personal),
                "schema": msgspec.json.schema(spec.cls),
            }
            for spec in specs
        },
        "replies": {"ok": msgspec.json.schema(OkReply), "error": msgspec.json.schema(ErrorReply)},
        "messages": {
            "command": msgspec.json.schema(CommandMessage),
            "import_line": msgspec.json.schema(ImportLine),
            "event": msgspec.json.schema(EventMessage),
            "event_data": {spec.tag: msgspec.json.schema(event_data(spec)) for spec in specs},
            "query_request": msgspec.json.schema(QueryRequest),
            "query_reply": msgspec.json.schema(QueryReply),
            "view_change": msgspec.json.schema(ViewChange),
        },
    }
