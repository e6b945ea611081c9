"""The relay from the log to JetStream, events/s, against a raw async publish of the same messages.

setup     (not timed) `--events` CustomerRegistered envelopes of distinct customers (personal
          fields sealed) with a share of plain customer.forgotten ones, encoded once and cached
          under bench/.cache/, appended (bulk path) into a fresh PostgreSQL schema; then every
          message the relay would send is built in memory from the log (same subjects, headers,
          JSON bodies, including the chain headers).
subject   `infra.nats.relay.Relay.publish_until(head)` into a fresh file-storage stream: reads
          the log in pages (next page read in a thread while the current one is published),
          builds the messages, publishes them chained (`Nats-Expected-Last-Msg-Id`), with an
          acknowledgement requested every `--ack-every` messages and on the last of each page;
          timed from the first read to the last acknowledgement.
baseline  nats-py's own async JetStream publish (`js.publish_async`, its default window of 4000
          pending acknowledgements, then `publish_async_completed()`) of the very same pre-built
          messages into another fresh stream: no read, no encoding.
extra     `lean`: the relay's own publish path (plain `nc.publish`, acknowledgement every
          `--ack-every`) over the same pre-built messages, no read, no encoding: what the relay
          would reach if reading and building cost nothing.
value     the best of `--repeat` subject runs; baseline the best of as many baseline runs (they
          alternate which goes first); ratio = value / baseline (target >= 0.8). Every run checks
          that its stream holds each log position exactly once, in order (count and last id),
          and deletes its stream.

    .venv/bin/python bench/relay.py [--events 200000] [--repeat 3] [--ack-every 250]
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import argparse
import asyncio
import contextlib
import itertools
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import replace
from uuid import UUID, uuid4

import msgspec
import psycopg
from eventsourcing.persistence import StoredEvent
from nats.aio.client import Client
from nats.js.api import StorageType, StreamConfig

from bench._common import (
    CACHE_DIR,
    bench_schema,
    customer_envelopes,
    emit,
    fmt_rate,
    log,
    payload_fingerprint,
    pg_url,
    summary,
    with_schema,
)
from bench.append import _MemoryVault
from domain.catalogue import EVENTS
from domain.customers.events import CustomerForgotten, CustomerRegistered
from infra.codec import EventCodec
from infra.crypto import DEV_MASTER_KEY, KeyRing
from infra.nats.connect import NatsSettings, connect
from infra.nats.event_message import (
    HEADER_EXPECTED_LAST_MSG_ID,
    HEADER_MSG_ID,
    MessageBuilder,
    Outgoing,
)
from infra.nats.relay import Relay, RelayConfig
from infra.store.backends import open_store
from infra.store.event_store import EventStore

FIXTURE_FORMAT = 1
FORGOTTEN_SHARE = 0.2


def load_fixture(n: int, seed: int) -> list[StoredEvent]:
    """The stored rows, encoded once (sealed) and cached; generation is not timed."""
    shape = payload_fingerprint(CustomerRegistered, CustomerForgotten)
    path = CACHE_DIR / f"relay-v{FIXTURE_FORMAT}-{n}-{seed}-{shape}.msgpack"
    if path.exists():
        rows = msgspec.msgpack.decode(path.read_bytes(), type=list[tuple[bytes, int, str, bytes]])
        log(f"fixture: {len(rows):,} rows from {path.relative_to(CACHE_DIR.parent.parent)}")
    else:
        log(f"fixture: generating {n:,} envelopes ...")
        envelopes = customer_envelopes(n, seed, forgotten_share=FORGOTTEN_SHARE)
        codec = EventCodec(EVENTS, KeyRing(_MemoryVault(), DEV_MASTER_KEY, cache_size=n + 1))
        rows = []
        for i in range(0, n, 10_000):
            chunk = envelopes[i : i + 10_000]
            for e, s in zip(chunk, codec.encode_many(chunk), strict=True):
                rows.append((e.stream_id.bytes, s.originator_version, s.topic, s.state))
        CACHE_DIR.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_bytes(msgspec.msgpack.encode(rows))
        tmp.replace(path)
        log(f"fixture: cached in {path.relative_to(CACHE_DIR.parent.parent)}")
    return [StoredEvent(UUID(bytes=i), v, t, s) for i, v, t, s in rows]


def prebuilt(store: EventStore, prefix: str) -> list[Outgoing]:
    """Every message the relay sends for the log, chain headers included, built up front."""
    builder = MessageBuilder(store.codec, prefix)
    out: list[Outgoing] = []
    after = 0
    while rows := store.read_rows(after, 10_000):
        out.extend(builder.build(rows))
        after = rows[-1].position
    for (_, msg_id, _, _, _), (_, _, _, headers, _) in itertools.pairwise(out):
        headers[HEADER_EXPECTED_LAST_MSG_ID] = msg_id
    return out


class Streams:
    """Fresh streams on one connection, each checked and deleted after its run."""

    def __init__(self, nc: Client, prefix: str) -> None:
        self.nc = nc
        self.js = nc.jetstream()
        self.prefix = prefix

    @contextlib.asynccontextmanager
    async def fresh(self):  # type: ignore[no-untyped-def]
        name = f"BENCH_RELAY_{uuid4().hex[:10]}"
        await self.js.add_stream(
            StreamConfig(name=name, subjects=[f"{self.prefix}.>"], storage=StorageType.FILE)
        )
        try:
            yield name
        finally:
            await self.js.delete_stream(name)

    async def check(self, name: str, count: int, last_position: int) -> None:
        info = await self.js.stream_info(name)
        last = await self.js.get_msg(name, seq=info.state.last_seq)
        got = (info.state.messages, int((last.headers or {})[HEADER_MSG_ID]))
        if got != (count, last_position):
            raise SystemExit(
                f"stream {name}: (messages, last id) {got}, want {count, last_position}"
            )


async def publish_async(nc: Client, messages: list[Outgoing]) -> None:
    """The baseline: nats-py's JetStream async publish, default window."""
    js = nc.jetstream()
    publish = js.publish_async
    for _, _, subject, headers, body in messages:
        await publish(subject, body, headers=headers)
    await js.publish_async_completed()


