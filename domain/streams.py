"""Folding a stream: what every aggregate's `fold` shares."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Any, TypeVar

from msgspec.structs import replace

S = TypeVar("S")


def fold_events(
    evolve: Callable[[S, Any, datetime], S],
    state: S,
    events: Iterable[tuple[int, datetime, Any]],
) -> S:
    """`state` after (version, occurred_at, payload) triples in version order: each event
    evolves it, and the state remembers the version and business time it has reached
    (`version`, `last_occurred_at`: a lifecycle stream refuses an event older than its last)."""
    for version, occurred_at, payload in events:
        state = replace(
            evolve(state, payload, occurred_at),  # type: ignore[type-var]
            version=version,
            last_occurred_at=occurred_at,
        )
    return state
