"""The body of an event on JetStream (`crm.evt.<stream_type>.<event_type>`): JSON, one per event.

Consumers in any language read it with the JSON schema of `EventMessage`. Personal fields never
appear in the clear: `sealed` carries them as they are stored (base64 of the 12-byte nonce and
the AES-GCM ciphertext of the msgpack map of the personal fields), readable only with the
customer's data key, which forgetting deletes. `position` is the log position, also the
message's `Nats-Msg-Id`: the key to deduplicate by (delivery is at least once).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import datetime
from typing import Any
from uuid import UUID

import msgspec
import structlog

from infra.codec import EventCodec, LogRow

log = structlog.get_logger("crm.relay")

HEADER_MSG_ID = "Nats-Msg-Id"
HEADER_EXPECTED_LAST_MSG_ID = "Nats-Expected-Last-Msg-Id"
HEADER_EXPECTED_LAST_SEQUENCE = "Nats-Expected-Last-Sequence"
HEADER_TYPE = "Crm-Type"
HEADER_SCHEMA_VERSION = "Crm-Schema-Version"
HEADER_CUSTOMER = "Crm-Customer"
HEADER_STREAM = "Crm-Stream"
HEADER_VERSION = "Crm-Version"
HEADER_CORRELATION = "Crm-Correlation"
HEADER_CAUSATION = "Crm-Causation"
HEADER_POSITION = "Crm-Position"
HEADER_UNDECODABLE = "Crm-Undecodable"


class EventMessage(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    """One event as the bus carries it.

    `data` holds the payload's public fields (None for a row the relay could not read: then
    `type` is the row's topic and the message has a `Crm-Undecodable` header). `sealed` is the
    encrypted personal fields, or None when the event has none. `schema_version` names the
    shape of `data`.
    """

    position: int
    stream_id: UUID
    stream_type: str | None
    version: int
    type: str
    schema_version: int | None
    occurred_at: datetime | None
    recorded_at: datetime | None
    customer_id: UUID | None
    actor: str | None
    channel: str | None
    correlation_id: str | None
    causation_id: str | None
    command_id: str | None
    data: dict[str, Any] | None
    sealed: bytes | None


event_message_decoder = msgspec.json.Decoder(EventMessage)
"""Reads a body back (tests, consumers written in Python)."""


Outgoing = tuple[int, str, str, dict[str, str], bytes]
"""One message to publish: (position, its msg id, subject, headers, body)."""

_TOKEN = re.compile(r"[^A-Za-z0-9_\-]")


class MessageBuilder:
    """Log rows -> messages (subject, headers, JSON body), with no key: nothing decrypted.

    A row it cannot read (foreign bytes, unknown type, corrupt) becomes a message all the same,
    with `type` = its topic, `data` null and a `Crm-Undecodable` header saying why, on
    `<prefix>.undecodable.<topic>`: one poison event must not stop the bus.
    """

    def __init__(self, codec: EventCodec, subject_prefix: str) -> None:
        self._split = codec.split
        self._prefix = subject_prefix
        self._encode = msgspec.json.Encoder().encode
        self._subjects: dict[tuple[str, str], str] = {}
        self._tagged: dict[type, bool] = {}

    def subject(self, stream_type: str, event_type: str) -> str:
        """`<prefix>.<stream_type>.<event_type>`, each character a subject cannot hold as `_`."""
        key = (stream_type, event_type)
        subject = self._subjects.get(key)
        if subject is None:
            tokens = [_TOKEN.sub("_", t) or "_" for t in (stream_type, *event_type.split("."))]
            subject = self._subjects[key] = ".".join((self._prefix, *tokens))
        return subject

    def build(self, rows: Sequence[LogRow]) -> list[Outgoing]:
        """The messages of a page of rows, in position order (the hot loop: names bound)."""
        out: list[Outgoing] = []
        append, split, encode, subject = out.append, self._split, self._encode, self.subject
        tagged, asdict, uuid_text = self._tagged, msgspec.structs.asdict, self._uuid_text
        for row in rows:
            try:
                opened = split(row)
            except Exception as e:
                append(self._undecodable(row, e))
                continue
            env = opened.envelope
            payload = env.payload
            has_tag = tagged.get(payload.__class__)
            if has_tag is None:
                config = getattr(payload.__class__, "__struct_config__", None)
                has_tag = tagged[payload.__class__] = config is not None and config.tag is not None
            event_type = row.topic
            msg_id = str(row.position)
            stream_id = uuid_text(env.stream_id)
            headers = {
                HEADER_MSG_ID: msg_id,
                HEADER_TYPE: event_type,
                HEADER_SCHEMA_VERSION: str(opened.schema_version),
                HEADER_STREAM: stream_id,
                HEADER_VERSION: str(env.version),
                HEADER_POSITION: msg_id,
            }
            customer = env.customer_id
            if customer is not None:
                headers[HEADER_CUSTOMER] = (
                    stream_id if customer == env.stream_id else uuid_text(customer)
                )
            if env.correlation_id:
                headers[HEADER_CORRELATION] = env.correlation_id
            if env.causation_id:
                headers[HEADER_CAUSATION] = env.causation_id
            body = encode(
                EventMessage(
                    position=row.position,
                    stream_id=env.stream_id,
                    stream_type=env.stream_type,
                    version=env.version,
                    type=event_type,
                    schema_version=opened.schema_version,
                    occurred_at=env.occurred_at,
                    recorded_at=row.recorded_at,
                    customer_id=customer,
                    actor=env.actor,
                    channel=env.channel,
                    correlation_id=env.correlation_id,
                    causation_id=env.causation_id,
                    command_id=env.command_id,
                    # a payload Struct's tag repeats `type`: its fields alone, as a dict
                    data=asdict(payload) if has_tag else payload,
                    sealed=opened.sealed,
                )
            )
            append((row.position, msg_id, subject(env.stream_type, event_type), headers, body))
        return out

    def _uuid_text(self, value: UUID) -> str:
        """str(value), in C (a UUID's own __str__ is Python code: twice as slow)."""
        return self._encode(value)[1:-1].decode()

    def _undecodable(self, row: LogRow, error: Exception) -> Outgoing:
        reason = f"{type(error).__name__}: {error}"[:200].replace("\r", " ").replace("\n", " ")
        log.warning("relay.undecodable", position=row.position, topic=row.topic, error=reason)
        msg_id = str(row.position)
        headers = {
            HEADER_MSG_ID: msg_id,
            HEADER_TYPE: row.topic,
            HEADER_STREAM: str(row.stream_id),
            HEADER_VERSION: str(row.version),
            HEADER_POSITION: msg_id,
            HEADER_UNDECODABLE: reason,
        }
        body = self._encode(
            EventMessage(
                position=row.position,
                stream_id=row.stream_id,
                stream_type=None,
                version=row.version,
                type=row.topic,
                schema_version=None,
                occurred_at=None,
                recorded_at=row.recorded_at,
                customer_id=None,
                actor=None,
                channel=None,
                correlation_id=None,
                causation_id=None,
                command_id=None,
                data=None,
                sealed=None,
            )
        )
        return (row.position, msg_id, self.subject("undecodable", row.topic), headers, body)
