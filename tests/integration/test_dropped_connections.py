"""PostgreSQL connections dropped under the engine: the store retries, nothing is lost or doubled."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import psycopg
import pytest

from handlers.decision import CommandContext
from infra.engine import Engine, open_engine
from tests.pg import PG_URL

CTX = CommandContext(actor="employee:e-1")


@pytest.fixture
def engine(store_url: str) -> Iterator[Engine]:
    with open_engine(store_url, env={}) as e:
        yield e


def kill_pool_connections(engine: Engine) -> int:
    """Terminate, from outside, every server process behind the engine's pooled connections."""
    pool: Any = engine.store.backend.datastore.pool  # type: ignore[attr-defined]
    held = [pool.getconn() for _ in range(pool.get_stats()["pool_size"])]
    pids = [c.info.backend_pid for c in held]
    for c in held:
        pool.putconn(c)
    with psycopg.connect(PG_URL, autocommit=True) as admin:
        for pid in pids:
            admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
    return len(pids)


@pytest.mark.parametrize("store_url", ["postgresql"], indirect=True)
class TestDroppedConnections:
    def test_commands_after_the_server_dropped_every_connection(self, engine: Engine) -> None:
        cid = engine.bus.execute_json("customer.register", {"name": "Ada"}, CTX).streams[0].id
        assert kill_pool_connections(engine) >= 1
        result = engine.bus.execute_json(
            "interaction.log_call",
            {"customer_id": str(cid), "direction": "in", "duration_min": 4},
            CommandContext(actor="employee:e-1", command_id="after-drop"),
        )
        assert result.positions
        kill_pool_connections(engine)
        again = engine.bus.execute_json(
            "interaction.log_call",
            {"customer_id": str(cid), "direction": "in", "duration_min": 4},
            CommandContext(actor="employee:e-1", command_id="after-drop"),
        )
        assert again == result
        assert [e.type for e in engine.store.read_customer(cid)] == [
            "customer.registered",
            "interaction.call_logged",
        ]

    def test_reads_survive_dropped_connections(self, engine: Engine) -> None:
        engine.bus.execute_json("customer.register", {"name": "Ada"}, CTX)
        kill_pool_connections(engine)
        assert [e.type for e in engine.store.read(0)] == ["customer.registered"]
