"""Folded customer states kept between commands: a load reads only the stream's newer events.

A state folded to version v stays right forever, since the events up to v never change; so a
customer with 100,000 events in its own stream costs a command what one with ten does. The
cache is bounded (it forgets everything when full) and safe to share between threads: a
stale entry only means more events to read.
"""

from __future__ import annotations

from typing import Protocol
from uuid import UUID

from domain.customers.state import CustomerState, fold
from domain.envelope import Envelope


class StreamReader(Protocol):
    def read_stream(self, stream_id: UUID, after_version: int = 0) -> list[Envelope]: ...


class CustomerStates:
    def __init__(self, capacity: int = 100_000) -> None:
        self.capacity = capacity
        self._states: dict[UUID, CustomerState] = {}

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

    def clear(self) -> None:
        self._states.clear()

    def __len__(self) -> int:
        return len(self._states)
