"""The customer state cache: a load reads only the events after the version it holds."""

from __future__ import annotations

from datetime import UTC, datetime
from uuid import UUID, uuid4

from domain.customers import events as ev
from domain.customers.state import fold
from domain.envelope import Envelope
from handlers.states import END, CustomerStates

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


def test_the_gaps_lie_after_the_watermark_between_the_owners_own_runs() -> None:
    states = CustomerStates()
    assert states.gaps() == []  # no watermark: nothing is trusted
    states.watch_from(10, [])
    states.own([14, 12, 13, 20])  # runs 12-14 and 20
    assert states.gaps() == [(10, 12), (14, 20), (20, END)]
    states.own([11])
    assert states.gaps() == [(14, 20), (20, END)]


def test_runs_at_or_below_the_watermark_are_forgotten() -> None:
    states = CustomerStates()
    states.watch_from(10, [])
    states.own([5, 6, 11, 12])
    assert states.gaps() == [(12, END)]
    states.caught_up(30, [])
    assert (states.watermark, states.gaps()) == (30, [(30, END)])


def test_an_event_newer_than_a_held_state_drops_it_and_an_older_one_does_not() -> None:
    a, b = Stream(uuid4()), Stream(uuid4())
    for s in (a, b):
        s.add(ev.CustomerRegistered(kind="person", name="Ada"))
        s.add(ev.StageChanged(stage="prospect", previous="lead"))
    states = CustomerStates()
    states.get(a, a.customer_id)
    states.get(b, b.customer_id)
    states.watch_from(7, [a.customer_id, b.customer_id])
    unheld = uuid4()
    dropped = states.caught_up(9, [(a.customer_id, 3), (b.customer_id, 2), (unheld, 1)])
    assert dropped == [a.customer_id]
    assert (a.customer_id in states.held(), b.customer_id in states.held()) == (False, True)
    assert states.watermark == 9


def test_watching_starts_with_the_states_read_in_that_snapshot_only() -> None:
    a, b = Stream(uuid4()), Stream(uuid4())
    for s in (a, b):
        s.add(ev.CustomerRegistered(kind="person", name="Ada"))
    states = CustomerStates()
    states.get(a, a.customer_id)
    states.get(b, b.customer_id)
    states.watch_from(4, [a.customer_id])
    assert (a.customer_id in states.held(), b.customer_id in states.held()) == (True, False)
    states.clear()
    assert (states.watermark, states.gaps(), len(states)) == (None, [], 0)
