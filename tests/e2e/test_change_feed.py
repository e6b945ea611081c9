"""The change feed `crm.view.<projection>.<key>` on the real NATS server, fed by the runner."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID, uuid4

import msgspec
import pytest
from nats.aio.msg import Msg

from domain.customers.events import CustomerForgotten
from domain.envelope import Envelope
from handlers.decision import CommandContext
from infra.engine import Engine, open_engine
from infra.nats.connect import NatsSettings, connect
from infra.nats.feed import FeedPublisher, ViewChange, changes, run_projector_with_feed
from infra.projector import open_runner
from projections.runner import Runner
from tests.pg import fresh_schema, pg_url_with_schema

pytestmark = [pytest.mark.nats, pytest.mark.postgres]

CTX = CommandContext(actor="test", channel="test")
SETTINGS = NatsSettings(name="crm-feed-test")


@pytest.fixture
def url() -> Iterator[str]:
    with fresh_schema("feed") as schema:
        yield pg_url_with_schema(schema)


@pytest.fixture
def engine(url: str) -> Iterator[Engine]:
    with open_engine(url, env={}) as e:
        yield e


@pytest.fixture
def runner(engine: Engine) -> Iterator[Runner]:
    with open_runner(engine) as r:
        yield r


def run(engine: Engine, command: str, data: dict[str, Any]) -> Any:
    return engine.bus.execute_json(command, data, CTX)


def register(engine: Engine, name: str) -> UUID:
    result = run(engine, "customer.register", {"name": name, "email": f"{name}@x.org"})
    cid: UUID = result.streams[0].id
    return cid


def follow_and_listen(
    engine: Engine, runner: Runner, subjects: str, until: int
) -> tuple[list[Msg], FeedPublisher]:
    """Run the projector with its feed until every view has applied `until`; the messages
    on `<prefix>.<subjects>` meanwhile."""
    prefix = f"t{uuid4().hex[:10]}"

    async def main() -> tuple[list[Msg], FeedPublisher]:
        nc = await connect(SETTINGS)
        got: list[Msg] = []

        async def take(msg: Msg) -> None:
            got.append(msg)

        await nc.subscribe(f"{prefix}.{subjects}", cb=take)
        await nc.flush()
        stop = asyncio.Event()
        projector = asyncio.create_task(
            run_projector_with_feed(runner, nc, stop, prefix=prefix, poll=0.05)
        )
        try:
            assert await asyncio.to_thread(runner.wait_for, until, 30)
        finally:
            stop.set()
            feed = await projector
        await nc.flush()
        await asyncio.sleep(0.1)  # our own messages come back through the server
        await nc.drain()
        return got, feed

    got, feed = asyncio.run(main())
    assert all(m.subject.startswith(f"{prefix}.") for m in got)
    return got, feed


def decode(msg: Msg) -> ViewChange:
    return msgspec.json.decode(msg.data, type=ViewChange)


def test_a_commit_publishes_each_changed_key_with_the_position_the_view_reflects(
    engine: Engine, runner: Runner
) -> None:
    ada, bob = register(engine, "ada"), register(engine, "bob")
    result = run(
        engine, "interaction.log_web", {"customer_id": str(ada), "action": "visit", "page": "/"}
    )
    head = max(result.positions)

    got, feed = follow_and_listen(engine, runner, "view.customer_profile.>", head)

    changed = [decode(m) for m in got]
    assert {(m.subject.split(".")[-1]) for m in got} == {str(ada), str(bob)}
    assert all(c.projection == "customer_profile" and not c.tombstone for c in changed)
    assert all(
        m.subject.endswith(f".view.customer_profile.{c.key}")
        for m, c in zip(got, changed, strict=True)
    )
    assert max(c.position for c in changed if c.key == str(ada)) == head
    assert feed.dropped == 0 and feed.published >= len(got)


def test_forgetting_a_customer_gives_a_tombstone_without_personal_data(
    engine: Engine, runner: Runner
) -> None:
    cid = register(engine, "zelda")
    runner.catch_up()
    head = max(run(engine, "customer.forget", {"customer_id": str(cid)}).positions)

    got, _ = follow_and_listen(engine, runner, "view.*.>", head)

    mine = [decode(m) for m in got if m.subject.endswith(f".{cid}")]
    profile = [c for c in mine if c.projection == "customer_profile"]
    assert profile == [
        ViewChange(projection="customer_profile", key=str(cid), position=head, tombstone=True)
    ]
    assert all(c.tombstone for c in mine)
    for m in got:
        assert set(msgspec.json.decode(m.data)) == {"projection", "key", "position", "tombstone"}
        assert b"zelda" not in m.data


def test_a_failing_hook_never_makes_a_committed_page_look_failed(
    engine: Engine, runner: Runner
) -> None:
    cid = register(engine, "ada")
    heard: list[tuple[str, int, int]] = []

    def hook(projection: str, events: list[Envelope[Any]], position: int) -> None:
        heard.append((projection, len(events), position))
        raise RuntimeError("the feed is broken")

    runner.on_commit = hook
    runner.catch_up()
    head = engine.store.head()
    assert ("customer_profile", 1, head) in heard
    assert all(s.state == "live" and s.position == head for s in runner.status())
    assert runner.dead_letters() == []
    assert runner.db.fetch(f"SELECT name FROM {runner.db.dialect.qualify('customer_profile')}") == [
        ("ada",)
    ]
    assert cid


def test_timers_that_fire_are_reported_with_no_events_and_the_checkpoint(
    engine: Engine, runner: Runner, url: str
) -> None:
    run(engine, "customer.register", {"name": "ada", "birth_date": "1990-02-03"})
    runner.catch_up()
    head = engine.store.head()
    later = (datetime.now(UTC) + timedelta(days=400)).isoformat()
    heard: list[tuple[str, int, int]] = []
    with open_engine(url, env={"CRM_NOW": later}) as future, open_runner(future) as timers:
        timers.on_commit = lambda name, events, position: heard.append(
            (name, len(events), position)
        )
        assert timers.fire_timers() >= 1
    assert ("customer_profile", 0, head) in heard


class TestBounded:
    def test_a_full_queue_drops_and_counts_instead_of_growing(self) -> None:
        async def main() -> FeedPublisher:
            nc = await connect(SETTINGS)
            try:
                feed = FeedPublisher(nc, asyncio.get_running_loop(), prefix="tq", max_pending=1)
                ids = [uuid4(), uuid4()]
                feed("customer_profile", [_envelope(ids[0]), _envelope(ids[1])], 7)
                assert feed.pending == 0 and feed.dropped == 2
                feed("customer_profile", [_envelope(ids[0])], 8)
                await feed.flush()
                return feed
            finally:
                await nc.drain()

        feed = asyncio.run(main())
        assert (feed.published, feed.dropped) == (1, 2)

    def test_nats_down_drops_and_counts(self) -> None:
        async def main() -> FeedPublisher:
            nc = await connect(SETTINGS)
            await nc.close()
            feed = FeedPublisher(nc, asyncio.get_running_loop(), prefix="tq")
            await asyncio.to_thread(feed, "timeline", [_envelope(uuid4())], 3)  # another thread
            await feed.flush()
            return feed

        feed = asyncio.run(main())
        assert (feed.published, feed.dropped, feed.pending) == (0, 1, 0)

    def test_timers_give_one_message_without_keys(self) -> None:
        assert changes("audiences", [], 9) == [
            ViewChange(projection="audiences", key="_timers", position=9)
        ]


def _envelope(customer_id: UUID) -> Envelope[Any]:
    return Envelope(
        customer_id=customer_id,
        stream_id=customer_id,
        stream_type="customer",
        version=1,
        occurred_at=datetime.now(UTC),
        payload=CustomerForgotten(),
    )
