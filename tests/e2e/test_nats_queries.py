"""`crm.query.<projection>` on the real NATS server over a real PostgreSQL store."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable, Iterator
from typing import Any
from uuid import UUID, uuid4

import jsonschema
import msgspec
import pytest
from nats.aio.client import Client
from nats.aio.msg import Msg

from domain.catalogue import EVENTS
from handlers.decision import CommandContext
from handlers.registry import COMMANDS
from infra.engine import Engine, open_engine
from infra.nats.connect import NatsSettings, connect
from infra.nats.queries import QueryService, serve_queries
from infra.projection_db import projection_db
from infra.projector import open_runner
from infra.schema import contract
from projections.runner import Runner
from tests.pg import fresh_schema, pg_url_with_schema

pytestmark = [pytest.mark.nats, pytest.mark.postgres]

CTX = CommandContext(actor="test", channel="test")
CONTRACT = contract(EVENTS, COMMANDS)
SETTINGS = NatsSettings(name="crm-query-test")


@pytest.fixture
def url() -> Iterator[str]:
    with fresh_schema("query") as schema:
        yield pg_url_with_schema(schema)


@pytest.fixture
def engine(url: str) -> Iterator[Engine]:
    with open_engine(url, env={}) as e:
        yield e


@pytest.fixture
def runner(engine: Engine) -> Iterator[Runner]:
    with open_runner(engine) as r:
        yield r


def register(engine: Engine, name: str, **data: Any) -> tuple[UUID, int]:
    result = engine.bus.execute_json("customer.register", {"name": name, **data}, CTX)
    return result.streams[0].id, max(result.positions)


Body = dict[str, Any]


async def ask(nc: Client, subject: str, query: Body | None = None) -> tuple[Body, Msg]:
    body = query or {}
    msg = await nc.request(subject, msgspec.json.encode(body), timeout=10)
    reply = msgspec.json.decode(msg.data)
    # every reply the tests see matches the published contract (`crm schema`)
    if reply.get("ok"):
        jsonschema.validate(body, CONTRACT["messages"]["query_request"])
        jsonschema.validate(reply, CONTRACT["messages"]["query_reply"])
    else:
        jsonschema.validate(reply, CONTRACT["replies"]["error"])
    return reply, msg


def with_service(
    engine: Engine, test: Callable[[Client, str], Awaitable[None]], prefix: str | None = None
) -> None:
    """Run `test(nc, prefix)` beside a query service under a prefix of its own."""
    prefix = prefix or f"t{uuid4().hex[:10]}"

    async def main() -> None:
        nc = await connect(SETTINGS)
        db = projection_db(engine.store)
        service = QueryService(db, prefix=prefix)
        try:
            await service.start(nc)
            await test(nc, prefix)
        finally:
            await service.stop()
            await nc.drain()
            db.close()

    asyncio.run(main())


def test_a_query_returns_rows_with_filters_and_paging(engine: Engine, runner: Runner) -> None:
    ids = {register(engine, f"C{i}", stage="lead" if i % 2 else "customer")[0] for i in range(5)}
    runner.catch_up()
    head = engine.store.head()

    async def test(nc: Client, prefix: str) -> None:
        subject = f"{prefix}.query.customer_profile"
        everything, _ = await ask(nc, subject)
        assert everything["ok"] is True and everything["table"] == "customer_profile"
        assert everything["position"] == head and everything["next_offset"] is None
        assert {UUID(r["customer_id"]) for r in everything["rows"]} == ids

        pages, offset = [], 0
        while offset is not None:
            page, _ = await ask(nc, subject, {"order_by": "-name", "limit": 2, "offset": offset})
            pages.append([r["name"] for r in page["rows"]])
            offset = page["next_offset"]
        assert pages == [["C4", "C3"], ["C2", "C1"], ["C0"]]

        leads, _ = await ask(nc, subject, {"filters": {"stage": "lead", "forgotten": False}})
        assert sorted(r["name"] for r in leads["rows"]) == ["C1", "C3"]
        one = next(iter(ids))
        row, _ = await ask(nc, subject, {"filters": {"customer_id": str(one)}})
        [found] = row["rows"]
        assert found["customer_id"] == str(one) and isinstance(found["contacts"], list)
        assert isinstance(found["registered_at"], str) and found["forgotten"] is False
        none, _ = await ask(nc, subject, {"filters": {"name": "nobody"}})
        assert none["rows"] == [] and none["position"] == head

        merges, _ = await ask(nc, f"{prefix}.query.timeline", {"table": "timeline_merges"})
        assert merges["ok"] is True and merges["rows"] == []

    with_service(engine, test)


@pytest.mark.parametrize(
    "case",
    [
        ("customer_profile", {"filters": {"password": "x"}}, "unknown_column", "400"),
        ("customer_profile", {"order_by": "name; DROP TABLE x"}, "unknown_column", "400"),
        ("customer_profile", {"filters": {"age": "old"}}, "invalid_filter", "400"),
        ("customer_profile", {"filters": {"customer_id": "not-a-uuid"}}, "invalid_filter", "400"),
        ("customer_profile", {"filters": {"contacts": "[]"}}, "invalid_filter", "400"),
        ("customer_profile", {"table": "timeline"}, "unknown_table", "404"),
        ("customer_profile", {"limit": 5000}, "invalid_query", "400"),
        ("customer_profile", {"colour": "red"}, "invalid_query", "400"),
        ("no_such_view", {}, "unknown_projection", "404"),
        ("a.b", {}, "unknown_projection", "404"),
    ],
)
def test_a_bad_query_gets_a_typed_error_and_the_service_keeps_serving(
    engine: Engine, runner: Runner, case: tuple[str, Body, str, str]
) -> None:
    subject, query, code, status = case
    register(engine, "Ada")
    runner.catch_up()

    async def test(nc: Client, prefix: str) -> None:
        reply, msg = await ask(nc, f"{prefix}.query.{subject}", query)
        assert reply["ok"] is False and reply["error"]["code"] == code, reply
        assert reply["error"]["message"]
        assert msg.headers and msg.headers["Nats-Service-Error-Code"] == status
        fine, _ = await ask(nc, f"{prefix}.query.customer_profile")
        assert fine["ok"] is True and [r["name"] for r in fine["rows"]] == ["Ada"]

    with_service(engine, test)


def test_min_position_waits_for_the_projector_then_reads_the_write(
    engine: Engine, runner: Runner, url: str
) -> None:
    """Read-your-writes through `serve_queries`: the query is sent before the projector runs."""
    prefix = f"t{uuid4().hex[:10]}"
    cid, position = register(engine, "Grace")
    halt = threading.Event()
    projector = threading.Thread(target=runner.follow, args=(halt, 0.05))

    async def main() -> None:
        stop = asyncio.Event()
        server = asyncio.create_task(serve_queries(url, SETTINGS, stop, prefix=prefix, env={}))
        nc = await connect(SETTINGS)
        try:
            for _ in range(200):  # the service is up once it answers
                try:
                    await nc.request(f"{prefix}.query.timeline", b"{}", timeout=0.5)
                    break
                except Exception:
                    await asyncio.sleep(0.05)
            query = {"filters": {"customer_id": str(cid)}, "min_position": position}
            asked = asyncio.create_task(ask(nc, f"{prefix}.query.customer_profile", query))
            await asyncio.sleep(0.3)
            assert not asked.done()  # nothing applied yet: it waits
            projector.start()
            reply, _ = await asked
            assert reply["ok"] is True and reply["position"] >= position
            assert [r["name"] for r in reply["rows"]] == ["Grace"]
        finally:
            stop.set()
            await server
            await nc.drain()

    try:
        asyncio.run(main())
    finally:
        halt.set()
        if projector.is_alive():
            projector.join()


def test_a_position_the_view_never_reaches_times_out_with_not_caught_up(
    engine: Engine, runner: Runner
) -> None:
    _, position = register(engine, "Ada")
    runner.catch_up()

    async def test(nc: Client, prefix: str) -> None:
        query = {"min_position": position + 1000, "timeout_ms": 300}
        reply, msg = await ask(nc, f"{prefix}.query.customer_profile", query)
        assert reply["error"]["code"] == "not_caught_up"
        assert reply["error"]["details"]["reached"] == position
        assert msg.headers and msg.headers["Nats-Service-Error-Code"] == "408"
        other, _ = await ask(nc, f"{prefix}.query.customer_profile", {"min_position": position})
        assert other["ok"] is True and other["position"] >= position

    with_service(engine, test)
