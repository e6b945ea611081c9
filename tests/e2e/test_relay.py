"""The relay from the log to JetStream over the real PostgreSQL and nats-server: every event
once, in log order, across restarts, kill -9 and poison rows; personal data only as ciphertext
(DESIGN.md, "NATS")."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from uuid import UUID, uuid4

import jsonschema
import msgspec
import pytest
from eventsourcing.persistence import StoredEvent
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.js.api import (
    AckPolicy,
    ConsumerConfig,
    DeliverPolicy,
    DiscardPolicy,
    StorageType,
    StreamConfig,
)
from structlog.testing import capture_logs

from domain.catalogue import EVENTS
from domain.customers.events import CustomerForgotten, CustomerRegistered
from domain.envelope import Envelope
from domain.interactions.events import CallLogged, WebActivity
from handlers.registry import COMMANDS
from infra.codec import EventCodec
from infra.nats.connect import NatsSettings, connect
from infra.nats.event_message import event_message_decoder
from infra.nats.relay import Relay, RelayConfig
from infra.schema import contract
from infra.store.backends import open_store
from infra.store.event_store import EventStore, StreamVersionConflict
from tests.event_types import TEST_EVENTS, V1_EVENTS, WidgetNamedV1
from tests.pg import fresh_schema, pg_url_with_schema

MESSAGES = contract(EVENTS, COMMANDS)["messages"]


def on_contract(raw: bytes) -> None:
    """Every event the tests see matches the published contract (`crm schema`)."""
    body = json.loads(raw)
    jsonschema.validate(body, MESSAGES["event"])
    jsonschema.validate(body["data"], MESSAGES["event_data"][body["type"]])


pytestmark = [pytest.mark.nats, pytest.mark.postgres]

NATS_URL = os.environ.get("CRM_TEST_NATS_URL", "nats://127.0.0.1:4222")
SETTINGS = NatsSettings(servers=(NATS_URL,), name="crm-test-relay")
ROOT = Path(__file__).resolve().parents[2]
T0 = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)
NAME, EMAIL, PHONE, NOTES = "Zsófia Kovács-Nagy", "zsofia@example.hu", "+36 30 123 4567", "secret"


@dataclass(frozen=True)
class Target:
    """A stream and subject prefix of the test's own."""

    stream: str
    prefix: str

    def config(self, **kw: float) -> RelayConfig:
        return RelayConfig(stream=self.stream, subject_prefix=self.prefix, **kw)  # type: ignore[arg-type]


@pytest.fixture
def url() -> Iterator[str]:
    with fresh_schema("relay") as schema:
        yield pg_url_with_schema(schema)


@pytest.fixture
def store(url: str) -> Iterator[EventStore]:
    s = open_store(url, env={})
    try:
        yield s
    finally:
        s.close()


@pytest.fixture
def target() -> Iterator[Target]:
    tag = uuid4().hex[:10]
    t = Target(stream=f"TEST_RELAY_{tag}", prefix=f"test.{tag}.evt")
    yield t

    async def delete() -> None:
        nc = await connect(SETTINGS)
        with suppress(Exception):
            await nc.jetstream().delete_stream(t.stream)
        await nc.close()

    asyncio.run(delete())


def run(coro: Callable[[], Awaitable[None]]) -> None:
    asyncio.run(coro())  # type: ignore[arg-type]


@asynccontextmanager
async def bus() -> AsyncIterator[Client]:
    nc = await connect(SETTINGS)
    try:
        yield nc
    finally:
        await nc.close()


# -- events --------------------------------------------------------------------------------


def registered(customer: UUID | None = None, **kw: object) -> Envelope:
    cid = customer or uuid4()
    return Envelope(
        stream_id=cid,
        stream_type="customer",
        version=1,
        occurred_at=T0,
        customer_id=cid,
        actor="employee:e-17",
        channel="web",
        correlation_id="corr-1",
        causation_id="cause-1",
        command_id="cmd-1",
        payload=CustomerRegistered(name=NAME, email=EMAIL, phone=PHONE, source="fair", **kw),  # type: ignore[arg-type]
    )


