"""`crm serve handlers` as real processes on the real nats-server and PostgreSQL: a queue group
shares the load, kill -9 loses no acknowledged command, SIGTERM answers what was taken."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from uuid import uuid4

import nats
import pytest
from nats.aio.client import Client
from nats.errors import NoRespondersError
from nats.errors import TimeoutError as NatsTimeout

from infra.engine import open_engine
from tests.pg import fresh_schema, pg_url_with_schema

pytestmark = [pytest.mark.nats, pytest.mark.postgres]

ROOT = Path(__file__).resolve().parents[2]
NATS_URL = "nats://127.0.0.1:4222"


@pytest.fixture
def pg_url() -> Iterator[str]:
    with fresh_schema("nats_roles") as schema:
        yield pg_url_with_schema(schema)


def start_handlers(url: str, prefix: str) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "CRM_STORE_URL": url,
        "CRM_NATS_URL": NATS_URL,
        "CRM_NATS_PREFIX": prefix,
        "CRM_LOG_LEVEL": "WARNING",
    }
    return subprocess.Popen(
        [sys.executable, "-m", "infra.cli", "serve", "handlers"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


async def instances(nc: Client, verb: str, name: str, wait: float = 0.5) -> list[dict[str, Any]]:
    """Every instance's answer to `$SRV.<verb>.<name>` (a request takes only the first)."""
    inbox = nc.new_inbox()
    sub = await nc.subscribe(inbox)
    await nc.publish(f"$SRV.{verb}.{name}", b"", reply=inbox)
    await nc.flush()
    found: list[dict[str, Any]] = []
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        try:
            msg = await sub.next_msg(timeout=max(0.01, deadline - time.monotonic()))
        except NatsTimeout:
            break
        if msg.data:  # an empty message is the server's "no responders" status
            found.append(json.loads(msg.data))
    await sub.unsubscribe()
    return found


async def wait_for_instances(nc: Client, name: str, count: int) -> None:
    for _ in range(200):
        if len(await instances(nc, "PING", name, 0.2)) >= count:
            return
    raise AssertionError(f"{count} instances of {name} did not come up")


async def register(nc: Client, prefix: str, n: int, command_id: str) -> dict[str, Any] | None:
    body = json.dumps(
        {"data": {"name": f"Customer {n}", "email": f"c{n}@example.com"}, "command_id": command_id}
    ).encode()
    try:
        msg = await nc.request(f"{prefix}.cmd.customer.register", body, timeout=10)
    except (NatsTimeout, NoRespondersError):
        return None  # not acknowledged: the client cannot know, and retries with the same id
    reply: dict[str, Any] = json.loads(msg.data)
    return reply


def test_two_handler_processes_in_one_queue_group_share_the_load(pg_url: str) -> None:
    prefix = f"t_{uuid4().hex[:10]}"
    procs = [start_handlers(pg_url, prefix) for _ in range(2)]

    async def go() -> None:
        nc = await nats.connect(NATS_URL)
        try:
            await wait_for_instances(nc, prefix, 2)
            replies = await asyncio.gather(
                *(register(nc, prefix, n, f"share-{n}") for n in range(300))
            )
            assert all(r is not None and r["ok"] for r in replies)
            stats = await instances(nc, "STATS", prefix)
            assert len(stats) == 2
            per_instance = [
                sum(e["num_requests"] for e in s["endpoints"] if e["name"] == "customer-register")
                for s in stats
            ]
            assert sum(per_instance) == 300
            assert all(n > 0 for n in per_instance), per_instance
        finally:
            await nc.drain()

    try:
        asyncio.run(go())
    finally:
        for p in procs:
            p.send_signal(signal.SIGTERM)
        assert [p.wait(timeout=30) for p in procs] == [0, 0]
    with open_engine(pg_url, env={}) as engine:
        assert len(engine.store.recorded_commands(f"share-{n}" for n in range(300))) == 300
        assert engine.store.head() > 0
        assert len(engine.store.read(0, 10_000)) == 300


def test_kill_9_of_a_handler_loses_no_acknowledged_command(pg_url: str) -> None:
    prefix = f"t_{uuid4().hex[:10]}"
    ids = [f"k9-{n}" for n in range(400)]
    first = start_handlers(pg_url, prefix)
    acknowledged: set[str] = set()

    async def load_then_kill() -> None:
        nc = await nats.connect(NATS_URL)
        try:
            await wait_for_instances(nc, prefix, 1)

            async def one(n: int) -> None:
                await asyncio.sleep(n * 0.002)  # a steady stream, so the kill lands mid-way
                reply = await register(nc, prefix, n, ids[n])
                if reply is not None and reply["ok"]:
                    acknowledged.add(ids[n])

            async def killer() -> None:
                while len(acknowledged) < 60:
                    await asyncio.sleep(0.005)
                first.send_signal(signal.SIGKILL)

            await asyncio.gather(killer(), *(one(n) for n in range(len(ids))))
        finally:
            await nc.drain()

    asyncio.run(load_then_kill())
    first.wait(timeout=10)
    assert 60 <= len(acknowledged) < len(ids)
    with open_engine(pg_url, env={}) as engine:
        assert acknowledged <= engine.store.recorded_commands(ids)

    second = start_handlers(pg_url, prefix)

    async def retry_everything() -> list[dict[str, Any] | None]:
        nc = await nats.connect(NATS_URL)
        try:
            await wait_for_instances(nc, prefix, 1)
            return await asyncio.gather(*(register(nc, prefix, n, ids[n]) for n in range(len(ids))))
        finally:
            await nc.drain()

    try:
        replies = asyncio.run(retry_everything())
    finally:
        second.send_signal(signal.SIGTERM)
        assert second.wait(timeout=30) == 0
    assert all(r is not None and r["ok"] for r in replies)
    with open_engine(pg_url, env={}) as engine:
        events = engine.store.read(0, 10_000)
        per_command: dict[str | None, int] = {}
        for e in events:
            per_command[e.command_id] = per_command.get(e.command_id, 0) + 1
        assert per_command == dict.fromkeys(ids, 1)  # every command once, none twice
