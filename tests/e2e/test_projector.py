"""The projector as a real process: kill -9 in the middle of a catch-up, SIGTERM when live."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest

from handlers.decision import CommandContext
from handlers.importer import Importer
from infra.engine import Engine, open_engine
from infra.projection_db import projection_db
from infra.projector import open_runner
from projections.catalogue import all_projections
from projections.runner import Runner

CRM = [sys.executable, "-m", "infra.cli"]
ROOT = Path(__file__).resolve().parents[2]
CTX = CommandContext(actor="test", channel="test")
T0 = datetime(2026, 1, 1, tzinfo=UTC)


def env(url: str) -> dict[str, str]:
    e = {**os.environ, "CRM_STORE_URL": url, "CRM_ENV": "development", "PYTHONPATH": str(ROOT)}
    e.pop("CRM_MASTER_KEY", None)
    return e


def lines(customers: int, interactions: int, seed: int) -> Iterator[bytes]:
    rng = random.Random(seed)
    ids = [str(UUID(int=rng.getrandbits(128), version=4)) for _ in range(customers)]
    for i, c in enumerate(ids):
        yield _line("customer.register", customer_id=c, name=f"C{i}", email=f"c{i}@x.org")
    for _ in range(interactions):
        at = (T0 - timedelta(minutes=rng.randrange(1_000_000))).isoformat()
        c = rng.choice(ids)
        if rng.random() < 0.5:
            yield _line(
                "interaction.log_web", customer_id=c, action="visit", page="/", occurred_at=at
            )
        else:
            yield _line(
                "interaction.log_call",
                customer_id=c,
                direction="in",
                duration_min=rng.randrange(1, 30),
                notes="n",
                occurred_at=at,
            )
    yield _line("customer.merge", survivor_id=ids[0], merged_id=ids[1])


def _line(command: str, **data: Any) -> bytes:
    return json.dumps({"command": command, "data": data}).encode()


def dump(engine: Engine) -> dict[str, list[tuple[str, ...]]]:
    with open_runner(engine) as runner:
        out = {}
        for table, key in (("customer_profile", "customer_id"), ("timeline", "position")):
            rows = runner.db.fetch(
                f"SELECT * FROM {runner.db.dialect.qualify(table)} ORDER BY {key}"
            )
            out[table] = [tuple(str(v) for v in r) for r in rows]
        return out


def positions(engine: Engine) -> dict[str, int]:
    """Each view's checkpoint, read without setting the views up (no DDL beside a running
    projector: a poll must not wait on its locks)."""
    runner = Runner(projection_db(engine.store), engine.store, all_projections(), engine.clock)
    try:
        return {s.name: s.position for s in runner.status()}
    finally:
        runner.close()


@pytest.fixture
def engine(store_url: str) -> Iterator[Engine]:
    with open_engine(store_url, env={}) as e:
        report = Importer(e.bus, e.store, batch_size=2000).run(lines(300, 6000, seed=1), CTX)
        assert not report.errors
        open_runner(e).close()  # the views' tables exist before a projector starts
        yield e


def test_kill_9_in_the_middle_of_a_catch_up_then_restart_equals_a_fresh_rebuild(
    engine: Engine, store_url: str
) -> None:
    head = engine.store.head()
    proc = subprocess.Popen(
        [*CRM, "serve", "projector", "--page", "150"],
        env=env(store_url),
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            now = positions(engine)
            if now and 0 < max(now.values()) < head:
                break
            if proc.poll() is not None:
                pytest.fail(f"projector exited early: {proc.stderr.read() if proc.stderr else ''}")
            time.sleep(0.01)
        else:
            pytest.fail("the projector never got going")
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
        if proc.stderr:
            proc.stderr.close()
    stopped_at = positions(engine)
    assert min(stopped_at.values()) < head, (
        "killed after the catch-up ended: the test proves nothing"
    )
    done = subprocess.run(  # noqa: PLW1510  (the code is asserted below)
        [*CRM, "projections", "run", "--page", "150"],
        env=env(store_url),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    after_restart = dump(engine)
    with open_runner(engine) as runner:
        assert all(s.lag == 0 and s.dead_letters == 0 for s in runner.status())
        runner.rebuild("customer_profile")
        runner.rebuild("timeline")
    assert dump(engine) == after_restart
    assert len(after_restart["timeline"]) == 6000


def test_sigterm_stops_a_live_projector_cleanly(engine: Engine, store_url: str) -> None:
    proc = subprocess.Popen(
        [*CRM, "serve", "projector", "--poll", "0.1"],
        env=env(store_url),
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        head = engine.store.head()
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and min(positions(engine).values() or [0]) < head:
            time.sleep(0.05)
        customer = UUID(int=7, version=4)
        result = engine.bus.execute_json(
            "customer.register", {"customer_id": str(customer), "name": "Live"}, CTX
        )
        with open_runner(engine) as runner:
            assert runner.wait_for(result.positions[-1], timeout=20)
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=20)
        err = proc.stderr.read() if proc.stderr else ""
    finally:
        if proc.poll() is None:
            proc.kill()
        if proc.stderr:
            proc.stderr.close()
    assert code == 0, err
    assert "projector stopped" in err