def call(customer: UUID) -> Envelope:
    return Envelope(
        stream_id=uuid4(),
        stream_type="interaction",
        version=1,
        occurred_at=T0,
        customer_id=customer,
        channel="call",
        payload=CallLogged(direction="in", duration_min=12, outcome="reached", notes=NOTES),
    )


def visit(customer: UUID, i: int = 0) -> Envelope:
    return Envelope(
        stream_id=uuid4(),
        stream_type="interaction",
        version=1,
        occurred_at=T0 + timedelta(seconds=i),
        customer_id=customer,
        channel="web",
        payload=WebActivity(action="visit", page=f"/p/{i % 50}"),
    )


def visits(n: int, start: int = 0) -> list[Envelope]:
    customer = uuid4()
    return [visit(customer, start + i) for i in range(n)]


def log_positions(store: EventStore) -> list[int]:
    out: list[int] = []
    while rows := store.read_rows(out[-1] if out else 0, 20_000):
        out.extend(r.position for r in rows)
    return out


# -- reading the stream back ---------------------------------------------------------------


async def stream_messages(nc: Client, target: Target, headers_only: bool = False) -> list[Msg]:
    """Every message of the stream, in stream order."""
    js = nc.jetstream()
    info = await js.stream_info(target.stream)
    total = info.state.messages
    sub = await js.pull_subscribe(
        f"{target.prefix}.>",
        stream=target.stream,
        config=ConsumerConfig(
            ack_policy=AckPolicy.NONE,
            deliver_policy=DeliverPolicy.ALL,
            headers_only=headers_only,
            inactive_threshold=30.0,
        ),
    )
    out: list[Msg] = []
    try:
        while len(out) < total:
            out.extend(await sub.fetch(min(5000, total - len(out)), timeout=10))
    finally:
        await sub.unsubscribe()
    seqs = [m.metadata.sequence.stream for m in out]
    assert seqs == list(range(1, total + 1))
    return out


def ids(messages: list[Msg]) -> list[int]:
    return [int((m.headers or {})["Nats-Msg-Id"]) for m in messages]


