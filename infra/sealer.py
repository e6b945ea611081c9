"""The sealer role: follows the log, seals every position (replay/seal.py), anchors the head.

Anchoring: when a NATS client is given (`CRM_NATS_URL` set), the sealed head is published to
the JetStream stream `CRM_SEALS` (created if missing) on `<prefix>.seal`, with `Nats-Msg-Id` =
position and the body `{"position", "hash" (hex), "sealed_at"}`, at most every `anchor_every`
positions or every `anchor_interval` seconds, and once more when it stops. An anchor lives
outside the database: whoever rewrites the log and recomputes the seal table still cannot
change the anchored hashes, and `crm verify` compares them with the log.

A failed publish is logged and retried at the next head: sealing never waits on NATS.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime

import msgspec
import nats.errors
import nats.js.errors
import structlog
from nats.aio.client import Client
from nats.js.api import DeliverPolicy, StorageType, StreamConfig

from infra.errors import InfraError
from infra.nats.connect import BusUnavailable, NatsSettings, connect
from infra.store.event_store import EventStore
from infra.store.seal import seal_store
from replay.seal import Seal, Sealer

log = structlog.get_logger("crm.sealer")

_BUS_ERRORS = (nats.errors.Error, TimeoutError, OSError)


class AnchorError(InfraError):
    """The anchors in JetStream cannot be read (a foreign message in the stream, ...)."""

    code = "anchor_error"


class SealAnchor(msgspec.Struct, frozen=True):
    """One sealed head as published to JetStream."""

    position: int
    hash: str  # hex
    sealed_at: datetime | None = None


_anchor_decoder = msgspec.json.Decoder(SealAnchor)


@dataclass(frozen=True)
class SealerConfig:
    stream: str = "CRM_SEALS"
    subject: str = "crm.seal"
    page: int = 10_000
    anchor_every: int = 10_000
    anchor_interval: float = 1.0
    poll_interval: float = 0.2

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> SealerConfig:
        """`CRM_NATS_PREFIX` (default `crm`) gives the subject `<prefix>.seal`; the stream is
        `CRM_SEALS_STREAM`, else `CRM_SEALS` (`<PREFIX>_SEALS` for another prefix)."""
        env = os.environ if env is None else env
        prefix = env.get("CRM_NATS_PREFIX") or "crm"
        stream = env.get("CRM_SEALS_STREAM") or (
            "CRM_SEALS" if prefix == "crm" else f"{prefix.upper()}_SEALS"
        )
        return cls(stream=stream, subject=f"{prefix}.seal")


def sealer_for(store: EventStore, page: int = 10_000) -> Sealer:
    return Sealer(store, seal_store(store), page=page)


def seal_until_head(store: EventStore, *, page: int = 10_000) -> int:
    """Seal every position up to the head now (the demo, tests); returns how many were sealed."""
    count, _ = sealer_for(store, page).seal_until()
    return count


def seal_and_anchor(store: EventStore, env: Mapping[str, str] | None = None) -> int:
    """The demo's in-process sealer: seal up to the head, then, when `CRM_NATS_URL` is set,
    anchor the sealed head in JetStream (a failed publish is logged, never raised). Returns how
    many positions were sealed."""
    env = os.environ if env is None else env
    sealer = sealer_for(store)
    count, head = sealer.seal_until()
    if head is None or not env.get("CRM_NATS_URL"):
        return count

    async def go(head: Seal) -> None:
        try:
            nc = await connect(NatsSettings.from_env(env, name="crm-sealer"))
        except BusUnavailable as e:
            log.warning("sealer.anchor_failed", position=head.position, error=str(e))
            return
        try:
            anchor = Anchor(nc, SealerConfig.from_env(env))
            with contextlib.suppress(*_BUS_ERRORS, nats.js.errors.Error):
                await anchor.start()  # on failure publish() tries again and logs it
            if head.position > anchor.position:
                await anchor.publish(_with_time(sealer, head))
        finally:
            await nc.drain()

    asyncio.run(go(head))
    return count


class Anchor:
    """Publishes sealed heads to JetStream (see the module docstring)."""

    def __init__(self, nc: Client, config: SealerConfig) -> None:
        self.js = nc.jetstream()
        self.config = config
        self.position = -1  # unknown until the stream is read
        self._at = 0.0

    async def start(self) -> None:
        try:
            info = await self.js.stream_info(self.config.stream)
        except nats.js.errors.NotFoundError:
            await self.js.add_stream(
                StreamConfig(
                    name=self.config.stream,
                    subjects=[self.config.subject],
                    storage=StorageType.FILE,
                )
            )
            log.info("sealer.stream_created", stream=self.config.stream)
            self.position = 0
            return
        self.position = 0
        if info.state.messages:
            last = await self.js.get_msg(self.config.stream, seq=info.state.last_seq)
            with contextlib.suppress(msgspec.DecodeError, TypeError):
                self.position = _anchor_decoder.decode(last.data or b"").position

    def due(self, head: Seal) -> bool:
        if head.position <= self.position:
            return False
        return (
            head.position - self.position >= self.config.anchor_every
            or time.monotonic() - self._at >= self.config.anchor_interval
        )

    async def publish(self, head: Seal) -> bool:
        """Anchor `head`; False (logged) when NATS refused or did not answer."""
        try:
            if self.position < 0:
                await self.start()
            body = msgspec.json.encode(SealAnchor(head.position, head.hash.hex(), head.sealed_at))
            await self.js.publish(
                self.config.subject,
                body,
                headers={"Nats-Msg-Id": str(head.position)},
                stream=self.config.stream,
            )
        except (*_BUS_ERRORS, nats.js.errors.Error) as e:
            log.warning(
                "sealer.anchor_failed", position=head.position, error=str(e) or type(e).__name__
            )
            self._at = time.monotonic()  # try again after the interval, not at once
            return False
        self.position, self._at = head.position, time.monotonic()
        return True


async def run_sealer(
    store: EventStore,
    stop: asyncio.Event,
    nc: Client | None = None,
    config: SealerConfig | None = None,
) -> None:
    """`crm serve sealer`: seal the log as it grows until `stop` is set; with `nc`, anchor the
    sealed head in JetStream (and once more on the way out)."""
    config = config or SealerConfig()
    sealer = sealer_for(store, config.page)
    anchor = Anchor(nc, config) if nc is not None else None
    head: Seal | None = await asyncio.to_thread(sealer.seals.last)
    sealed = 0
    log.info(
        "sealer.started",
        position=head.position if head else 0,
        anchored_in=config.stream if anchor else None,
    )
    while not stop.is_set():
        page = await asyncio.to_thread(sealer.seal_page)
        if page:
            sealed += len(page)
            head = page[-1]
        if anchor is not None and head is not None and anchor.due(head):
            await anchor.publish(await asyncio.to_thread(_with_time, sealer, head))
        if not page:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), config.poll_interval)
    if anchor is not None and head is not None and head.position > anchor.position:
        await anchor.publish(await asyncio.to_thread(_with_time, sealer, head))
    log.info("sealer.stopped", position=head.position if head else 0, sealed=sealed)


def _with_time(sealer: Sealer, head: Seal) -> Seal:
    """The head as stored (with its sealed_at), the one to anchor."""
    stored = sealer.seals.read(head.position - 1, head.position)
    return stored[0] if stored else head


async def read_anchors(nc: Client, stream: str, timeout: float = 5.0) -> dict[int, bytes]:
    """Every anchored head in the stream, by position (empty when there is no such stream)."""
    js = nc.jetstream()
    try:
        info = await js.stream_info(stream)
    except nats.js.errors.NotFoundError:
        return {}
    last = info.state.last_seq
    if not info.state.messages:
        return {}
    anchors: dict[int, bytes] = {}
    subjects = info.config.subjects or []
    sub = await js.subscribe(
        subjects[0] if len(subjects) == 1 else ">",
        stream=stream,
        ordered_consumer=True,
        deliver_policy=DeliverPolicy.ALL,
    )
    try:
        while True:
            msg = await sub.next_msg(timeout=timeout)
            try:
                anchor = _anchor_decoder.decode(msg.data)
                anchors[anchor.position] = bytes.fromhex(anchor.hash)
            except (msgspec.DecodeError, ValueError) as e:
                raise AnchorError(
                    f"message {msg.metadata.sequence.stream} of stream {stream} is not a seal "
                    f"anchor: {e}"
                ) from None
            if msg.metadata.sequence.stream >= last:
                return anchors
    finally:
        await sub.unsubscribe()


def fetch_anchors(settings: NatsSettings, stream: str) -> dict[int, bytes]:
    """`read_anchors` from a synchronous caller (`crm verify`)."""

    async def go() -> dict[int, bytes]:
        async def quiet() -> None:
            return None

        nc = await connect(
            replace(settings, name="crm-verify"), max_reconnect_attempts=0, disconnected_cb=quiet
        )
        try:
            return await read_anchors(nc, stream)
        finally:
            await nc.close()

    return asyncio.run(go())
