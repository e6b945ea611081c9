"""The command service over the real nats-server and PostgreSQL: replies, idempotency, bad
messages, discovery, back-pressure and group commit (DESIGN.md, "NATS")."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager
from typing import Any
from uuid import UUID, uuid4

import jsonschema
import nats
import pytest
from nats.aio.client import Client

from domain.catalogue import EVENTS
from handlers.registry import COMMANDS
from infra.engine import open_engine
from infra.nats.service import CommandService
from infra.schema import contract
from tests.pg import fresh_schema, pg_url_with_schema

pytestmark = [pytest.mark.nats, pytest.mark.postgres]

NATS_URL = "nats://127.0.0.1:4222"
REPLIES = contract(EVENTS, COMMANDS)["replies"]


@pytest.fixture
def pg_url() -> Iterator[str]:
    with fresh_schema("nats_cmd") as schema:
        yield pg_url_with_schema(schema)


def check_reply(raw: bytes) -> dict[str, Any]:
    """Every reply the tests see must match the published contract (`crm schema`)."""
    body = json.loads(raw)
    jsonschema.validate(body, REPLIES["ok" if body.get("ok") else "error"])
    return body


@asynccontextmanager
async def served(url: str, **options: Any) -> AsyncIterator[tuple[Client, CommandService, str]]:
    prefix = f"t_{uuid4().hex[:10]}"
    engine = open_engine(url, env={})
    nc = await nats.connect(NATS_URL)
    service = CommandService(engine, nc, prefix=prefix, name=prefix, **options)
    await service.start()
    try:
        yield nc, service, prefix
    finally:
        await service.stop()
        await nc.drain()
        engine.close()


async def send(
    nc: Client, prefix: str, name: str, data: dict[str, Any], **extra: Any
) -> tuple[dict[str, Any], dict[str, str]]:
    headers = extra.pop("headers", None)
    body = json.dumps({"data": data, **extra}).encode()
    msg = await nc.request(f"{prefix}.cmd.{name}", body, timeout=10, headers=headers)
    return check_reply(msg.data), dict(msg.headers or {})


def run(coro: Callable[[], Awaitable[None]]) -> None:
    asyncio.run(coro())  # type: ignore[arg-type]


def test_a_command_is_answered_after_its_commit_with_streams_and_positions(pg_url: str) -> None:
    async def go() -> None:
        async with served(pg_url) as (nc, _, prefix):
            reply, _ = await send(
                nc, prefix, "customer.register", {"name": "Ada", "email": "ada@example.com"}
            )
            assert reply["ok"] is True
            customer = reply["streams"][0]["id"]
            call, _ = await send(
                nc,
                prefix,
                "interaction.log_call",
                {"customer_id": customer, "direction": "in", "duration_min": 7},
                correlation_id="corr-1",
                actor="agent:7",
            )
            assert call["ok"] is True and call["positions"][0] > reply["positions"][0]
        with open_engine(pg_url, env={}) as engine:
            events = engine.store.read_customer(UUID(customer))
            assert [e.type for e in events][-1] == "interaction.call_logged"
            assert events[-1].correlation_id == "corr-1"
            assert events[-1].actor == "agent:7"
            assert events[-1].position == call["positions"][0]

    run(go)


def test_a_retried_command_id_returns_the_first_answer_and_appends_once(pg_url: str) -> None:
    async def go() -> None:
        async with served(pg_url) as (nc, service, prefix):
            data = {"name": "Grace", "email": "grace@example.com"}
            first, _ = await send(nc, prefix, "customer.register", data, command_id="reg-1")
            again, _ = await send(nc, prefix, "customer.register", data, command_id="reg-1")
            assert again == first
            by_header, _ = await send(
                nc, prefix, "customer.register", data, headers={"Nats-Msg-Id": "reg-1"}
            )
            assert by_header == first
            # the same id many times at once, in one batch: one answer, one append
            replies = await asyncio.gather(
                *(
                    send(nc, prefix, "customer.register", {"name": "Bo"}, command_id="reg-2")
                    for _ in range(20)
                )
            )
            assert len({json.dumps(r, sort_keys=True) for r, _ in replies}) == 1
            head = service.engine.store.head()
            assert len(service.engine.store.read(0, 1000)) == 2
            assert head == replies[0][0]["positions"][-1]

    run(go)


@pytest.mark.parametrize(
    ("body", "code", "field"),
    [
        (b"{not json", "malformed_message", None),
        (b'{"data": {"name": "A"}, "colour": "red"}', "malformed_message", "colour"),
        (b'{"data": {"name": "A", "shoe_size": 3}}', "invalid_command", "shoe_size"),
        (b'{"data": {"name": 42}}', "invalid_command", "name"),
        (b'{"data": {}}', "invalid_command", "name"),
    ],
)
def test_bad_messages_get_typed_errors_and_the_service_keeps_serving(
    pg_url: str, body: bytes, code: str, field: str | None
) -> None:
    async def go() -> None:
        async with served(pg_url) as (nc, _, prefix):
            msg = await nc.request(f"{prefix}.cmd.customer.register", body, timeout=10)
            reply = check_reply(msg.data)
            assert reply["ok"] is False
            assert reply["error"]["code"] == code
            if field is not None:
                assert reply["error"]["details"].get("field") == field
            assert msg.headers is not None
            assert msg.headers["Nats-Service-Error-Code"] == "400"
            assert msg.headers["Crm-Error-Code"] == code
            assert msg.headers["Nats-Service-Error"]
            ok, _ = await send(nc, prefix, "customer.register", {"name": "Still here"})
            assert ok["ok"] is True

    run(go)


def test_a_refused_command_gets_its_domain_error_and_appends_nothing(pg_url: str) -> None:
    async def go() -> None:
        async with served(pg_url) as (nc, service, prefix):
            await send(nc, prefix, "customer.register", {"name": "A", "email": "x@example.com"})
            head = service.engine.store.head()
            reply, headers = await send(
                nc, prefix, "customer.register", {"name": "B", "email": "X@example.com"}
            )
            assert reply["ok"] is False
            assert reply["error"]["code"] == "contact_already_registered"
            assert headers["Nats-Service-Error-Code"] == "422"
            missing, _ = await send(
                nc,
                prefix,
                "interaction.log_call",
                {"customer_id": str(uuid4()), "direction": "in", "duration_min": 1},
            )
            assert missing["error"]["code"] == "customer_not_found"
            assert service.engine.store.head() == head

    run(go)


def test_srv_info_lists_every_command_endpoint_and_ping_answers(pg_url: str) -> None:
    async def go() -> None:
        async with served(pg_url) as (nc, _, prefix):
            info = json.loads((await nc.request(f"$SRV.INFO.{prefix}", b"", timeout=5)).data)
            subjects = {e["subject"] for e in info["endpoints"]}
            assert subjects == {f"{prefix}.cmd.{name}" for name in COMMANDS.names()}
            assert all(e["queue_group"] == "crm-handlers" for e in info["endpoints"])
            ping = json.loads((await nc.request(f"$SRV.PING.{prefix}", b"", timeout=5)).data)
            assert ping["name"] == prefix
            await send(nc, prefix, "customer.register", {"name": "Counted"})
            stats = json.loads((await nc.request(f"$SRV.STATS.{prefix}", b"", timeout=5)).data)
            served_ = {e["subject"]: e["num_requests"] for e in stats["endpoints"]}
            assert served_[f"{prefix}.cmd.customer.register"] == 1

    run(go)


def test_many_concurrent_commands_on_one_customer_are_group_committed_without_loss(
    pg_url: str,
) -> None:
    async def go() -> None:
        async with served(pg_url) as (nc, service, prefix):
            reg, _ = await send(nc, prefix, "customer.register", {"name": "Busy"})
            customer = reg["streams"][0]["id"]
            replies = await asyncio.gather(
                *(
                    send(
                        nc,
                        prefix,
                        "customer.grant_consent",
                        {"customer_id": customer, "consent_channel": f"c{i}"},
                    )
                    for i in range(60)
                )
            )
            assert all(r["ok"] for r, _ in replies)
            versions = sorted(r["streams"][0]["version"] for r, _ in replies)
            assert versions == list(range(2, 62))
            assert service.batches < service.commands  # commands shared transactions

    run(go)


def test_a_full_queue_answers_busy_and_every_answered_command_landed(pg_url: str) -> None:
    async def go() -> None:
        async with served(pg_url, max_pending=2, max_batch=1) as (nc, service, prefix):
            replies = await asyncio.gather(
                *(
                    send(nc, prefix, "customer.register", {"name": f"N{i}"}, command_id=f"b-{i}")
                    for i in range(80)
                )
            )
            busy = [r for r, h in replies if not r["ok"]]
            assert busy and all(r["error"]["code"] == "busy" for r in busy)
            assert all(h["Nats-Service-Error-Code"] == "503" for r, h in replies if not r["ok"])
            done = {f"b-{i}" for i, (r, _) in enumerate(replies) if r["ok"]}
            store = service.engine.store
            assert store.recorded_commands([f"b-{i}" for i in range(80)]) == done

    run(go)
