"""Folded customer states kept between commands: a load reads only the stream's newer events.

A state folded to version v stays right forever, since the events up to v never change; so a
customer with 100,000 events in its own stream costs a command what one with ten does. The
cache is bounded (it forgets everything when full) and safe to share between threads: a
stale entry only means more events to read.

A single writer (the importer) can also skip asking whether its held states are still
current: the cache then keeps a `watermark`, a log position up to which every held state has
every event of its stream, and the positions the writer appended itself (folded already). Each
batch reads the log's head and the (stream, version) of the events in the `gaps` between
them, drops the states those events are newer than (`caught_up`), and moves the watermark to
the head. Positions commit in order (appends take the log lock), so nothing can land later
below a head once seen.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from itertools import groupby
from typing import Protocol
from uuid import UUID

from domain.customers.state import CustomerState, fold
from domain.envelope import Envelope


class StreamReader(Protocol):
    def read_stream(self, stream_id: UUID, after_version: int = 0) -> list[Envelope]: ...


END = 2**63 - 1  # past any position


class CustomerStates:
    def __init__(self, capacity: int = 100_000) -> None:
        self.capacity = capacity
        self._states: dict[UUID, CustomerState] = {}
        self.watermark: int | None = None  # None: held states must be checked one by one
        self._own: list[tuple[int, int]] = []  # runs of positions appended (and folded) here

    def get(self, log: StreamReader, customer_id: UUID) -> CustomerState:
        cached = self._states.get(customer_id)
        newer = log.read_stream(customer_id, cached.version if cached is not None else 0)
        if cached is not None and not newer:
            return cached
        state = fold(customer_id, [(e.version, e.occurred_at, e.payload) for e in newer], cached)
        if len(self._states) >= self.capacity:
            self._states.clear()
        self._states[customer_id] = state
        return state

    def version_of(self, customer_id: UUID) -> int:
        """The version the cached state was folded to (0: nothing cached)."""
        cached = self._states.get(customer_id)
        return cached.version if cached is not None else 0

    def held(self) -> dict[UUID, CustomerState]:
        """The held states by customer (read-only: for set operations on many ids at once)."""
        return self._states

    def own(self, positions: Sequence[int]) -> None:
        """Positions the owner appended, with its held states folded past them already."""
        mark = self.watermark if self.watermark is not None else 0
        # consecutive positions share `position - index`: one run each
        for _, run in groupby(enumerate(sorted(positions)), lambda x: x[1] - x[0]):
            found = [p for _, p in run]
            if found[-1] > mark:
                self._own.append((found[0], found[-1]))

    def gaps(self) -> list[tuple[int, int]]:
        """Open intervals of positions after the watermark, between the owner's own runs:
        where events the held states may lack can be ([] with no watermark: none is trusted)."""
        if self.watermark is None:
            return []
        lo, out = self.watermark, []
        for a, b in sorted(self._own):
            if b <= lo:
                continue
            if a > lo + 1:
                out.append((lo, a))
            lo = b
        out.append((lo, END))
        return out

    def caught_up(self, head: int, changed: Iterable[tuple[UUID, int]]) -> list[UUID]:
        """The events in the gaps up to `head` were read: drop each held state one of them
        is newer than, move the watermark to `head`; the ids dropped."""
        dropped = []
        for stream_id, version in changed:
            held = self._states.get(stream_id)
            if held is not None and held.version < version:
                del self._states[stream_id]
                dropped.append(stream_id)
        self.watermark = head
        self._own = [(a, b) for a, b in self._own if b > head]
        return dropped

    def watch_from(self, head: int, checked: Iterable[UUID]) -> None:
        """Start trusting the watermark at `head`: the `checked` states were read up to it
        in the same snapshot; any other held state is dropped (it was not)."""
        keep = {c: self._states[c] for c in checked if c in self._states}
        self._states = keep
        self.watermark = head
        self._own = []

    def clear(self) -> None:
        self._states.clear()
        self.watermark = None
        self._own = []

    def __len__(self) -> int:
        return len(self._states)