async def lean(nc: Client, messages: list[Outgoing], ack_every: int, window: int) -> None:
    """The relay's publish path alone: plain publishes, an acknowledgement every `ack_every`."""
    inbox = nc.new_inbox()
    waiting: dict[str, asyncio.Future[bytes]] = {}

    async def on_ack(msg) -> None:  # type: ignore[no-untyped-def]
        future = waiting.pop(msg.subject[len(inbox) + 1 :], None)
        if future is not None and not future.done():
            future.set_result(msg.data)

    sub = await nc.subscribe(f"{inbox}.*", cb=on_ack)
    in_flight: deque[asyncio.Future[bytes]] = deque()
    loop = asyncio.get_running_loop()
    last = len(messages) - 1
    try:
        for i, (_, _, subject, headers, body) in enumerate(messages):
            if i % ack_every == ack_every - 1 or i == last:
                future = waiting[str(i)] = loop.create_future()
                await nc.publish(subject, body, reply=f"{inbox}.{i}", headers=headers)
                in_flight.append(future)
                if len(in_flight) >= window:
                    await asyncio.wait_for(in_flight.popleft(), 10)
            else:
                await nc.publish(subject, body, headers=headers)
        for future in in_flight:
            if b'"error"' in await asyncio.wait_for(future, 10):
                raise SystemExit("lean publish refused")
    finally:
        await sub.unsubscribe()


async def timed_async(run: Callable[[], Awaitable[object]]) -> float:
    t0 = time.perf_counter()
    await run()
    return time.perf_counter() - t0


async def measure(store: EventStore, args: argparse.Namespace) -> dict[str, list[float]]:
    prefix = f"bench.{uuid4().hex[:8]}.evt"
    messages = prebuilt(store, prefix)
    n, head = len(messages), messages[-1][0]
    log(f"messages: {n:,} pre-built, {sum(len(m[4]) for m in messages) / n:.0f} bytes of body")
    config = RelayConfig(subject_prefix=prefix, page=args.page, ack_every=args.ack_every)
    nc = await connect(NatsSettings.from_env(name="crm-bench-relay"))
    streams = Streams(nc, prefix)
    rates: dict[str, list[float]] = {"subject": [], "baseline": [], "lean": []}
    try:
        for r in range(args.repeat):
            order = (
                ("subject", "baseline", "lean") if r % 2 == 0 else ("baseline", "subject", "lean")
            )
            for side in order:
                async with streams.fresh() as name:
                    if side == "subject":
                        relay = Relay(store, nc, replace(config, stream=name))
                        seconds = await timed_async(lambda: relay.publish_until(head))  # noqa: B023
                        await relay.close()
                    elif side == "baseline":
                        seconds = await timed_async(lambda: publish_async(nc, messages))
                    else:
                        seconds = await timed_async(
                            lambda: lean(nc, messages, args.ack_every, config.max_acks_in_flight)
                        )
                    await streams.check(name, n, head)
                rates[side].append(n / seconds)
                log(f"  run {r + 1} {side:<8} {fmt_rate(n / seconds)}  ({seconds:.2f} s)")
    finally:
        await nc.drain()
    return rates


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--repeat", type=int, default=3, help="runs of each side")
    parser.add_argument("--page", type=int, default=RelayConfig.page)
    parser.add_argument("--ack-every", type=int, default=RelayConfig.ack_every)
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args()

    stored = load_fixture(args.events, args.seed)
    with bench_schema("relay") as schema:
        store = open_store(with_schema(pg_url(), schema), env={})
        try:
            t0 = time.perf_counter()
            for i in range(0, len(stored), 10_000):
                store.append_stored(stored[i : i + 10_000], bulk=True)
            with psycopg.connect(pg_url(), autocommit=True) as conn:
                conn.execute(f'ANALYZE "{schema}".stored_events')
                with contextlib.suppress(psycopg.Error):
                    conn.execute("CHECKPOINT")
            log(f"setup: {len(stored):,} events appended in {time.perf_counter() - t0:.1f} s")
            del stored
            rates = asyncio.run(measure(store, args))
        finally:
            store.close()

    subject, baseline, lean_rates = (
        summary(rates["subject"]),
        summary(rates["baseline"]),
        summary(rates["lean"]),
    )
    ratio = subject["best"] / baseline["best"]
    log(
        f"relay {fmt_rate(subject['best'])} best; js.publish_async {fmt_rate(baseline['best'])}; "
        f"lean publish {fmt_rate(lean_rates['best'])}; ratio {ratio:.3f} (target >= 0.8)"
    )
    emit(
        {
            "bench": "relay",
            "value": round(subject["best"]),
            "unit": "events/s",
            "baseline": round(baseline["best"]),
            "ratio": round(ratio, 3),
            "median": round(subject["median"]),
            "baseline_median": round(baseline["median"]),
            "lean": round(lean_rates["best"]),
            "ratio_lean": round(subject["best"] / lean_rates["best"], 3),
            "events": args.events,
            "page": args.page,
            "ack_every": args.ack_every,
            "repeat": args.repeat,
            "seed": args.seed,
        }
    )


if __name__ == "__main__":
    main()
