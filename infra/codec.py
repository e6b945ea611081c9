"""The msgspec mapper between envelopes and the stored rows of eventsourcing's recorders.

Stored bytes (`state`) are a 4-byte prefix, the envelope as one MessagePack array, and, when
personal fields are sealed, the sealed data with its length last:

    0      magic 0xCE            marks our envelope (anything else is foreign bytes)
    1      flags                 bit 0: personal fields are sealed (AES-GCM)
    2..3   schema_version        big-endian, selects the decoder or the upcaster chain
    4..    msgpack(Envelope)     its first element is customer_id (bin 16 or nil), so the
                                 store reads it at a fixed offset; personal fields left out
                                 when sealed
    [..    nonce + ciphertext of the personal fields, then its length N (4 bytes)]  if sealed

The fixed place of customer_id lets the database derive it (a generated column) from the
bytes alone; the prefix lets a decoder pick its typed msgspec Decoder without parsing first.
The topic column holds the stable type tag, the originator columns the stream id and version.
"""

from __future__ import annotations

import gc
import os
import struct
from collections.abc import Callable, Container, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, NamedTuple
from uuid import UUID

import msgspec
from cryptography.exceptions import InvalidTag
from msgspec.structs import force_setattr

from domain.envelope import Envelope
from domain.events import EventRegistry, EventSpec
from infra.crypto import KeyRing, PersonalDataTampered
from infra.errors import InfraError

MAGIC = 0xCE
SEALED = 0x01
_PREFIX = struct.Struct(">BBH")
HEADER_SIZE = _PREFIX.size
MIN_SIZE = HEADER_SIZE + 2  # the prefix and the smallest msgpack array
NONCE_BYTES = 12
_PAYLOAD = Envelope.__struct_fields__.index("payload")
_BIN16 = b"\xc4\x10"  # MessagePack: a `bin` of 16 bytes follows (a UUID as the codec writes it)
_CUSTOMER_AT = slice(7, 23)  # the customer id's bytes: prefix, array header, bin header
_STREAM_AT = slice(25, 41)  # the stream id's bytes, after the customer's
_asdict = msgspec.structs.asdict


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

    @property
    def stream_key(self) -> bytes:
        """The stream id's 16 bytes (what a PageRow holds)."""
        return self.stream_id.bytes


class PageRow(NamedTuple):
    """A row of the log as a page read gives it on PostgreSQL: a LogRow whose stream id is
    its 16 bytes (`stream_key`), read as they are; `stream_id` makes the UUID on demand.
    The driver builds a UUID per row at a cost a catch-up feels, and the codec needs the id
    only to check it against the one in the stored bytes."""

    position: int
    stream_key: bytes
    version: int
    topic: str
    state: bytes
    recorded_at: datetime | None = None

    @property
    def stream_id(self) -> UUID:
        return UUID(bytes=self.stream_key)


AnyRow = LogRow | PageRow


def stream_int(row: AnyRow) -> int:
    """The row's stream id as an integer, from either kind of row."""
    sid = row[1]
    return sid.int if sid.__class__ is UUID else int.from_bytes(sid, "big")  # type: ignore[union-attr,arg-type]


class SplitEvent(msgspec.Struct, frozen=True, gc=False):
    """A stored event opened without a key: the envelope with its public payload only, and the
    sealed personal fields as they are stored (nonce + ciphertext), for whoever holds the key.

    `envelope.payload` is the payload Struct (current shape) when nothing is sealed, the
    Struct of its public fields when something is, or, for a sealed event of an older schema
    version (its upcaster needs the sealed fields), the public fields as stored in that version,
    as a dict; `schema_version` says which shape it is.
    """

    envelope: Envelope[Any]
    sealed: bytes | None
    schema_version: int


class StoredRow(msgspec.Struct, frozen=True, gc=False):
    """What the recorders insert: the four attributes of eventsourcing's StoredEvent, in a
    lighter type (a frozen dataclass costs as much to build as encoding the event)."""

    originator_id: UUID
    originator_version: int
    topic: str
    state: bytes


