"""The change feed: `<prefix>.view.<projection>.<key>` after each committed change of a view.

A feed is a notification, not a log: core NATS, at most once, no replay. A consumer that misses
a message (it was offline, or NATS was down and the message was dropped) still converges by
querying the view (`crm.query.<projection>`); each message carries the position the view now
reflects so a consumer can ask for `min_position` and skip stale notices. The durable,
at-least-once stream of facts is JetStream `CRM_EVENTS`, not this.

The runner is synchronous and calls `FeedPublisher` on its own thread after each commit. The
publisher builds the messages there, queues them (bounded) and wakes one drain task on the
asyncio loop that owns the NATS client, so the projector never waits on NATS. When the queue is
full, the loop is gone or NATS is disconnected, messages are dropped and counted (`dropped`,
logged as `feed.dropped`) instead of growing memory.

Keys: the event's `customer_id`, or its `stream_id` when it has none, once per page. A page with
`customer.forgotten` for a key makes its message a tombstone (drop what you hold about it).
Timers that fired (rows changed as time passed, keys unknown) give one message with the key
`_timers`. No message carries personal data: ids, a projection name and a position only.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import deque
from collections.abc import Sequence
from typing import Any

import msgspec
import structlog
from nats.aio.client import Client

from domain.envelope import Envelope
from projections.runner import Runner

log = structlog.get_logger("crm.nats.feed")

FORGOTTEN_EVENT = "customer.forgotten"
TIMERS_KEY = "_timers"
MAX_PENDING = 10_000  # messages queued for NATS at most; beyond that they are dropped
WARN_EVERY = 5.0  # seconds between two `feed.dropped` warnings


class ViewChange(msgspec.Struct, frozen=True, kw_only=True):
    """One key of a view changed; the view now reflects the log up to `position`."""

    projection: str
    key: str
    position: int
    tombstone: bool = False


_enc = msgspec.json.Encoder()


def view_subject(prefix: str, projection: str, key: str) -> str:
    return f"{prefix}.view.{projection}.{key}"


def changes(projection: str, events: Sequence[Envelope[Any]], position: int) -> list[ViewChange]:
    """The messages of one committed page: one per key, in first-seen order."""
    if not events:
        return [ViewChange(projection=projection, key=TIMERS_KEY, position=position)]
    tombstones: dict[str, bool] = {}
    for e in events:
        key = str(e.customer_id if e.customer_id is not None else e.stream_id)
        tombstones[key] = tombstones.get(key, False) or e.type == FORGOTTEN_EVENT
    return [
        ViewChange(projection=projection, key=k, position=position, tombstone=t)
        for k, t in tombstones.items()
    ]


class FeedPublisher:
    """The runner's `on_commit` hook: publishes view changes from any thread, never blocking.

    `nc` must belong to `loop` (the loop running in another thread, or this one)."""

    def __init__(
        self,
        nc: Client,
        loop: asyncio.AbstractEventLoop,
        *,
        prefix: str = "crm",
        max_pending: int = MAX_PENDING,
    ) -> None:
        self.nc = nc
        self.loop = loop
        self.prefix = prefix
        self.max_pending = max_pending
        self.published = 0
        self.dropped = 0
        self._queue: deque[list[tuple[str, bytes]]] = deque()
        self._pending = 0
        self._lock = threading.Lock()
        self._task: asyncio.Task[None] | None = None
        self._warned_at = 0.0

    def __call__(self, projection: str, events: list[Envelope[Any]], position: int) -> None:
        batch = [
            (view_subject(self.prefix, projection, c.key), _enc.encode(c))
            for c in changes(projection, events, position)
        ]
        with self._lock:
            if self.loop.is_closed() or self._pending + len(batch) > self.max_pending:
                self._drop(len(batch), "queue full" if not self.loop.is_closed() else "no loop")
                return
            self._queue.append(batch)
            self._pending += len(batch)
        try:
            self.loop.call_soon_threadsafe(self._kick)
        except RuntimeError:  # the loop closed meanwhile
            with self._lock:
                self._discard_queue("no loop")

    @property
    def pending(self) -> int:
        return self._pending

    async def flush(self, timeout: float = 5.0) -> None:
        """Wait until what is queued has been handed to NATS and the server has it (tests,
        shutdown). Call on the publisher's loop."""
        deadline = time.monotonic() + timeout
        while self._pending or (self._task is not None and not self._task.done()):
            if time.monotonic() >= deadline:
                break
            await asyncio.sleep(0.005)
        if self.nc.is_connected:
            await self.nc.flush(timeout=max(0.1, deadline - time.monotonic()))

    def _kick(self) -> None:
        """On the loop: start the one drain task unless it runs (one task keeps the order)."""
        if self._task is None or self._task.done():
            self._task = self.loop.create_task(self._drain())

    async def _drain(self) -> None:
        while True:
            with self._lock:
                if not self._queue:
                    return
                batch = self._queue.popleft()
                self._pending -= len(batch)
            if not self.nc.is_connected:
                with self._lock:
                    self._drop(len(batch), "NATS disconnected")
                continue
            for i, (subject, body) in enumerate(batch):
                try:
                    await self.nc.publish(subject, body)
                except Exception as e:  # closed, draining, reconnect buffer full
                    with self._lock:
                        self._drop(len(batch) - i, f"{type(e).__name__}: {e}")
                    break
                self.published += 1

    def _discard_queue(self, reason: str) -> None:
        n, self._pending = self._pending, 0
        self._queue.clear()
        self._drop(n, reason)

    def _drop(self, n: int, reason: str) -> None:
        """Count `n` dropped messages; warn at most every WARN_EVERY seconds (lock held)."""
        if n <= 0:
            return
        self.dropped += n
        now = time.monotonic()
        if now - self._warned_at >= WARN_EVERY:
            self._warned_at = now
            log.warning(
                "feed.dropped",
                dropped_total=self.dropped,
                reason=reason,
                hint="the change feed is a notification; consumers re-query the views",
            )


def feed_publisher(
    nc: Client, loop: asyncio.AbstractEventLoop | None = None, *, prefix: str = "crm"
) -> FeedPublisher:
    """The hook to give a Runner as `on_commit`; `loop` defaults to the running one."""
    return FeedPublisher(nc, loop or asyncio.get_running_loop(), prefix=prefix)


async def run_projector_with_feed(
    runner: Runner,
    nc: Client,
    stop: asyncio.Event,
    *,
    prefix: str = "crm",
    poll: float = 0.2,
) -> FeedPublisher:
    """Follow the log with `runner` on a worker thread, publishing the feed from this loop,
    until `stop` is set; returns the publisher (its counters) once flushed. `runner` is set up
    already (`infra.projector.open_runner`); its `on_commit` is replaced for the run."""
    feed = feed_publisher(nc, prefix=prefix)
    runner.on_commit = feed
    halt = threading.Event()
    follow = asyncio.create_task(asyncio.to_thread(runner.follow, halt, poll))
    waiter = asyncio.create_task(stop.wait())
    try:
        await asyncio.wait({follow, waiter}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        halt.set()
        waiter.cancel()
        try:
            await follow  # a projector failure surfaces here
        finally:
            runner.on_commit = None
            await feed.flush()
    return feed
