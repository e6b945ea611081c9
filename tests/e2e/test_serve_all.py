"""`crm serve all` as a user runs it, on the real nats-server and PostgreSQL: a client sends a
command, reads its own write with `min_position`, sees the change feed and the JetStream
event; every reply and message is checked against the published contract (`crm schema`)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NamedTuple
from uuid import uuid4

import jsonschema
import nats
import pytest
from nats.aio.client import Client

from tests.pg import fresh_schema, pg_url_with_schema

pytestmark = [pytest.mark.nats, pytest.mark.postgres]

ROOT = Path(__file__).resolve().parents[2]
NATS_URL = "nats://127.0.0.1:4222"


@pytest.fixture(scope="module")
def contract() -> dict[str, Any]:
    out = subprocess.run(
        [sys.executable, "-m", "infra.cli", "schema"],
        cwd=ROOT,
        capture_output=True,
        check=True,
        env={**os.environ, "CRM_STORE_URL": "sqlite:///:memory:"},
    )
    found: dict[str, Any] = json.loads(out.stdout)
    return found


@pytest.fixture
def pg_url() -> Iterator[str]:
    with fresh_schema("serve_all") as schema:
        yield pg_url_with_schema(schema)


def valid(body: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    jsonschema.validate(body, schema)
    return body


async def wait_for(nc: Client, name: str) -> None:
    for _ in range(300):
        try:
            await nc.request(f"$SRV.PING.{name}", b"", timeout=0.3)
            return
        except Exception:
            await asyncio.sleep(0.1)
    raise AssertionError(f"{name} did not come up")


class Served(NamedTuple):
    prefix: str
    stream: str
    log: Path


@pytest.fixture
def served_all(pg_url: str, tmp_path: Path) -> Iterator[Served]:
    """`crm serve all` in a process of its own; stopped with SIGTERM, which must exit 0."""
    prefix = f"t_{uuid4().hex[:10]}"
    served = Served(prefix, f"{prefix.upper()}_EVENTS", tmp_path / "serve.log")
    env = {
        **os.environ,
        "CRM_STORE_URL": pg_url,
        "CRM_NATS_URL": NATS_URL,
        "CRM_NATS_PREFIX": prefix,
        "CRM_LOG_LEVEL": "INFO",
    }
    with served.log.open("wb") as log_file:
        proc = subprocess.Popen(
            [sys.executable, "-m", "infra.cli", "serve", "all"],
            cwd=ROOT,
            env=env,
            stdout=log_file,
            stderr=subprocess.STDOUT,
        )
        try:
            yield served
        finally:
            proc.send_signal(signal.SIGTERM)
            code = proc.wait(timeout=60)
            asyncio.run(delete_stream(served.stream))
    assert code == 0, served.log.read_text()[-3000:]


async def delete_stream(stream: str) -> None:
    nc = await nats.connect(NATS_URL)
    with contextlib.suppress(Exception):
        await nc.jetstream().delete_stream(stream)
    await nc.drain()


async def command_then_read_own_write(
    nc: Client, prefix: str, replies: dict[str, Any], messages: dict[str, Any]
) -> tuple[str, int]:
    feed = await nc.subscribe(f"{prefix}.view.customer_profile.>")
    body = {
        "data": {"name": "Ada", "email": "ada@example.com"},
        "command_id": "all-1",
        "correlation_id": "corr-all",
    }
    valid(body, messages["command"])
    msg = await nc.request(f"{prefix}.cmd.customer.register", json.dumps(body).encode(), timeout=10)
    reply = valid(json.loads(msg.data), replies["ok"])
    customer, position = reply["streams"][0]["id"], reply["positions"][-1]
    # read-your-writes: the query waits until the view has applied the command
    query = valid(
        {"filters": {"customer_id": customer}, "min_position": position}, messages["query_request"]
    )
    msg = await nc.request(
        f"{prefix}.query.customer_profile", json.dumps(query).encode(), timeout=10
    )
    answer = valid(json.loads(msg.data), messages["query_reply"])
    assert answer["position"] >= position
    assert [r["customer_id"] for r in answer["rows"]] == [customer]
    assert answer["rows"][0]["name"] == "Ada"
    change = await feed.next_msg(timeout=10)
    assert change.subject == f"{prefix}.view.customer_profile.{customer}"
    note = valid(json.loads(change.data), messages["view_change"])
    assert note["position"] >= position and note["tombstone"] is False
    # a bad query is a typed error and the service keeps serving
    msg = await nc.request(
        f"{prefix}.query.customer_profile", b'{"filters": {"shoe": 1}}', timeout=10
    )
    valid(json.loads(msg.data), replies["error"])
    return customer, position


async def relayed_event(
    nc: Client, stream: str, position: int, messages: dict[str, Any]
) -> dict[str, Any]:
    js = nc.jetstream()
    for _ in range(100):
        with contextlib.suppress(Exception):
            if (await js.stream_info(stream)).state.messages >= 1:
                break
        await asyncio.sleep(0.1)
    raw = await js.get_msg(stream, 1)
    assert raw.headers is not None
    assert raw.headers["Nats-Msg-Id"] == str(position)
    event = valid(json.loads(raw.data), messages["event"])
    valid(event["data"], messages["event_data"][event["type"]])
    assert event["sealed"] and b"Ada" not in raw.data  # the name travels only as ciphertext
    assert raw.subject.endswith(".evt.customer.customer.registered")
    return event


def test_serve_all_answers_commands_queries_feed_and_relays_events(
    served_all: Served, contract: dict[str, Any]
) -> None:
    replies, messages = contract["replies"], contract["messages"]

    async def go() -> None:
        nc = await nats.connect(NATS_URL)
        try:
            await wait_for(nc, served_all.prefix)
            _, position = await command_then_read_own_write(
                nc, served_all.prefix, replies, messages
            )
            event = await relayed_event(nc, served_all.stream, position, messages)
            assert event["correlation_id"] == "corr-all"
        finally:
            await nc.drain()

    asyncio.run(go())


def test_serve_all_logs_json_lines_from_start_to_stop(served_all: Served) -> None:
    async def go() -> None:
        nc = await nats.connect(NATS_URL)
        await wait_for(nc, served_all.prefix)
        await nc.drain()

    asyncio.run(go())
    lines: list[dict[str, Any]] = []
    for _ in range(200):  # the handlers answer before every role has started
        text = served_all.log.read_text().splitlines()
        lines = [json.loads(x) for x in text if x.startswith("{")]
        if any(line.get("event") == "serve.started" for line in lines):
            break
        time.sleep(0.05)
    assert any(line.get("event") == "serve.started" for line in lines)
    assert all(line.get("roles") for line in lines if line.get("event") != "serve.started")