@dataclass(frozen=True, slots=True)
class _TypeCodec:
    """Everything prepared once per event type: split structs, typed decoders, header bytes."""

    spec: EventSpec
    tag: str
    plain_prefix: bytes
    sealed_prefix: bytes
    plain_decoder: msgspec.msgpack.Decoder[Any]
    public_names: tuple[str, ...] = ()
    public_cls: type[msgspec.Struct] | None = None
    personal_cls: type[msgspec.Struct] | None = None
    sealed_decoder: msgspec.msgpack.Decoder[Any] | None = None
    personal_decoder: msgspec.msgpack.Decoder[Any] | None = None
    public_decoder: msgspec.msgpack.Decoder[Any] | None = None  # the public fields' map
    whole_decoder: msgspec.msgpack.Decoder[Any] | None = None  # the payload's whole map
    public_of: Callable[[Any], dict[str, Any]] | None = None  # a payload's public fields
    personal_of: Callable[[Any], dict[str, Any]] | None = None  # and its personal ones


def _fields_of(names: Sequence[str]) -> Callable[[Any], dict[str, Any]]:
    """Those fields of a payload as a dict in that order: it encodes to the very bytes of the
    split struct of the same fields (a map, keys in field order), without building one. The
    dict is one literal with the fields spelled out (no per-event loop)."""
    assert all(n.isidentifier() for n in names)
    items = ", ".join(f"{n!r}: p.{n}" for n in names)
    made: Callable[[Any], dict[str, Any]] = eval(f"lambda p: {{{items}}}")  # field names only
    return made


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
    common = {
        "spec": spec,
        "tag": spec.tag,
        "plain_prefix": _PREFIX.pack(MAGIC, 0, spec.version),
        "sealed_prefix": _PREFIX.pack(MAGIC, SEALED, spec.version),
        "plain_decoder": msgspec.msgpack.Decoder(Envelope[spec.cls]),  # type: ignore[name-defined]
    }
    if not spec.personal:
        return _TypeCodec(**common)
    names = tuple(f.name for f in msgspec.structs.fields(spec.cls))
    public_names = tuple(n for n in names if n not in spec.personal)
    public_cls = _split_struct(spec, public_names, "Public")
    personal_cls = _split_struct(spec, spec.personal, "Personal")
    return _TypeCodec(
        **common,
        public_names=public_names,
        public_cls=public_cls,
        personal_cls=personal_cls,
        sealed_decoder=msgspec.msgpack.Decoder(Envelope[public_cls]),  # type: ignore[valid-type]
        personal_decoder=msgspec.msgpack.Decoder(personal_cls),
        public_decoder=msgspec.msgpack.Decoder(public_cls),
        whole_decoder=msgspec.msgpack.Decoder(spec.cls),
        public_of=_fields_of(public_names),
        personal_of=_fields_of(spec.personal),
    )


