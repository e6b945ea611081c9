"""Hypothesis strategies for any registered event type, built from msgspec's type info.

Constraints declared with msgspec.Meta (ge, le, lengths, patterns) are honoured, so every
generated payload is one the typed decoder accepts.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec.inspect as mi
from hypothesis import strategies as st

from domain.envelope import Envelope
from domain.events import DomainEvent

INT64 = 2**63 - 1


def for_type(t: mi.Type) -> st.SearchStrategy[Any]:
    match t:
        case mi.Metadata():
            return for_type(t.type)
        case mi.NoneType():
            return st.none()
        case mi.BoolType():
            return st.booleans()
        case mi.IntType():
            lo = t.ge if t.ge is not None else (t.gt + 1 if t.gt is not None else -INT64)
            hi = t.le if t.le is not None else (t.lt - 1 if t.lt is not None else INT64)
            return st.integers(lo, hi)
        case mi.FloatType():
            return st.floats(min_value=t.ge, max_value=t.le, allow_nan=False, allow_infinity=False)
        case mi.StrType():
            if t.pattern:
                return st.from_regex(t.pattern, fullmatch=True)
            return st.text(min_size=t.min_length or 0, max_size=t.max_length or 40)
        case mi.BytesType():
            return st.binary(max_size=64)
        case mi.DateType():
            return st.dates()
        case mi.DateTimeType():
            if t.tz is False:
                return st.datetimes()
            return st.datetimes(
                min_value=datetime(1900, 1, 1),
                max_value=datetime(2200, 1, 1),
                timezones=st.just(UTC),
            )
        case mi.UUIDType():
            return st.uuids()
        case mi.DecimalType():
            return st.decimals(
                allow_nan=False,
                allow_infinity=False,
                places=4,
                min_value=-(10**12),
                max_value=10**12,
            )
        case mi.LiteralType():
            return st.sampled_from(t.values)
        case mi.EnumType():
            return st.sampled_from(list(t.cls))
        case mi.ListType() | mi.VarTupleType() | mi.SetType() | mi.FrozenSetType():
            items = st.lists(
                for_type(t.item_type), min_size=t.min_length or 0, max_size=t.max_length or 4
            )
            if isinstance(t, mi.VarTupleType):
                return items.map(tuple)
            return items
        case mi.TupleType():
            return st.tuples(*(for_type(i) for i in t.item_types))
        case mi.DictType():
            return st.dictionaries(for_type(t.key_type), for_type(t.value_type), max_size=4)
        case mi.UnionType():
            return st.one_of(*(for_type(u) for u in t.types))
        case mi.StructType():  # deferred and shared: recursive types (a rule's AST) terminate
            found = _STRUCTS.get(t.cls)
            if found is None:
                found = _STRUCTS[t.cls] = st.deferred(lambda: _struct(t))
            return found
        case mi.AnyType():
            return st.one_of(st.none(), st.integers(-1000, 1000), st.text(max_size=10))
    raise NotImplementedError(f"no strategy for {t!r}: extend tests/strategies.py")


_STRUCTS: dict[type, st.SearchStrategy[Any]] = {}


def _struct(t: mi.StructType) -> st.SearchStrategy[Any]:
    return st.fixed_dictionaries(
        {f.name: for_type(f.type) for f in t.fields if f.required},
        optional={f.name: for_type(f.type) for f in t.fields if not f.required},
    ).map(lambda kw: t.cls(**kw))


def payloads(cls: type[DomainEvent]) -> st.SearchStrategy[DomainEvent]:
    info = mi.type_info(cls)
    assert isinstance(info, mi.StructType)
    return _struct(info)


texts = st.text(min_size=1, max_size=20)


def envelopes(cls: type[DomainEvent], *, with_customer: bool = True) -> st.SearchStrategy[Envelope]:
    base = datetime(2020, 1, 1, tzinfo=UTC)
    return st.builds(
        Envelope,
        stream_id=st.uuids(),
        stream_type=st.sampled_from(["customer", "deal", "order", "ticket"]),
        version=st.integers(1, 10**6),
        occurred_at=st.integers(0, 10**9).map(lambda us: base + timedelta(microseconds=us * 1000)),
        payload=payloads(cls),
        customer_id=st.uuids() if with_customer else st.none(),
        actor=texts,
        channel=st.sampled_from(["email", "call", "meeting", "web", "import"]),
        correlation_id=st.none() | st.uuids().map(str),
        causation_id=st.none() | st.uuids().map(str),
        command_id=st.none() | texts,
    )
