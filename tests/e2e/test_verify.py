"""`crm verify` as a user runs it, on PostgreSQL, with the sealer's heads anchored in JetStream
and without (DESIGN.md, issue 10: the sealed log)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from uuid import uuid4

import psycopg
import pytest

from infra.nats.connect import NatsSettings, connect
from infra.sealer import (
    SealerConfig,
    read_anchors,
    run_sealer,
    seal_and_anchor,
    seal_until_head,
)
from infra.store.backends import open_store
from infra.store.event_store import EventStore
from infra.store.seal import seal_store
from tests.integration.test_event_store import registered
from tests.pg import PG_URL, fresh_schema, pg_url_with_schema

ROOT = Path(__file__).resolve().parents[2]
NATS_URL = os.environ.get("CRM_TEST_NATS_URL", "nats://127.0.0.1:4222")
FLIP_LAST_BYTE = (
    "UPDATE stored_events SET state = set_byte(state, length(state) - 1, "
    "get_byte(state, length(state) - 1) # 1) WHERE notification_id = %s"
)
# `python -m infra.cli verify` once the lead registers the command in infra/cli/__init__.py.
VERIFY = [sys.executable, "-m", "infra.cli", "verify"]


def verify(url: str, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    full = {**os.environ, "CRM_STORE_URL": url, "PYTHONPATH": str(ROOT), **env}
    full.pop("CRM_MASTER_KEY", None)
    if "CRM_NATS_URL" not in env:
        full.pop("CRM_NATS_URL", None)
    return subprocess.run(
        [*VERIFY, *args],
        check=False,
        capture_output=True,
        text=True,
        env=full,
        cwd=ROOT,
        timeout=300,
    )


def report(proc: subprocess.CompletedProcess[str]) -> dict[str, dict[str, object]]:
    body = json.loads(proc.stdout)
    return {c["name"]: c for c in body["checks"]} | {"_": body}


@pytest.fixture
def pg() -> Iterator[tuple[str, str]]:
    with fresh_schema("verify") as schema:
        yield pg_url_with_schema(schema), schema


@pytest.fixture
def anchoring() -> Iterator[dict[str, str]]:
    """A stream and subject of this test's own, deleted afterwards."""
    tag = uuid4().hex[:10]
    env = {
        "CRM_NATS_URL": NATS_URL,
        "CRM_NATS_PREFIX": f"t{tag}",
        "CRM_SEALS_STREAM": f"T_SEALS_{tag.upper()}",
    }
    yield env

    async def delete() -> None:
        nc = await connect(NatsSettings.from_env(env))
        with contextlib.suppress(Exception):
            await nc.jetstream().delete_stream(env["CRM_SEALS_STREAM"])
        await nc.close()

    asyncio.run(delete())


def fill(url: str, n: int) -> None:
    store = open_store(url, env={})
    try:
        store.append([registered() for _ in range(n)], bulk=True)
    finally:
        store.close()


async def run_role_until_head(store: EventStore, env: dict[str, str]) -> dict[int, bytes]:
    """Run the sealer role until the head is sealed and anchored; the anchors it left."""
    config = SealerConfig.from_env(env)
    config = SealerConfig(stream=config.stream, subject=config.subject, anchor_interval=0.05)
    nc = await connect(NatsSettings.from_env(env))
    try:
        stop = asyncio.Event()
        task = asyncio.create_task(run_sealer(store, stop, nc, config))
        for _ in range(200):
            last = seal_store(store).last()
            if last is not None and last.position == store.head():
                break
            await asyncio.sleep(0.05)
        stop.set()
        await task
        return await read_anchors(nc, config.stream)
    finally:
        await nc.close()


def forge(schema: str, position: int) -> None:
    """Rewrite one event and recompute the whole seal table to match: only anchors can tell."""
    with psycopg.connect(PG_URL, autocommit=True) as conn:
        conn.execute(f'SET search_path TO "{schema}"')
        conn.execute("ALTER TABLE stored_events DISABLE TRIGGER stored_events_append_only")
        conn.execute("ALTER TABLE log_seal DISABLE TRIGGER log_seal_append_only")
        conn.execute(
            FLIP_LAST_BYTE,
            (position,),
        )
        conn.execute("DELETE FROM log_seal")
        conn.execute("ALTER TABLE stored_events ENABLE TRIGGER stored_events_append_only")
        conn.execute("ALTER TABLE log_seal ENABLE TRIGGER log_seal_append_only")


class TestVerify:
    def test_anchored_log_verifies_and_a_forged_chain_fails_on_the_anchors(
        self, pg: tuple[str, str], anchoring: dict[str, str]
    ) -> None:
        url, schema = pg
        fill(url, 40)
        store = open_store(url, env={})
        try:
            anchors = asyncio.run(run_role_until_head(store, anchoring))
            assert store.head() in anchors  # the head is anchored when the sealer stops
            ok = verify(url, "--format", "json", **anchoring)
            assert ok.returncode == 0, ok.stdout + ok.stderr
            checks = report(ok)
            assert checks["anchors"]["status"] == "ok"
            assert checks["seal chain"]["status"] == "ok"
            assert checks["projections"]["status"] == "skipped"  # no views built here

            forged = store.read_rows(0, 100)[-1].position  # the anchored head
            forge(schema, forged)
            assert seal_until_head(store) == 40  # a fresh chain over the forged log
        finally:
            store.close()
        bad = verify(url, "--format", "json", **anchoring)
        assert bad.returncode == 1
        checks = report(bad)
        assert checks["seal chain"]["status"] == "ok"  # consistent with itself ...
        assert checks["anchors"]["status"] == "failed"  # ... but not with what was anchored
        assert checks["anchors"]["first_bad"] == forged
        assert checks["_"]["first_bad_position"] == forged

    def test_the_demo_sealer_anchors_the_head_once(
        self, pg: tuple[str, str], anchoring: dict[str, str]
    ) -> None:
        url, _ = pg
        fill(url, 7)
        store = open_store(url, env={})
        try:
            assert seal_and_anchor(store, anchoring) == 7
            assert seal_and_anchor(store, anchoring) == 0  # the head is anchored already
            fill(url, 3)
            assert seal_and_anchor(store, anchoring) == 3
            head = store.head()
        finally:
            store.close()

        async def anchors() -> dict[int, bytes]:
            nc = await connect(NatsSettings.from_env(anchoring))
            try:
                return await read_anchors(nc, anchoring["CRM_SEALS_STREAM"])
            finally:
                await nc.close()

        found = asyncio.run(anchors())
        assert sorted(found) == [head - 3, head]
        assert verify(url, "--format", "json", **anchoring).returncode == 0

    def test_without_nats_it_says_not_anchored_and_still_checks_the_chain(
        self, pg: tuple[str, str]
    ) -> None:
        url, schema = pg
        fill(url, 10)
        store = open_store(url, env={})
        try:
            seal_until_head(store)
            bad = store.read_rows(0, 100)[4].position
        finally:
            store.close()
        ok = verify(url)
        assert ok.returncode == 0, ok.stdout + ok.stderr
        assert "not anchored" in ok.stdout
        with psycopg.connect(PG_URL, autocommit=True) as conn:
            conn.execute(f'SET search_path TO "{schema}"')
            conn.execute("ALTER TABLE stored_events DISABLE TRIGGER stored_events_append_only")
            conn.execute(
                FLIP_LAST_BYTE,
                (bad,),
            )
        failed = verify(url)
        assert failed.returncode == 1
        assert f"first bad position {bad}" in failed.stdout
        assert "not anchored" in failed.stdout
