"""Encode and decode of full envelopes, events/s: our msgspec codec against eventsourcing's Mapper.

subject   `infra.codec.EventCodec` without a keyring (personal fields in the clear):
          `encode_many` Envelope -> StoredEvent, `decode_many` LogRow -> Envelope.
baseline  eventsourcing's default `Mapper` with `JSONTranscoder` (UUIDAsHex, DatetimeAsISO,
          DecimalAsStr and a DateAsISO for birth dates): `to_stored_event` / `to_domain_event`
          on eventsourcing `DomainEvent` classes carrying the same information: the envelope
          fields (stream_type, customer_id, actor, channel, correlation_id, causation_id,
          command_id; `occurred_at` is the library's own `timestamp` field, so that it is not
          carried twice) and the payload's fields as plain attributes (`Es<Payload>`, made from
          the payload type's fields).
extra     our codec WITH a real KeyRing (open_store on a throwaway SQLite file, development
          master key): the cost of sealing personal fields (AES-GCM per event), with the data
          keys created before timing and cached (the KeyRing caches up to 100,000 customers).

The events are a mix of CustomerRegistered (name, e-mail, phone, birth date...) and
CustomerForgotten of distinct customers. Both sides round-trip the whole fixture (checked before
timing). Runs alternate between the sides; value/baseline are the best runs.

    .venv/bin/python bench/codec.py [--events 50000] [--repeat 7]
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import argparse
import dataclasses
import tempfile
from collections.abc import Callable
from datetime import UTC, date, datetime
from typing import Any
from uuid import UUID

import msgspec
from eventsourcing.domain import DomainEvent as LibraryEvent
from eventsourcing.persistence import (
    DatetimeAsISO,
    DecimalAsStr,
    JSONTranscoder,
    Mapper,
    StoredEvent,
    Transcoding,
    UUIDAsHex,
)

from bench._common import customer_envelopes, emit, fmt_rate, log, summary, timed
from domain.catalogue import EVENTS
from domain.customers.events import CustomerForgotten
from domain.envelope import Envelope
from domain.events import DomainEvent
from infra.codec import EventCodec, LogRow
from infra.store.backends import open_store

# -- the baseline's events ------------------------------------------------------------------


class DateAsISO(Transcoding):
    """`datetime.date` as an ISO string (the library ships one for datetime only)."""

    type = date
    name = "date_iso"

    def encode(self, obj: date) -> str:
        return obj.isoformat()

    def decode(self, data: str) -> date:
        return date.fromisoformat(data)


class EsEnvelopeEvent(LibraryEvent):
    """The envelope's fields on the library's event (it has originator id/version, timestamp)."""

    stream_type: str
    customer_id: UUID | None
    actor: str
    channel: str
    correlation_id: str | None
    causation_id: str | None
    command_id: str | None


_LIBRARY_CLASSES: dict[type, type[EsEnvelopeEvent]] = {}


def library_class(payload_cls: type[DomainEvent]) -> type[EsEnvelopeEvent]:
    """`Es<Payload>`: the envelope's fields plus the payload's, as plain dataclass attributes.

    Made from the payload type's own fields, so that both sides keep carrying the same
    information when the payload changes shape. It is a module attribute, as the library's
    topics (`module:qualname`) require.
    """
    cls = _LIBRARY_CLASSES.get(payload_cls)
    if cls is None:
        fields = payload_cls.__struct_fields__
        clash = set(fields) & {f.name for f in dataclasses.fields(EsEnvelopeEvent)}
        assert not clash, f"{payload_cls.__name__} fields clash with the envelope's: {clash}"
        name = f"Es{payload_cls.__name__}"
        namespace = {"__annotations__": dict.fromkeys(fields, "Any"), "__module__": __name__}
        cls = type(name, (EsEnvelopeEvent,), namespace)
        cls.__qualname__ = name
        globals()[name] = _LIBRARY_CLASSES[payload_cls] = cls
    return cls


def library_mapper() -> Mapper[UUID]:
    transcoder = JSONTranscoder()
    for transcoding in (UUIDAsHex(), DatetimeAsISO(), DecimalAsStr(), DateAsISO()):
        transcoder.register(transcoding)
    return Mapper(transcoder=transcoder)


def library_event(e: Envelope) -> EsEnvelopeEvent:
    return library_class(type(e.payload))(
        originator_id=e.stream_id,
        originator_version=e.version,
        timestamp=e.occurred_at,
        stream_type=e.stream_type,
        customer_id=e.customer_id,
        actor=e.actor,
        channel=e.channel,
        correlation_id=e.correlation_id,
        causation_id=e.causation_id,
        command_id=e.command_id,
        **msgspec.structs.asdict(e.payload),
    )


# -- round trips, checked before anything is timed --------------------------------------------

RECORDED_AT = datetime(2025, 1, 1, tzinfo=UTC)


def log_rows(stored: list[StoredEvent]) -> list[LogRow]:
    """The rows as the store reads them back (position and recorded_at from the database)."""
    return [
        LogRow(i, s.originator_id, s.originator_version, s.topic, s.state, RECORDED_AT)
        for i, s in enumerate(stored, start=1)
    ]


def check_ours(envelopes: list[Envelope], decoded: list[Envelope]) -> None:
    for i, (a, b) in enumerate(zip(envelopes, decoded, strict=True), start=1):
        if b != msgspec.structs.replace(a, position=i, recorded_at=RECORDED_AT):
            raise SystemExit(f"our codec does not round-trip event {i}: {a} != {b}")


def check_library(events: list[EsEnvelopeEvent], decoded: list[Any]) -> None:
    for a, b in zip(events, decoded, strict=True):
        if type(a) is not type(b) or vars(a) != vars(b):
            raise SystemExit(f"the library's mapper does not round-trip: {a} != {b}")


# -- main -----------------------------------------------------------------------------------


def best_of(
    repeat: int, n: int, sides: dict[str, Callable[[], object]]
) -> dict[str, dict[str, float]]:
    """Rates of every side, `repeat` runs each, the order rotated each round."""
    rates: dict[str, list[float]] = {name: [] for name in sides}
    names = list(sides)
    for r in range(repeat):
        shift = r % len(names)
        for name in names[shift:] + names[:shift]:
            rates[name].append(n / timed(sides[name]))
    for name, values in rates.items():
        log(
            f"  {name:<18} best {fmt_rate(max(values))}   runs: "
            + " ".join(f"{v:,.0f}" for v in values)
        )
    return {name: summary(values) for name, values in rates.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=50_000)
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--forgotten-share", type=float, default=0.1)
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args()

    envelopes = customer_envelopes(args.events, args.seed, args.forgotten_share)
    n = len(envelopes)
    ours = EventCodec(EVENTS)
    mapper = library_mapper()
    library_events = [library_event(e) for e in envelopes]

    our_stored = ours.encode_many(envelopes)
    our_rows = log_rows(our_stored)
    check_ours(envelopes, ours.decode_many(our_rows))
    their_stored = [mapper.to_stored_event(e) for e in library_events]
    check_library(library_events, [mapper.to_domain_event(s) for s in their_stored])
    ours_bytes = sum(len(s.state) for s in our_stored) / n
    theirs_bytes = sum(len(s.state) for s in their_stored) / n
    log(
        f"codec: {n:,} events ({sum(isinstance(e.payload, CustomerForgotten) for e in envelopes):,}"
        f" forgotten), state {ours_bytes:.0f} bytes (ours) vs {theirs_bytes:.0f} (library), "
        f"best of {args.repeat}"
    )

    to_stored, to_domain = mapper.to_stored_event, mapper.to_domain_event
    log("encode")
    encode = best_of(
        args.repeat,
        n,
        {
            "ours": lambda: ours.encode_many(envelopes),
            "eventsourcing": lambda: [to_stored(e) for e in library_events],
        },
    )
    log("decode")
    decode = best_of(
        args.repeat,
        n,
        {
            "ours": lambda: ours.decode_many(our_rows),
            "eventsourcing": lambda: [to_domain(s) for s in their_stored],
        },
    )

    with tempfile.TemporaryDirectory(prefix="crm-bench-codec-") as tmp:
        store = open_store(f"sqlite:///{tmp}/keys.db", env={})
        try:
            sealed_codec = store.codec
            sealed_stored = sealed_codec.encode_many(envelopes)  # creates the data keys
            sealed_rows = log_rows(sealed_stored)
            check_ours(envelopes, sealed_codec.decode_many(sealed_rows))
            log("sealed (with a KeyRing, keys cached)")
            sealed = best_of(
                args.repeat,
                n,
                {
                    "sealed encode": lambda: sealed_codec.encode_many(envelopes),
                    "sealed decode": lambda: sealed_codec.decode_many(sealed_rows),
                },
            )
        finally:
            store.close()

    ratio = decode["ours"]["best"] / decode["eventsourcing"]["best"]
    encode_ratio = encode["ours"]["best"] / encode["eventsourcing"]["best"]
    log(f"decode ratio {ratio:.2f} (target >= 4), encode ratio {encode_ratio:.2f} (target >= 10)")
    emit(
        {
            "bench": "codec",
            "value": round(decode["ours"]["best"]),
            "unit": "events/s",
            "baseline": round(decode["eventsourcing"]["best"]),
            "ratio": round(ratio, 3),
            "encode_ratio": round(encode_ratio, 3),
            "encode_value": round(encode["ours"]["best"]),
            "encode_baseline": round(encode["eventsourcing"]["best"]),
            "median_ratio": round(decode["ours"]["median"] / decode["eventsourcing"]["median"], 3),
            "median_encode_ratio": round(
                encode["ours"]["median"] / encode["eventsourcing"]["median"], 3
            ),
            "sealed_encode_rate": round(sealed["sealed encode"]["best"]),
            "sealed_decode_rate": round(sealed["sealed decode"]["best"]),
            "sealed_encode_cost": round(
                encode["ours"]["best"] / sealed["sealed encode"]["best"], 2
            ),
            "sealed_decode_cost": round(
                decode["ours"]["best"] / sealed["sealed decode"]["best"], 2
            ),
            "events": n,
            "repeat": args.repeat,
            "mean_state_bytes": round(ours_bytes, 1),
            "mean_state_bytes_baseline": round(theirs_bytes, 1),
        }
    )


if __name__ == "__main__":
    main()
