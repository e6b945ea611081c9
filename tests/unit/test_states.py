"""The customer state cache: a load reads only the events after the version it holds."""

from __future__ import annotations

from datetime import UTC, datetime
from uuid import UUID, uuid4

from domain.customers import events as ev
from domain.customers.state import fold
from domain.envelope import Envelope
from handlers.states import CustomerStates

T = datetime(2026, 5, 1, tzinfo=UTC)


class Stream:
    """A stream in memory that records which versions each read asked for."""

    def __init__(self, customer_id: UUID) -> None:
        self.customer_id = customer_id
        self.events: list[Envelope] = []
        self.reads: list[int] = []

    def add(self, payload: ev.DomainEvent) -> None:
        self.events.append(
            Envelope(
                customer_id=self.customer_id,
                stream_id=self.customer_id,
                stream_type="customer",
                version=len(self.events) + 1,
                occurred_at=T,
                payload=payload,
            )
        )

    def read_stream(self, stream_id: UUID, after_version: int = 0) -> list[Envelope]:
        assert stream_id == self.customer_id
        self.reads.append(after_version)
        return [e for e in self.events if e.version > after_version]


def test_a_second_load_reads_only_newer_events_and_equals_a_full_fold() -> None:
    stream = Stream(uuid4())
    stream.add(ev.CustomerRegistered(kind="person", name="Ada"))
    for _ in range(50):
        stream.add(ev.StageChanged(stage="prospect", previous="lead"))
    states = CustomerStates()
    first = states.get(stream, stream.customer_id)
    stream.add(ev.StageChanged(stage="customer", previous="prospect"))
    second = states.get(stream, stream.customer_id)
    assert stream.reads == [0, 51]
    full = fold(stream.customer_id, [(e.version, e.occurred_at, e.payload) for e in stream.events])
    assert (first.version, second) == (51, full)
    assert second.stage == "customer" and states.version_of(stream.customer_id) == 52


def test_an_unchanged_stream_returns_the_cached_state_itself() -> None:
    stream = Stream(uuid4())
    stream.add(ev.CustomerRegistered(kind="person", name="Ada"))
    states = CustomerStates()
    assert states.get(stream, stream.customer_id) is states.get(stream, stream.customer_id)


def test_a_full_cache_starts_again_and_stays_right() -> None:
    streams = [Stream(uuid4()) for _ in range(5)]
    states = CustomerStates(capacity=2)
    for s in streams:
        s.add(ev.CustomerRegistered(kind="person", name="Ada"))
        assert states.get(s, s.customer_id).name == "Ada"
    assert len(states) <= 2
    assert states.version_of(streams[0].customer_id) == 0  # dropped: read whole next time
