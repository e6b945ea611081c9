"""The relay: follows the log and publishes every event once, in order, to JetStream.

Exactly once in the stream, across restarts and crashes, without any state of its own:
- the stream is the relay's checkpoint. On start (and after any failed publish) the relay
  reads the stream's last message and resumes after the position in its `Nats-Msg-Id`;
- publishes are chained: each message expects the previous position as the stream's last
  message id (`Nats-Expected-Last-Msg-Id`); the first one after a resume expects the stream's
  last sequence instead (the server keeps the last message id in memory only, so after a server
  restart only the sequence can be checked). The server refuses a message whose predecessor is
  not the last one stored, and so every message after a lost or refused one is refused too: a
  failure can cut the stream short, never leave a hole or a reorder;
- so only some publishes need an acknowledgement: one every `ack_every` messages and the last
  of every page. An acknowledged message proves every message before it was stored. Any failed
  or missing acknowledgement stops the window; the relay waits for what is still in flight,
  re-reads the stream's last position and publishes again from there. `Nats-Msg-Id` lets the
  server drop a message it already has (its duplicate window).

The next page of the log is read and turned into messages in a thread while the current one
is published. When caught up the relay polls the log every `poll_interval` seconds (a read
of the rows after its position: one index probe); PostgreSQL's LISTEN/NOTIFY is not used.
Personal fields stay sealed: the relay holds no key and never decrypts (see
infra/nats/event_message.py for the body).
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import threading
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import msgspec
import nats.errors
import nats.js.errors
import structlog
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.js.api import StorageType, StreamConfig

from infra.errors import InfraError
from infra.nats.connect import NatsSettings, connect
from infra.nats.event_message import (
    HEADER_EXPECTED_LAST_MSG_ID,
    HEADER_EXPECTED_LAST_SEQUENCE,
    HEADER_MSG_ID,
    MessageBuilder,
    Outgoing,
)
from infra.store.event_store import EventStore

log = structlog.get_logger("crm.relay")

_BUS_ERRORS = (nats.errors.Error, TimeoutError, OSError)


@dataclass(frozen=True)
class RelayConfig:
    """Where to publish and how hard to pipeline.

    At most `ack_every * max_acks_in_flight` messages are unacknowledged at any time.
    """

    stream: str = "CRM_EVENTS"
    subject_prefix: str = "crm.evt"
    page: int = 5000
    ack_every: int = 250
    max_acks_in_flight: int = 16
    ack_timeout: float = 10.0
    poll_interval: float = 0.05
    log_every: float = 10.0
    max_backoff: float = 5.0


class RelayError(InfraError):
    """The stream cannot serve as the relay's checkpoint (e.g. a foreign last message)."""

    code = "relay_error"


class _WindowFailed(Exception):
    """An acknowledgement failed or did not come: the window is abandoned and resumed."""


class _PubAck(msgspec.Struct, frozen=True):
    seq: int = 0
    duplicate: bool = False
    error: dict[str, Any] | None = None


_ack_decoder = msgspec.json.Decoder(_PubAck)