class EventCodec:
    """Envelope <-> stored row, with personal fields sealed per customer when a keyring is set.

    Without a keyring (benchmarks of the bare codec, foreign tooling) personal fields are stored
    in the clear; production composition always passes one.
    """

    def __init__(self, registry: EventRegistry, keyring: KeyRing | None = None) -> None:
        self._registry = registry
        self._keyring = keyring
        self._encode = msgspec.msgpack.Encoder(uuid_format="bytes").encode
        self._generic = msgspec.msgpack.Decoder()
        self._raw_payload = msgspec.msgpack.Decoder(Envelope[msgspec.Raw])
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
            self._by_tag[tc.tag] = tc
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

    def encode(self, event: Envelope[Any]) -> StoredRow:
        return self.encode_many([event])[0]

    def _encode_sealed(self, event: Envelope[Any], tc: _TypeCodec, nonce: bytes) -> StoredRow:
        assert self._keyring is not None and tc.public_of is not None and tc.personal_of is not None
        customer = event.customer_id
        if customer is None:
            raise EventEncodeError(
                f"{tc.tag} carries personal data but the envelope names no customer"
            )
        payload = event.payload
        cipher = self._keyring.cipher_for(customer)
        aad = _aad(tc.sealed_prefix, customer, event.stream_id, event.version)
        sealed = nonce + cipher.encrypt(nonce, self._encode(tc.personal_of(payload)), aad)
        body = self._encode(msgspec.structs.replace(event, payload=tc.public_of(payload)))
        state = tc.sealed_prefix + body + sealed + len(sealed).to_bytes(4, "big")
        return StoredRow(event.stream_id, event.version, tc.tag, state)

    def encode_many(self, events: Sequence[Envelope[Any]]) -> list[StoredRow]:
        """Encode a batch; the data keys it needs are loaded or created in one go."""
        by_cls, codec_for = self._by_cls, self._codec_for_cls
        encode, sealed = self._encode, self._encode_sealed
        keyring = self._keyring
        if keyring is not None:
            keyring.prepare(
                e.customer_id
                for e in events
                if e.customer_id is not None
                and codec_for(e.payload.__class__).personal_cls is not None
            )
        rows: list[StoredRow] = []
        append = rows.append
        # Random nonces for the whole batch in one call: os.urandom gives up the interpreter
        # lock, and taking it back per event costs far more than the bytes under load.
        nonces = os.urandom(NONCE_BYTES * len(events)) if keyring is not None else b""
        at = 0
        for event in events:  # the hot loop of imports: everything bound locally
            try:
                tc = by_cls[event.payload.__class__]
            except KeyError:
                tc = codec_for(event.payload.__class__)
            if keyring is not None and tc.personal_cls is not None:
                append(sealed(event, tc, nonces[at : at + NONCE_BYTES]))
                at += NONCE_BYTES
                continue
            append(
                StoredRow(event.stream_id, event.version, tc.tag, tc.plain_prefix + encode(event))
            )
        return rows

    # -- decode ---------------------------------------------------------------------------

    def decode(self, row: AnyRow) -> Envelope[Any]:
        env = self._open(row)
        if row.state[1] & SEALED:
            self._unseal(env, row)
        return env

    def decode_many(
        self, rows: Sequence[AnyRow], unseal: Container[str] | None = None
    ) -> list[Envelope[Any]]:
        """Decode a page; keys of every sealed customer in it are fetched in one query.

        `unseal`: the event types whose personal fields the reader needs (None: all). The
        others skip the decryption and carry the placeholders a forgotten customer's events
        show, for a reader that never looks at them (a view of facts without personal data).

        Allocates nothing per event beyond the envelope itself: on long pages the garbage
        collector's work is a large share of decoding."""
        collecting = gc.isenabled()
        gc.disable()  # decoding creates no cycles; don't let the collector rescan every envelope
        try:
            opened, sealed = self._open_many(rows, unseal)
        finally:
            if collecting:
                gc.enable()
        if unseal is not None:
            for i, _, raw in sealed:
                if raw is None and rows[i].topic not in unseal:
                    self._placeholders(opened[i], rows[i])
            sealed = [s for s in sealed if s[2] is not None or rows[s[0]].topic in unseal]
        if not sealed:
            return opened
        keyring = self._keyring
        if keyring is None:  # `_unseal` raises CorruptEvent at the first one it must decrypt
            for i, part, _ in sealed:
                self._unseal(opened[i], rows[i], part)
            return opened
        keyring.preload_raw(raw for _, _, raw in sealed if raw is not None)
        keyring.preload(opened[i].customer_id for i, _, raw in sealed if raw is None)
        by_tag, cipher_of = self._by_tag, keyring.existing_cipher_raw
        for i, part, raw in sealed:
            env, row = opened[i], rows[i]
            if raw is None or part is None:  # the public fields decoded, or opened the careful way
                self._unseal(env, row, part)
                continue
            # The common case inlined (see `_open_many`): the payload is still its public
            # fields' MessagePack map; the AAD is cut from the stored bytes.
            tc = by_tag[row.topic]
            cipher = cipher_of(raw)
            if cipher is None:  # forgotten: the placeholders
                public = tc.public_decoder.decode(env.payload)  # type: ignore[union-attr]
                payload = tc.spec.cls(**_asdict(public), **_fresh(tc.spec.placeholders))
                force_setattr(env, "payload", payload)
                force_setattr(env, "forgotten", tc.spec.personal)
                continue
            state = row.state
            try:
                plain = cipher.decrypt(
                    part[:NONCE_BYTES],
                    part[NONCE_BYTES:],
                    state[:HEADER_SIZE]
                    + raw
                    + state[_STREAM_AT]
                    + row.version.to_bytes(8, "big", signed=True),
                )
            except InvalidTag:
                raise PersonalDataTampered(
                    f"event at position {row.position}: personal data fails authentication"
                ) from None
            try:
                payload = tc.whole_decoder.decode(_merge_maps(bytes(env.payload), plain))
            except (msgspec.DecodeError, msgspec.ValidationError, ValueError) as e:
                raise CorruptEvent(row.position, f"{row.topic}: {e}") from None
            force_setattr(env, "payload", payload)
        return opened

    def split(self, row: AnyRow) -> SplitEvent:
        """Open a row without decrypting anything (the relay to the bus holds no key): the
        envelope with the public fields, and the sealed bytes, or None when nothing is sealed.

        Raises EventDecodeError (UnknownEventType, CorruptEvent) for bytes it cannot read."""
        state, position = row.state, row.position
        tc, version, sealed, end = self._header(row)
        try:
            if version == tc.spec.version:
                decoder = tc.plain_decoder if sealed is None else tc.sealed_decoder
                assert decoder is not None
                env = decoder.decode(state[HEADER_SIZE:end])
            elif sealed is None:
                env = self._upcast(tc, version, state[HEADER_SIZE:end], None, row)
                version = tc.spec.version
            else:
                env = msgspec.convert(
                    self._generic.decode(state[HEADER_SIZE:end]),
                    Envelope[dict[str, Any]],
                    strict=False,
                )
        except (msgspec.DecodeError, msgspec.ValidationError) as e:
            raise CorruptEvent(position, f"{tc.tag} v{version}: {e}") from None
        self._stamp(env, row)
        return SplitEvent(env, sealed, version)

    def _placeholders(self, env: Envelope[Any], row: AnyRow) -> None:
        """The whole payload with placeholders for the personal fields, left sealed."""
        spec = self._by_tag[row.topic].spec
        if env.payload.__class__ is spec.cls:  # upcast: already whole
            return
        public = msgspec.structs.asdict(env.payload)
        force_setattr(env, "payload", spec.cls(**public, **_fresh(spec.placeholders)))

    def _open_many(
        self, rows: Sequence[AnyRow], unseal: Container[str] | None = None
    ) -> tuple[list[Envelope[Any]], list[tuple[int, bytes | None, bytes | None]]]:
        """`_open` of every row, with the common cases (current version, plain or sealed)
        inlined; and (index, sealed bytes, customer id bytes) of the rows with sealed personal
        fields. The sealed bytes are None for the rows opened the careful way (`_unseal`
        finds them again).

        The id's bytes are given for a sealed row of an `unseal` type whose envelope starts
        as this codec writes it (an array whose customer and stream ids are 16-byte `bin`s,
        at offsets 7 and 25 of the state): its payload is left as the MessagePack map of its
        public fields, for `decode_many` to decode once with the personal fields merged in.
        Otherwise the id's bytes are None and the payload is the public fields' struct."""
        by_tag, open_one, setattr_ = self._by_tag, self._open, force_setattr
        whole, raw_decoder = unseal is None, self._raw_payload
        opened: list[Envelope[Any]] = []
        sealed: list[tuple[int, bytes | None, bytes | None]] = []
        append, append_sealed = opened.append, sealed.append
        for row in rows:
            state = row.state
            tc = by_tag.get(row.topic)
            part: bytes | None = None
            raw: bytes | None = None
            if tc is None or len(state) < MIN_SIZE or tc.spec.forgets_customer:
                decoder = None
            elif state[:4] == tc.plain_prefix:
                decoder, end = tc.plain_decoder, len(state)
            elif state[:4] == tc.sealed_prefix and tc.sealed_decoder is not None:
                size = int.from_bytes(state[-4:], "big")
                end = len(state) - 4 - size
                decoder = tc.sealed_decoder if size >= NONCE_BYTES and end >= MIN_SIZE else None
                part = state[end:-4]
                if (
                    decoder is not None
                    and (whole or row.topic in unseal)  # type: ignore[operator]
                    and state[4] >> 4 == 9
                    and state[5:7] == _BIN16 == state[23:25]
                ):
                    decoder, raw = raw_decoder, state[_CUSTOMER_AT]
            else:
                decoder = None
            if decoder is None:  # old, foreign, unknown or damaged: the careful path
                append(open_one(row))
                if state[1:2] and state[1] & SEALED:
                    append_sealed((len(opened) - 1, None, None))
                continue
            try:
                env = decoder.decode(state[HEADER_SIZE:end])
            except (msgspec.DecodeError, msgspec.ValidationError) as e:
                raise CorruptEvent(row.position, f"{row.topic}: {e}") from None
            if env.version != row.version or env.stream_id.int != stream_int(row):
                raise CorruptEvent(
                    row.position, "envelope does not match its row (stream or version)"
                )
            setattr_(env, "position", row.position)
            setattr_(env, "recorded_at", row.recorded_at)
            append(env)
            if part is not None:
                append_sealed((len(opened) - 1, part, raw))
        return opened, sealed

    def _header(self, row: AnyRow) -> tuple[_TypeCodec, int, bytes | None, int]:
        """The row's type codec, schema version, sealed part (None if nothing is sealed) and
        where the envelope's bytes end; CorruptEvent for bytes that are not our envelope or
        that a newer version of this code wrote."""
        state = row.state
        if len(state) < MIN_SIZE or state[0] != MAGIC:
            raise CorruptEvent(row.position, "not a crm-engine envelope (bad or missing header)")
        tc = self._by_tag.get(row.topic) or self._codec_for_tag(row.topic, row.position)
        version = (state[2] << 8) | state[3]
        if version > tc.spec.version:
            raise CorruptEvent(
                row.position, f"{tc.tag} v{version} is newer than this code (v{tc.spec.version})"
            )
        if state[1] & SEALED:
            sealed, end = self._sealed_part(tc, row)
            return tc, version, sealed, end
        return tc, version, None, len(state)

    @staticmethod
    def _stamp(env: Envelope[Any], row: AnyRow) -> None:
        """The row's position and record time on its envelope, once it is known to match."""
        if env.version != row.version or env.stream_id.int != stream_int(row):
            raise CorruptEvent(row.position, "envelope does not match its row (stream or version)")
        force_setattr(env, "position", row.position)
        force_setattr(env, "recorded_at", row.recorded_at)

    def _open(self, row: AnyRow) -> Envelope[Any]:
        """Header checks and the typed decode of the envelope; personal data still sealed."""
        state, position = row.state, row.position
        tc, version, sealed, end = self._header(row)
        try:
            if version == tc.spec.version:
                decoder = tc.plain_decoder if sealed is None else tc.sealed_decoder
                assert decoder is not None
                env = decoder.decode(state[HEADER_SIZE:end])
            else:
                env = self._upcast(tc, version, state[HEADER_SIZE:end], sealed, row)
        except (msgspec.DecodeError, msgspec.ValidationError) as e:
            raise CorruptEvent(position, f"{tc.tag} v{version}: {e}") from None
        self._stamp(env, row)
        if tc.spec.forgets_customer and env.customer_id is not None and self._keyring is not None:
            self._keyring.evict(env.customer_id)
        return env

    @staticmethod
    def _sealed_part(tc: _TypeCodec, row: AnyRow) -> tuple[bytes, int]:
        """The sealed bytes at the end of the state, and where the envelope ends before them."""
        state = row.state
        size = int.from_bytes(state[-4:], "big")
        end = len(state) - 4 - size
        if tc.personal_cls is None or size < NONCE_BYTES or end < MIN_SIZE:
            raise CorruptEvent(row.position, f"{tc.tag}: sealed data is missing or truncated")
        return state[end:-4], end

    def _unseal(self, env: Envelope[Any], row: AnyRow, sealed: bytes | None = None) -> None:
        """Put the personal fields back, or their placeholders when the customer's key is gone
        (`sealed`: the row's sealed bytes when the caller has them already)."""
        tc = self._by_tag[row.topic]
        if sealed is None:
            sealed, _ = self._sealed_part(tc, row)
        spec = tc.spec
        if env.payload.__class__ is spec.cls:  # upcast: already whole (or with placeholders)
            return
        plain = self._decrypt(env.customer_id, sealed, row)
        public = msgspec.structs.asdict(env.payload)
        if plain is None:
            force_setattr(env, "payload", spec.cls(**public, **_fresh(spec.placeholders)))
            force_setattr(env, "forgotten", spec.personal)
            return
        assert tc.personal_decoder is not None
        personal = msgspec.structs.asdict(tc.personal_decoder.decode(plain))
        force_setattr(env, "payload", spec.cls(**public, **personal))

    def _decrypt(self, customer_id: UUID | None, sealed: bytes, row: AnyRow) -> bytes | None:
        """The personal fields' plaintext, or None when the customer's key was deleted."""
        if self._keyring is None:
            raise CorruptEvent(
                row.position, "personal data is sealed and this codec has no keyring"
            )
        if customer_id is None:
            raise CorruptEvent(row.position, "sealed personal data about no customer")
        cipher = self._keyring.existing_cipher(customer_id)
        if cipher is None:
            return None
        try:
            return cipher.decrypt(
                sealed[:NONCE_BYTES],
                sealed[NONCE_BYTES:],
                _aad(row.state[:HEADER_SIZE], customer_id, row.stream_id, row.version),
            )
        except InvalidTag:
            raise PersonalDataTampered(
                f"event at position {row.position}: personal data fails authentication"
            ) from None

    def _upcast(
        self, tc: _TypeCodec, version: int, body: bytes, sealed: bytes | None, row: AnyRow
    ) -> Envelope[Any]:
        """Slow path for an older schema version: decode to builtins, upcast, convert.

        Sealed personal fields of an old version are decrypted first, so the upcaster sees the
        whole old payload; without a key they become placeholders after upcasting.
        """
        raw = self._generic.decode(body)
        if not isinstance(raw, list) or len(raw) <= _PAYLOAD or not isinstance(raw[_PAYLOAD], dict):
            raise msgspec.ValidationError(f"{tc.tag} v{version}: body is not an envelope")
        data: dict[str, Any] = dict(raw[_PAYLOAD])
        forgotten = False
        if sealed is not None:
            customer = raw[0]
            plain = self._decrypt(
                UUID(bytes=customer) if isinstance(customer, bytes) else None, sealed, row
            )
            if plain is None:
                forgotten = True
            else:
                data.update(self._generic.decode(plain))
        data = self._registry.upcast(tc.tag, version, data)
        if forgotten:
            data.update({k: v for k, v in _fresh(tc.spec.placeholders).items() if k not in data})
        data["type"] = tc.tag
        raw[_PAYLOAD] = data
        env: Envelope[Any] = msgspec.convert(raw, Envelope[tc.spec.cls], strict=False)  # type: ignore[name-defined]
        if forgotten:
            force_setattr(env, "forgotten", tc.spec.personal)
        return env


