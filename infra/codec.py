"""The msgspec mapper between envelopes and the stored rows of eventsourcing's recorders.

Stored bytes (`state`) are a 20-byte header and a MessagePack body:

    0      magic 0xCE            marks our envelope (anything else is foreign bytes)
    1      flags                 bit 0: personal fields are sealed (AES-GCM) in the body
    2..3   schema_version        big-endian, selects the decoder or the upcaster chain
    4..19  customer_id           16 bytes, all zero when the event is about no customer

The header lets the database derive `customer_id` (a generated column) from the bytes alone,
and lets a decoder pick its typed msgspec Decoder without parsing anything first. The topic
column holds the stable type tag, the originator columns the stream id and version.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Generic, NamedTuple, TypeVar
from uuid import UUID

import msgspec
from cryptography.exceptions import InvalidTag
from eventsourcing.persistence import StoredEvent

from domain.envelope import Envelope
from domain.events import DomainEvent, EventRegistry, EventSpec
from infra.crypto import KeyRing, PersonalDataTampered
from infra.errors import InfraError

MAGIC = 0xCE
SEALED = 0x01
HEADER = struct.Struct(">BBH16s")
HEADER_SIZE = HEADER.size
NO_CUSTOMER = bytes(16)
NONCE_BYTES = 12

P = TypeVar("P")


class EventDecodeError(InfraError):
    """A stored event cannot be read; names the log position so it can be found and fixed."""

    code = "event_decode_error"

    def __init__(self, position: int | None, message: str) -> None:
        super().__init__(f"event at position {position}: {message}")
        self.position = position


class UnknownEventType(EventDecodeError):
    code = "unknown_event_type"

    def __init__(self, position: int | None, tag: str) -> None:
        super().__init__(position, f"unknown event type {tag!r}")
        self.tag = tag


class CorruptEvent(EventDecodeError):
    code = "corrupt_event"


class EventEncodeError(InfraError):
    """An envelope cannot be stored as it is (e.g. personal data about no customer)."""

    code = "event_encode_error"


class LogRow(NamedTuple):
    """One row of the log as the store reads it."""

    position: int
    stream_id: UUID
    version: int
    topic: str
    state: bytes
    recorded_at: datetime | None = None


class _Body(msgspec.Struct, Generic[P], array_like=True, gc=False):
    stream_type: str
    occurred_at: datetime
    actor: str
    channel: str
    correlation_id: str | None
    causation_id: str | None
    command_id: str | None
    payload: P
    sealed: bytes | None = None


@dataclass(frozen=True, slots=True)
class _TypeCodec:
    """Everything prepared once per event type: split structs and typed decoders."""

    spec: EventSpec
    public_names: tuple[str, ...]
    public_cls: type[msgspec.Struct] | None
    personal_cls: type[msgspec.Struct] | None
    plain_decoder: msgspec.msgpack.Decoder[Any]
    sealed_decoder: msgspec.msgpack.Decoder[Any] | None
    personal_decoder: msgspec.msgpack.Decoder[Any] | None


def _split_struct(spec: EventSpec, names: Sequence[str], suffix: str) -> type[msgspec.Struct]:
    fields: list[tuple[str, Any] | tuple[str, Any, Any]] = []
    hints = {f.name: f for f in msgspec.structs.fields(spec.cls)}
    for name in names:
        info = hints[name]
        if info.required:
            fields.append((name, info.type))
        elif info.default_factory is not msgspec.NODEFAULT:
            fields.append((name, info.type, msgspec.field(default_factory=info.default_factory)))
        else:
            fields.append((name, info.type, info.default))
    return msgspec.defstruct(
        f"{spec.cls.__name__}{suffix}", fields, kw_only=True, frozen=True, gc=False
    )


def _type_codec(spec: EventSpec) -> _TypeCodec:
    names = tuple(f.name for f in msgspec.structs.fields(spec.cls))
    public_names = tuple(n for n in names if n not in spec.personal)
    if not spec.personal:
        return _TypeCodec(
            spec, public_names, None, None, msgspec.msgpack.Decoder(_Body[spec.cls]), None, None
        )
    public_cls = _split_struct(spec, public_names, "Public")
    personal_cls = _split_struct(spec, spec.personal, "Personal")
    return _TypeCodec(
        spec=spec,
        public_names=public_names,
        public_cls=public_cls,
        personal_cls=personal_cls,
        plain_decoder=msgspec.msgpack.Decoder(_Body[spec.cls]),
        sealed_decoder=msgspec.msgpack.Decoder(_Body[public_cls]),
        personal_decoder=msgspec.msgpack.Decoder(personal_cls),
    )


class EventCodec:
    """Envelope <-> StoredEvent, with personal fields sealed per customer when a keyring is set.

    Without a keyring (benchmarks of the bare codec, foreign tooling) personal fields are stored
    in the clear; production composition always passes one.
    """

    def __init__(self, registry: EventRegistry, keyring: KeyRing | None = None) -> None:
        self._registry = registry
        self._keyring = keyring
        self._encoder = msgspec.msgpack.Encoder()
        self._generic = msgspec.msgpack.Decoder()
        self._by_tag: dict[str, _TypeCodec] = {}
        self._by_cls: dict[type, _TypeCodec] = {}

    @property
    def registry(self) -> EventRegistry:
        return self._registry

    def _codec_for_cls(self, cls: type) -> _TypeCodec:
        tc = self._by_cls.get(cls)
        if tc is None:
            tc = _type_codec(self._registry.spec_of(cls))
            self._by_cls[cls] = tc
            self._by_tag[tc.spec.tag] = tc
        return tc

    def _codec_for_tag(self, tag: str, position: int | None) -> _TypeCodec:
        tc = self._by_tag.get(tag)
        if tc is None:
            spec = self._registry.get(tag)
            if spec is None:
                raise UnknownEventType(position, tag)
            tc = self._codec_for_cls(spec.cls)
        return tc

    # -- encode ---------------------------------------------------------------------------

    def encode(self, event: Envelope) -> StoredEvent:
        payload = event.payload
        tc = self._codec_for_cls(type(payload))
        spec = tc.spec
        customer = event.customer_id
        sealed: bytes | None = None
        body_payload: Any = payload
        if spec.personal and self._keyring is not None:
            if customer is None:
                raise EventEncodeError(
                    f"{spec.tag} carries personal data but the envelope names no customer"
                )
            header = HEADER.pack(MAGIC, SEALED, spec.version, customer.bytes)
            assert tc.public_cls is not None and tc.personal_cls is not None
            body_payload = tc.public_cls(**{n: getattr(payload, n) for n in tc.public_names})
            personal = tc.personal_cls(**{n: getattr(payload, n) for n in spec.personal})
            nonce = os.urandom(NONCE_BYTES)
            aad = _aad(header, event.stream_id, event.version)
            cipher = self._keyring.cipher_for(customer)
            sealed = nonce + cipher.encrypt(nonce, self._encoder.encode(personal), aad)
        else:
            header = HEADER.pack(
                MAGIC, 0, spec.version, customer.bytes if customer else NO_CUSTOMER
            )
        body = _Body(
            event.stream_type,
            event.occurred_at,
            event.actor,
            event.channel,
            event.correlation_id,
            event.causation_id,
            event.command_id,
            body_payload,
            sealed,
        )
        return StoredEvent(
            originator_id=event.stream_id,
            originator_version=event.version,
            topic=spec.tag,
            state=header + self._encoder.encode(body),
        )

    def encode_many(self, events: Sequence[Envelope]) -> list[StoredEvent]:
        """Encode a batch; the data keys it needs are loaded or created in one go."""
        if self._keyring is not None:
            self._keyring.prepare(
                e.customer_id
                for e in events
                if e.customer_id is not None and self._codec_for_cls(type(e.payload)).spec.personal
            )
        return [self.encode(e) for e in events]

    # -- decode ---------------------------------------------------------------------------

    def decode(self, row: LogRow) -> Envelope:
        state = row.state
        position = row.position
        if len(state) < HEADER_SIZE or state[0] != MAGIC:
            raise CorruptEvent(position, "not a crm-engine envelope (bad or missing header)")
        _, flags, version, customer_bytes = HEADER.unpack_from(state)
        tc = self._codec_for_tag(row.topic, position)
        spec = tc.spec
        customer = None if customer_bytes == NO_CUSTOMER else UUID(bytes=customer_bytes)
        is_sealed = bool(flags & SEALED)
        body_bytes = memoryview(state)[HEADER_SIZE:]
        if version > spec.version:
            raise CorruptEvent(
                position, f"{spec.tag} v{version} is newer than this code (v{spec.version})"
            )
        try:
            if version != spec.version:
                body, payload, forgotten = self._decode_old(
                    tc, row, version, customer, body_bytes, is_sealed=is_sealed
                )
            elif is_sealed:
                assert tc.sealed_decoder is not None
                body = tc.sealed_decoder.decode(body_bytes)
                payload, forgotten = self._unseal(tc, row, customer, body)
            else:
                body = tc.plain_decoder.decode(body_bytes)
                payload, forgotten = body.payload, ()
        except msgspec.DecodeError as e:
            raise CorruptEvent(position, f"{spec.tag} v{version}: {e}") from None
        except msgspec.ValidationError as e:
            raise CorruptEvent(position, f"{spec.tag} v{version}: {e}") from None
        if spec.forgets_customer and customer is not None and self._keyring is not None:
            self._keyring.evict(customer)
        return Envelope(
            stream_id=row.stream_id,
            stream_type=body.stream_type,
            version=row.version,
            occurred_at=body.occurred_at,
            payload=payload,
            customer_id=customer,
            actor=body.actor,
            channel=body.channel,
            correlation_id=body.correlation_id,
            causation_id=body.causation_id,
            command_id=body.command_id,
            position=position,
            recorded_at=row.recorded_at,
            forgotten=forgotten,
        )

    def decode_many(self, rows: Sequence[LogRow]) -> list[Envelope]:
        """Decode a page; keys of every sealed customer in it are fetched in one query."""
        if self._keyring is not None:
            self._keyring.preload(
                UUID(bytes=r.state[4:20])
                for r in rows
                if len(r.state) >= HEADER_SIZE and r.state[0] == MAGIC and r.state[1] & SEALED
            )
        return [self.decode(r) for r in rows]

    def _personal_plain(
        self, tc: _TypeCodec, row: LogRow, customer: UUID | None, sealed: bytes | None
    ) -> bytes | None:
        """The decrypted personal fields, or None when the customer's key is gone."""
        if sealed is None or customer is None:
            raise CorruptEvent(row.position, "sealed flag set but no sealed data or customer")
        if self._keyring is None:
            raise CorruptEvent(
                row.position, "personal data is sealed and this codec has no keyring"
            )
        cipher = self._keyring.existing_cipher(customer)
        if cipher is None:
            return None
        header = row.state[:HEADER_SIZE]
        try:
            return cipher.decrypt(
                sealed[:NONCE_BYTES], sealed[NONCE_BYTES:], _aad(header, row.stream_id, row.version)
            )
        except InvalidTag:
            raise PersonalDataTampered(
                f"event at position {row.position}: personal data fails authentication"
            ) from None

    def _unseal(
        self, tc: _TypeCodec, row: LogRow, customer: UUID | None, body: _Body[Any]
    ) -> tuple[DomainEvent, tuple[str, ...]]:
        spec = tc.spec
        public = msgspec.structs.asdict(body.payload)
        plain = self._personal_plain(tc, row, customer, body.sealed)
        if plain is None:
            return spec.cls(**public, **_fresh(spec.placeholders)), spec.personal
        assert tc.personal_decoder is not None
        personal = msgspec.structs.asdict(tc.personal_decoder.decode(plain))
        return spec.cls(**public, **personal), ()

    def _decode_old(
        self,
        tc: _TypeCodec,
        row: LogRow,
        version: int,
        customer: UUID | None,
        body_bytes: memoryview,
        *,
        is_sealed: bool,
    ) -> tuple[_Body[Any], DomainEvent, tuple[str, ...]]:
        """Slow path for an older schema version: decode to dicts, upcast, convert."""
        spec = tc.spec
        raw = self._generic.decode(body_bytes)
        if not isinstance(raw, list) or len(raw) < 8 or not isinstance(raw[7], dict):
            raise CorruptEvent(row.position, f"{spec.tag} v{version}: body is not an envelope")
        data: dict[str, Any] = dict(raw[7])
        sealed = raw[8] if len(raw) > 8 else None
        forgotten: tuple[str, ...] = ()
        plain: bytes | None = None
        if is_sealed:
            plain = self._personal_plain(tc, row, customer, sealed)
            if plain is not None:
                data.update(self._generic.decode(plain))
        data = self._registry.upcast(spec.tag, version, data)
        if is_sealed and plain is None:
            missing = {k: v for k, v in _fresh(spec.placeholders).items() if k not in data}
            data.update(missing)
            forgotten = spec.personal
        data["type"] = spec.tag
        payload = msgspec.convert(data, spec.cls, strict=False)
        body = msgspec.convert([*raw[:7], None], _Body[Any], strict=False)
        return body, payload, forgotten


def _fresh(placeholders: dict[str, Any]) -> dict[str, Any]:
    """Placeholders with list values copied, so no two events share one mutable list."""
    return {k: (list(v) if isinstance(v, list) else v) for k, v in placeholders.items()}


def _aad(header: bytes, stream_id: UUID, version: int) -> bytes:
    """Binds the ciphertext to its header and place in the log: it cannot be moved elsewhere."""
    return header + stream_id.bytes + version.to_bytes(8, "big", signed=True)