class Relay:
    """Publishes the log to one JetStream stream; see the module docstring for the guarantees.

    One relay per stream: a second one would only waste work (the server refuses or drops
    whatever it publishes), never duplicate or reorder.
    """

    def __init__(self, store: EventStore, nc: Client, config: RelayConfig | None = None) -> None:
        self.store = store
        self.nc = nc
        self.config = config or RelayConfig()
        self.js = nc.jetstream()
        self.builder = MessageBuilder(store.codec, self.config.subject_prefix)
        self.position = 0
        """The last position the stream is known to hold (acknowledged or read back)."""
        self._started = False
        self._inbox = ""
        self._sub: Any = None
        self._waiting: dict[str, asyncio.Future[int]] = {}
        self._tokens = 0
        self._in_flight: deque[tuple[int, asyncio.Future[int]]] = deque()
        self._since_ack = 0
        self._prev_id: str | None = None
        self._resume_seq = 0
        self._published = 0
        self._rate_mark = (time.monotonic(), 0)

    # -- public -----------------------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        """Publish the log, then follow it, until `stop` is set; returns once every message
        published is acknowledged (or given up, to be resumed by the next start)."""
        await self._pump(stop, None)

    async def publish_until(self, position: int) -> int:
        """Publish every event up to `position` (inclusive); the stream's last position."""
        if position > self.position or not self._started:
            await self._pump(None, position)
        return self.position

    async def close(self) -> None:
        if self._sub is not None:
            await self._sub.unsubscribe()
            self._sub = None
        self._started = False

    # -- set-up and resume -----------------------------------------------------------------

    async def _start(self) -> None:
        if self._started:
            return
        try:
            await self.js.stream_info(self.config.stream)
        except nats.js.errors.NotFoundError:
            await self.js.add_stream(
                StreamConfig(
                    name=self.config.stream,
                    subjects=[f"{self.config.subject_prefix}.>"],
                    storage=StorageType.FILE,
                )
            )
            log.info("relay.stream_created", stream=self.config.stream)
        self._inbox = self.nc.new_inbox()
        self._sub = await self.nc.subscribe(f"{self._inbox}.*", cb=self._on_ack)
        self._started = True

    async def _resume(self) -> None:
        """Where the stream ends: its last sequence and the position in its Nats-Msg-Id."""
        info = await self.js.stream_info(self.config.stream)
        last_seq = info.state.last_seq
        position = 0
        if last_seq and info.state.messages:
            msg = await self.js.get_msg(self.config.stream, seq=last_seq)
            msg_id = (msg.headers or {}).get(HEADER_MSG_ID, "")
            if not msg_id.isdigit():
                raise RelayError(
                    f"the last message of stream {self.config.stream} (sequence {last_seq}) has "
                    f"no log position in {HEADER_MSG_ID}: is another publisher using its subjects?"
                )
            position = int(msg_id)
        elif last_seq:
            raise RelayError(
                f"stream {self.config.stream} is empty but has had {last_seq} messages (purged?): "
                "where to resume is unknown; delete the stream to republish the whole log"
            )
        self.position = position
        self._resume_seq = last_seq
        self._prev_id = None
        self._since_ack = 0
        log.info("relay.resumed", stream=self.config.stream, position=position, last_seq=last_seq)

    # -- the loop ----------------------------------------------------------------------------

    async def _pump(self, stop: asyncio.Event | None, until: int | None) -> None:
        backoff, failed_at = 0.1, -1
        while True:
            try:
                await self._start()
                await self._resume()
                if until is not None and self.position >= until:
                    return
                await self._follow(stop, until)
                return
            except (_WindowFailed, *_BUS_ERRORS) as e:
                await self._abandon()
                if self.position > failed_at:  # it got further since the last failure
                    backoff, failed_at = 0.1, self.position
                log.warning(
                    "relay.publish_failed",
                    position=self.position,
                    error=str(e) or type(e).__name__,
                    retry_in=backoff,
                )
            if stop is None:
                await asyncio.sleep(backoff)
            else:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), backoff)
                if stop.is_set():
                    return
            backoff = min(backoff * 2, self.config.max_backoff)

    async def _follow(self, stop: asyncio.Event | None, until: int | None) -> None:
        after = self.position
        reading = self._read(after, until)
        try:
            while True:
                page = await reading
                if page:
                    after = page[-1][0]
                    done = until is not None and after >= until
                    if not done:
                        reading = self._read(after, until)
                    await self._publish(page)
                    self._report()
                    if done or (stop is not None and stop.is_set()):
                        await self._settle_all()
                        return
                    continue
                await self._settle_all()
                if until is not None or stop is None or stop.is_set():
                    return
                try:
                    await asyncio.wait_for(stop.wait(), self.config.poll_interval)
                    return
                except TimeoutError:
                    reading = self._read(after, until)
        finally:
            if not reading.done():
                reading.cancel()
                # the thread finishes its read; its result is dropped
                await asyncio.gather(reading, return_exceptions=True)

    def _read(self, after: int, until: int | None) -> asyncio.Future[list[Outgoing]]:
        def read() -> list[Outgoing]:
            rows = self.store.read_rows(after, self.config.page, stop=until)
            return self.builder.build(rows)

        return asyncio.ensure_future(asyncio.to_thread(read))

    async def _publish(self, page: Sequence[Outgoing]) -> None:
        publish = self.nc.publish
        ack_every = self.config.ack_every
        last = len(page) - 1
        for i, (position, msg_id, subject, headers, body) in enumerate(page):
            if self._prev_id is not None:
                headers[HEADER_EXPECTED_LAST_MSG_ID] = self._prev_id
            elif self._resume_seq:
                headers[HEADER_EXPECTED_LAST_SEQUENCE] = str(self._resume_seq)
            self._prev_id = msg_id
            self._since_ack += 1
            if self._since_ack >= ack_every or i == last:
                self._since_ack = 0
                reply, future = self._expect_ack()
                await publish(subject, body, reply=reply, headers=headers)
                self._in_flight.append((position, future))
                if len(self._in_flight) >= self.config.max_acks_in_flight:
                    await self._settle_oldest()
                else:
                    await asyncio.sleep(0)  # let the roles sharing this loop run (serve all)
            else:
                await publish(subject, body, headers=headers)
        self._published += len(page)

    # -- acknowledgements --------------------------------------------------------------------

    def _expect_ack(self) -> tuple[str, asyncio.Future[int]]:
        self._tokens += 1
        token = str(self._tokens)
        future: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self._waiting[token] = future
        return f"{self._inbox}.{token}", future

    async def _on_ack(self, msg: Msg) -> None:
        future = self._waiting.pop(msg.subject[len(self._inbox) + 1 :], None)
        if future is None or future.done():
            return
        status = (msg.headers or {}).get("Status")
        if status == "503":
            future.set_exception(_WindowFailed(f"no stream answers on {msg.subject!r}"))
            return
        try:
            ack = _ack_decoder.decode(msg.data)
        except msgspec.DecodeError:
            future.set_exception(_WindowFailed(f"unreadable acknowledgement {msg.data[:200]!r}"))
            return
        if ack.error is not None:
            future.set_exception(_WindowFailed(str(ack.error.get("description", ack.error))))
        else:
            future.set_result(ack.seq)

    async def _settle_oldest(self) -> None:
        position, future = self._in_flight.popleft()
        try:
            await asyncio.wait_for(future, self.config.ack_timeout)
        except TimeoutError:
            raise _WindowFailed(f"no acknowledgement for position {position}") from None
        self.position = max(self.position, position)

    async def _settle_all(self) -> None:
        while self._in_flight:
            await self._settle_oldest()

    async def _abandon(self) -> None:
        """After a failure: let what is in flight settle (it fails or lands; both are safe)."""
        pending = [f for _, f in self._in_flight]
        self._in_flight.clear()
        if pending:
            await asyncio.wait(pending, timeout=self.config.ack_timeout)
            for f in pending:
                if not f.done():
                    f.cancel()
                elif not f.cancelled():
                    f.exception()  # retrieved: no "never retrieved" warning
        self._waiting.clear()

    def _report(self) -> None:
        now = time.monotonic()
        mark, count = self._rate_mark
        if now - mark >= self.config.log_every:
            rate = (self._published - count) / (now - mark)
            log.info(
                "relay.published",
                stream=self.config.stream,
                position=self.position,
                published=self._published,
                rate=round(rate),
            )
            self._rate_mark = (now, self._published)


def run_relay(
    store_url: str | None,
    settings: NatsSettings,
    stop: threading.Event | None = None,
    config: RelayConfig | None = None,
) -> None:
    """`crm serve relay`: run until `stop` is set or, on the main thread, SIGTERM or SIGINT;
    then the messages in flight are acknowledged before it returns."""
    from infra.store.backends import open_store

    store = open_store(store_url)
    try:
        asyncio.run(_serve(store, settings, stop, config))
    finally:
        store.close()


async def _serve(
    store: EventStore,
    settings: NatsSettings,
    stop: threading.Event | None,
    config: RelayConfig | None,
) -> None:
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stopping.set)
    watcher = asyncio.create_task(_watch(stop, stopping)) if stop is not None else None
    nc = await connect(settings)
    relay = Relay(store, nc, config)
    try:
        await relay.run(stopping)
    finally:
        if watcher is not None:
            watcher.cancel()
        await relay.close()
        await nc.drain()
        log.info("relay.stopped", stream=relay.config.stream, position=relay.position)


async def _watch(stop: threading.Event, stopping: asyncio.Event) -> None:
    while not stop.is_set():
        await asyncio.sleep(0.1)
    stopping.set()