def _map_header(data: bytes) -> tuple[int, int]:
    """(entries, header size) of a MessagePack map; ValueError for anything else."""
    first = data[0] if data else 0
    if first >> 4 == 8:
        return first & 0x0F, 1
    if first == 0xDE and len(data) >= 3:
        return int.from_bytes(data[1:3], "big"), 3
    if first == 0xDF and len(data) >= 5:
        return int.from_bytes(data[1:5], "big"), 5
    raise ValueError("not a MessagePack map")


def _merge_maps(public: bytes, personal: bytes) -> bytes:
    """One MessagePack map of the entries of two (their keys are disjoint: the payload's
    public and personal fields), so the whole payload decodes in one call."""
    n, skip = _map_header(public)
    m, skip_personal = _map_header(personal)
    total = n + m
    if total < 16:
        header = bytes((0x80 | total,))
    elif total < 0x10000:
        header = b"\xde" + total.to_bytes(2, "big")
    else:
        header = b"\xdf" + total.to_bytes(4, "big")
    return header + public[skip:] + personal[skip_personal:]


def _fresh(placeholders: dict[str, Any]) -> dict[str, Any]:
    """Placeholders with list values copied, so no two events share one mutable list."""
    return {k: (list(v) if isinstance(v, list) else v) for k, v in placeholders.items()}


def _aad(prefix: bytes, customer_id: UUID, stream_id: UUID, version: int) -> bytes:
    """Binds the ciphertext to its customer and place in the log: it cannot be moved elsewhere."""
    return (
        prefix
        + customer_id.int.to_bytes(16)
        + stream_id.int.to_bytes(16)
        + version.to_bytes(8, "big", signed=True)
    )