async def wait_until(check: Callable[[], Awaitable[bool]], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not await check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


async def last_id(nc: Client, target: Target) -> int:
    js = nc.jetstream()
    info = await js.stream_info(target.stream)
    if not info.state.messages:
        return 0
    msg = await js.get_msg(target.stream, seq=info.state.last_seq)
    return int((msg.headers or {})["Nats-Msg-Id"])


# -- tests ---------------------------------------------------------------------------------


class TestMessages:
    def test_every_event_once_with_its_headers_and_body_and_no_personal_plaintext(
        self, store: EventStore, target: Target
    ) -> None:
        cid = uuid4()
        events = [registered(cid), call(cid), visit(cid), registered(kind="organisation")]
        positions = store.append(events)
        forgotten = Envelope(
            stream_id=cid,
            stream_type="customer",
            version=2,
            occurred_at=T0,
            customer_id=cid,
            payload=CustomerForgotten(reason="request"),
        )
        positions += store.append([forgotten])
        events.append(forgotten)
        rows = store.read_rows(0, 100)

        async def go() -> None:
            async with bus() as nc:
                relay = Relay(store, nc, target.config())
                assert await relay.publish_until(positions[-1]) == positions[-1]
                await relay.close()
                messages = await stream_messages(nc, target)
            assert ids(messages) == positions
            for msg, event, row in zip(messages, events, rows, strict=True):
                pos = str(row.position)
                assert msg.subject == f"{target.prefix}.{event.stream_type}.{event.type}"
                h = msg.headers or {}
                assert h["Nats-Msg-Id"] == h["Crm-Position"] == pos
                assert h["Crm-Type"] == event.type
                assert h["Crm-Schema-Version"] == "1"
                assert h["Crm-Stream"] == str(event.stream_id)
                assert h["Crm-Version"] == str(event.version)
                assert h["Crm-Customer"] == str(event.customer_id)
                assert h.get("Crm-Correlation") == event.correlation_id
                assert h.get("Crm-Causation") == event.causation_id
                assert "Crm-Undecodable" not in h
                on_contract(msg.data)
                body = event_message_decoder.decode(msg.data)
                assert (body.position, body.stream_id, body.version) == (
                    row.position,
                    event.stream_id,
                    event.version,
                )
                assert (body.type, body.schema_version, body.stream_type) == (
                    event.type,
                    1,
                    event.stream_type,
                )
                assert body.occurred_at == event.occurred_at
                assert body.recorded_at == row.recorded_at
                assert (body.customer_id, body.actor, body.channel) == (
                    event.customer_id,
                    event.actor,
                    event.channel,
                )
                assert (body.correlation_id, body.causation_id, body.command_id) == (
                    event.correlation_id,
                    event.causation_id,
                    event.command_id,
                )
                spec = store.codec.registry.spec_of(type(event.payload))
                public = {
                    k: v
                    for k, v in msgspec.to_builtins(msgspec.structs.asdict(event.payload)).items()
                    if k not in spec.personal
                }
                assert body.data == public
                # the sealed bytes are those of the log, whole, and nothing else is sealed
                assert body.sealed == store.codec.split(row).sealed
                assert (body.sealed is not None) == bool(spec.personal)
                raw = msg.data + repr(h).encode()
                for secret in (NAME, EMAIL, PHONE, NOTES):
                    assert secret.encode() not in raw
                    assert msgspec.json.encode(secret)[1:-1] not in raw

        run(go)

    def test_sealed_bytes_on_the_bus_open_with_the_customers_key(
        self, store: EventStore, target: Target
    ) -> None:
        """What `sealed` carries is the log's ciphertext: the key holder decodes the event."""
        [pos] = store.append([registered()])

        async def go() -> None:
            async with bus() as nc:
                relay = Relay(store, nc, target.config())
                await relay.publish_until(pos)
                await relay.close()
                [msg] = await stream_messages(nc, target)
            body = event_message_decoder.decode(msg.data)
            [row] = store.read_rows(0, 10)
            assert body.sealed is not None and row.state.endswith(
                body.sealed + len(body.sealed).to_bytes(4, "big")
            )
            assert store.decode_rows([row])[0].payload.name == NAME

        run(go)

    def test_a_sealed_event_of_an_older_version_goes_out_in_its_stored_shape(
        self, url: str, target: Target
    ) -> None:
        store = open_store(url, env={}, registry=TEST_EVENTS)
        try:
            cid = uuid4()
            old = EventCodec(V1_EVENTS, store.keyring)
            v1 = Envelope(
                stream_id=cid,
                stream_type="widget",
                version=1,
                occurred_at=T0,
                customer_id=cid,
                payload=WidgetNamedV1(full_name="Grace Hopper", size=3),
            )
            [pos] = store.append_stored([old.encode(v1)])

            async def go() -> None:
                async with bus() as nc:
                    relay = Relay(store, nc, target.config())
                    await relay.publish_until(pos)
                    await relay.close()
                    [msg] = await stream_messages(nc, target)
                assert (msg.headers or {})["Crm-Schema-Version"] == "1"
                body = event_message_decoder.decode(msg.data)
                assert (body.schema_version, body.data) == (1, {"size": 3})
                assert body.sealed is not None and b"Grace" not in msg.data

            run(go)
        finally:
            store.close()


class TestPoison:
    def test_foreign_and_corrupt_rows_go_out_marked_and_the_relay_goes_on(
        self, store: EventStore, target: Target
    ) -> None:
        first = store.append([registered()])
        foreign = store.append_stored([StoredEvent(uuid4(), 1, "foreign.thing", b"not ours")])
        good = store.codec.encode(registered())
        corrupt = store.append_stored(
            [StoredEvent(good.originator_id, 1, good.topic, good.state[:30])]
        )
        unknown = store.append_stored(
            [
                StoredEvent(
                    uuid4(), 1, "customer.teleported", store.codec.encode(visit(uuid4())).state
                )
            ]
        )
        last = store.append([visit(uuid4())])
        positions = first + foreign + corrupt + unknown + last

        async def go() -> None:
            async with bus() as nc:
                relay = Relay(store, nc, target.config())
                with capture_logs() as logs:
                    assert await relay.publish_until(positions[-1]) == positions[-1]
                await relay.close()
                messages = await stream_messages(nc, target)
            assert ids(messages) == positions
            bad = {p: m for p, m in zip(positions, messages, strict=True) if p not in first + last}
            assert set(bad) == {foreign[0], corrupt[0], unknown[0]}
            for position, msg in bad.items():
                h = msg.headers or {}
                assert h["Crm-Undecodable"]
                body = event_message_decoder.decode(msg.data)
                assert body.data is None and body.sealed is None
                assert body.type == h["Crm-Type"] and body.position == position
            assert event_message_decoder.decode(bad[foreign[0]].data).type == "foreign.thing"
            assert bad[foreign[0]].subject == f"{target.prefix}.undecodable.foreign.thing"
            warned = [e["position"] for e in logs if e["event"] == "relay.undecodable"]
            assert warned == [foreign[0], corrupt[0], unknown[0]]

        run(go)


class TestExactlyOnce:
    def test_a_restarted_relay_resumes_after_the_last_position_it_published(
        self, store: EventStore, target: Target
    ) -> None:
        store.append(visits(300), bulk=True)
        cid = uuid4()
        store.append([registered(cid)])
        with pytest.raises(StreamVersionConflict):  # a rolled-back insert: a hole in positions
            store.append([registered(cid)])

        async def session(nc: Client, more: list[Envelope]) -> list[int]:
            relay = Relay(store, nc, target.config(page=100, ack_every=7))
            stop = asyncio.Event()
            task = asyncio.create_task(relay.run(stop))
            added = store.append(more, bulk=True)  # while it runs: followed live
            head = store.head()

            async def done() -> bool:
                return relay.position >= head

            await wait_until(done, 30, f"the relay to reach {head}")
            stop.set()
            await asyncio.wait_for(task, 10)
            await relay.close()
            return added

        async def go() -> None:
            async with bus() as nc:
                await session(nc, visits(50))
                assert await last_id(nc, target) == store.head()
                store.append(visits(120), bulk=True)  # while no relay runs
                await session(nc, visits(30))
                messages = await stream_messages(nc, target)
            assert ids(messages) == log_positions(store)
            assert ids(messages) != list(range(1, len(messages) + 1))  # the hole is there

        run(go)

    def test_two_relays_at_once_neither_duplicate_nor_reorder(
        self, store: EventStore, target: Target
    ) -> None:
        """The chain headers make a second publisher harmless (it is refused or deduplicated)."""
        for i in range(4):
            store.append(visits(1000, i * 1000), bulk=True)
        head = store.head()

        async def go() -> None:
            async with bus() as nc1, bus() as nc2:
                relays = [
                    Relay(store, nc, target.config(page=300, ack_every=50)) for nc in (nc1, nc2)
                ]
                done = await asyncio.wait_for(
                    asyncio.gather(*(r.publish_until(head) for r in relays)), 60
                )
                assert done == [head, head]
                for r in relays:
                    await r.close()
                messages = await stream_messages(nc1, target, headers_only=True)
            assert ids(messages) == log_positions(store)

        run(go)

    def test_refused_publishes_stop_the_window_and_it_resumes_from_the_stream(
        self, store: EventStore, target: Target
    ) -> None:
        """A stream that refuses messages past a limit: the refused one and every one chained
        after it fail, the relay re-reads the stream's end and resumes when it accepts again."""
        store.append(visits(3000), bulk=True)
        head = store.head()
        limited = StreamConfig(
            name=target.stream,
            subjects=[f"{target.prefix}.>"],
            storage=StorageType.FILE,
            max_msgs=1234,
            discard=DiscardPolicy.NEW,
        )

        async def go() -> None:
            async with bus() as nc:
                js = nc.jetstream()
                await js.add_stream(limited)
                relay = Relay(store, nc, target.config(page=500, ack_every=100, max_backoff=0.2))
                stop = asyncio.Event()
                with capture_logs() as logs:
                    task = asyncio.create_task(relay.run(stop))

                    async def refused() -> bool:
                        return any(e["event"] == "relay.publish_failed" for e in logs)

                    await wait_until(refused, 20, "a refused publish")
                    assert (await js.stream_info(target.stream)).state.messages == 1234
                    await js.update_stream(limited.evolve(max_msgs=-1))

                    async def done() -> bool:
                        return relay.position >= head

                    await wait_until(done, 30, "the relay to publish the rest")
                    stop.set()
                    await asyncio.wait_for(task, 10)
                await relay.close()
                resumed = [e["position"] for e in logs if e["event"] == "relay.resumed"]
                assert resumed[0] == 0 and 1234 in resumed[1:]
                messages = await stream_messages(nc, target, headers_only=True)
            assert ids(messages) == log_positions(store)

        run(go)

    def test_kill_9_mid_way_then_restart_publishes_every_position_once_in_order(
        self, url: str, store: EventStore, target: Target, tmp_path: Path
    ) -> None:
        total, batch = 100_000, 10_000
        for i in range(0, total // 2, batch):
            store.append(visits(batch, i), bulk=True)
        output = tmp_path / "relay.log"

        def start() -> subprocess.Popen[bytes]:
            code = (
                "from infra.nats.relay import RelayConfig, run_relay\n"
                "from infra.nats.connect import NatsSettings\n"
                f"run_relay({url!r}, NatsSettings(servers=({NATS_URL!r},)), "
                f"config=RelayConfig(stream={target.stream!r}, subject_prefix={target.prefix!r}))\n"
            )
            env = {**os.environ, "PYTHONPATH": str(ROOT), "CRM_ENV": "development"}
            env.pop("CRM_MASTER_KEY", None)
            with output.open("ab") as out:
                return subprocess.Popen(
                    [sys.executable, "-c", code], cwd=ROOT, env=env, stdout=out, stderr=out
                )

        async def go() -> None:
            async with bus() as nc:
                js = nc.jetstream()

                async def stored() -> int:
                    try:
                        return (await js.stream_info(target.stream)).state.messages
                    except Exception:
                        return 0

                relay = start()
                try:
                    for i in range(total // 2, total, batch):  # appended while it publishes
                        store.append(visits(batch, i), bulk=True)

                    async def some() -> bool:
                        return await stored() >= 20_000

                    await wait_until(some, 30, "the relay to publish 20,000 events")
                    relay.send_signal(signal.SIGKILL)
                    relay.wait(10)
                    at_kill = await stored()
                    assert 0 < at_kill < total, at_kill
                    relay = start()
                    head = store.head()

                    async def all_there() -> bool:
                        return await stored() >= total and await last_id(nc, target) == head

                    await wait_until(all_there, 40, "the restarted relay to publish the log")
                    relay.send_signal(signal.SIGTERM)
                    assert relay.wait(10) == 0, output.read_text()[-3000:]
                finally:
                    if relay.poll() is None:
                        relay.kill()
                        relay.wait()
                messages = await stream_messages(nc, target, headers_only=True)
            assert ids(messages) == log_positions(store)
            assert len(messages) == total
            text = output.read_text()
            assert text.count("relay.resumed") == 2 and "relay.stopped" in text

        run(go)
