"""The codec without keys (pure: no I/O). With keys it is tested on real stores."""

from __future__ import annotations

import struct
from datetime import UTC, datetime
from uuid import uuid4

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from domain.customers.events import CustomerRegistered
from domain.envelope import Envelope
from domain.events import EVENTS
from infra.codec import (
    HEADER_SIZE,
    MAGIC,
    MIN_SIZE,
    CorruptEvent,
    EventCodec,
    LogRow,
    UnknownEventType,
    _merge_maps,
    _type_codec,
)
from tests.event_types import TEST_EVENTS, V1_EVENTS, WidgetNamed, WidgetNamedV1
from tests.strategies import envelopes, payloads

CODEC = EventCodec(TEST_EVENTS)


def row_of(codec: EventCodec, env: Envelope, position: int = 7) -> LogRow:
    stored = codec.encode(env)
    return LogRow(
        position, stored.originator_id, stored.originator_version, stored.topic, stored.state
    )  # type: ignore[arg-type]


def an_envelope(**changes: object) -> Envelope:
    cid = uuid4()
    fields: dict[str, object] = {
        "stream_id": cid,
        "stream_type": "customer",
        "version": 1,
        "occurred_at": datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC),
        "customer_id": cid,
        "payload": CustomerRegistered(name="Ada Lovelace", email="ada@example.org"),
    }
    fields.update(changes)
    return Envelope(**fields)  # type: ignore[arg-type]


@pytest.mark.parametrize("spec", list(TEST_EVENTS), ids=lambda s: s.tag)
class TestRoundTripEveryRegisteredType:
    def test_round_trip(self, spec) -> None:  # type: ignore[no-untyped-def]
        @settings(max_examples=40, deadline=None)
        @given(env=envelopes(spec.cls), customer=st.booleans())
        def check(env: Envelope, customer: bool) -> None:
            if not customer:
                env = Envelope(**{**_fields(env), "customer_id": None})
            decoded = CODEC.decode(row_of(CODEC, env, position=42))
            assert decoded == Envelope(**{**_fields(env), "position": 42})

        check()


def _fields(env: Envelope) -> dict[str, object]:
    return {f: getattr(env, f) for f in env.__struct_fields__}


class TestLayout:
    def test_prefix_then_the_customer_at_a_fixed_offset(self) -> None:
        env = an_envelope()
        state = CODEC.encode(env).state
        magic, flags, version = struct.unpack_from(">BBH", state)
        assert (magic, flags, version) == (MAGIC, 0, 1)
        assert state[4] & 0xF0 == 0x90 and state[5:7] == b"\xc4\x10"  # fixarray, bin 16
        assert state[7:23] == env.customer_id.bytes  # type: ignore[union-attr]

    def test_no_customer_is_nil(self) -> None:
        state = CODEC.encode(an_envelope(customer_id=None)).state
        assert state[5] == 0xC0

    def test_topic_is_the_stable_tag(self) -> None:
        assert CODEC.encode(an_envelope()).topic == "customer.registered"


class TestBadBytes:
    def test_unknown_type_tag_names_the_position(self) -> None:
        row = row_of(CODEC, an_envelope())._replace(topic="no.such_type", position=1234)
        with pytest.raises(UnknownEventType, match="position 1234") as info:
            CODEC.decode(row)
        assert info.value.position == 1234
        assert info.value.tag == "no.such_type"

    @pytest.mark.parametrize("cut", [0, 3, MIN_SIZE - 1, HEADER_SIZE + 3, 40, -1])
    def test_truncated_bytes_name_the_position(self, cut: int) -> None:
        row = row_of(CODEC, an_envelope(), position=99)
        with pytest.raises(CorruptEvent, match="position 99") as info:
            CODEC.decode(row._replace(state=row.state[:cut]))
        assert info.value.position == 99

    def test_foreign_bytes_are_not_an_envelope(self) -> None:
        row = LogRow(5, uuid4(), 1, "customer.registered", b"state1")
        with pytest.raises(CorruptEvent, match="position 5: not a crm-engine envelope"):
            CODEC.decode(row)

    def test_a_version_newer_than_the_code_is_refused(self) -> None:
        row = row_of(CODEC, an_envelope(), position=3)
        state = bytearray(row.state)
        state[2:4] = (9).to_bytes(2, "big")
        with pytest.raises(CorruptEvent, match="v9 is newer"):
            CODEC.decode(row._replace(state=bytes(state)))

    def test_garbage_body_is_corrupt_not_a_crash(self) -> None:
        row = row_of(CODEC, an_envelope(), position=8)
        with pytest.raises(CorruptEvent, match="position 8"):
            CODEC.decode(row._replace(state=row.state[:HEADER_SIZE] + b"\xc1\xff\x00"))


class TestUpcastingWithoutKeys:
    def test_stored_v1_bytes_read_as_the_v2_shape(self) -> None:
        old = EventCodec(V1_EVENTS)
        env = an_envelope(payload=WidgetNamedV1(full_name="Grace Hopper", size=4))
        decoded = CODEC.decode(row_of(old, env))
        assert decoded.payload == WidgetNamed(first_name="Grace", last_name="Hopper", size_cm=40)
        assert decoded.schema_version == 2
        assert decoded.occurred_at == env.occurred_at


class TestMergeMaps:
    """A sealed event's public and personal fields are merged into one MessagePack map so the
    whole payload decodes in one call; the map's header grows from fix to 16-bit."""

    @pytest.mark.parametrize(
        ("public", "personal"), [(0, 0), (3, 2), (15, 0), (10, 6), (14, 1), (20, 30), (0, 17)]
    )
    def test_the_merged_map_holds_both(self, public: int, personal: int) -> None:
        a = {f"p{i}": i for i in range(public)}
        b = {f"s{i}": [i, str(i)] for i in range(personal)}
        merged = _merge_maps(msgspec.msgpack.encode(a), msgspec.msgpack.encode(b))
        assert msgspec.msgpack.decode(merged) == {**a, **b}

    def test_anything_but_a_map_is_refused(self) -> None:
        with pytest.raises(ValueError, match="not a MessagePack map"):
            _merge_maps(msgspec.msgpack.encode([1, 2]), msgspec.msgpack.encode({}))


_PERSONAL = [s for s in EVENTS if s.personal]


@pytest.mark.parametrize("spec", _PERSONAL, ids=lambda s: s.tag)
def test_a_payloads_split_fields_encode_as_the_split_structs_would(spec) -> None:  # type: ignore[no-untyped-def]
    """The sealing path encodes a payload's public and personal fields as dicts in field
    order: the stored bytes must be those of the split structs the decoders read."""
    tc = _type_codec(spec)
    encode = msgspec.msgpack.Encoder(uuid_format="bytes").encode

    @settings(max_examples=25, deadline=None)
    @given(payload=payloads(spec.cls))
    def check(payload: object) -> None:
        public = tc.public_cls(**{n: getattr(payload, n) for n in tc.public_names})
        personal = tc.personal_cls(**{n: getattr(payload, n) for n in spec.personal})
        assert encode(tc.public_of(payload)) == encode(public)
        assert encode(tc.personal_of(payload)) == encode(personal)

    check()
