"""Append -> visible in `customer_profile` with the projector running, against the append alone.

setup     (not timed) a fresh schema; `--customers` customers registered by `handlers.importer`
          (one batch, bulk path) and both views (customer_profile, timeline) caught up in this
          process; then the projector started as a user runs it, a process of its own:
          `python -m infra.cli serve projector` with CRM_STORE_URL naming the schema. It is
          ready when it has said so and a first command became visible through it.
measure   `--samples` pairs, after `--warmup` untimed ones. Each sample is one
          `interaction.log_call` (notes and outcome are personal free text, sealed) on a random
          customer, sent through `engine.bus.execute_json` in this process (parse, load,
          decide, encode, append with its command record in one transaction, NOTIFY).
          subject:  from just before the append until the customer's row in the view
                    `customer_profile` has `position >=` the event's position, as seen by a
                    plain psycopg connection (autocommit) polling that row every
                    `--poll-interval` (0.5 ms: a tight loop would take a core from the projector
                    and the server on this 2-core machine). It includes the append, the NOTIFY,
                    the projector's wake-up, its read and decode of the new event, both
                    projections' transactions (rows + checkpoint) and the poll's resolution.
          baseline: the append alone (the same command's latency, not waiting for the view).
          Subject and baseline alternate (who goes first alternates too); after a baseline
          sample the bench waits, untimed, until the view shows it, so every subject sample
          starts with an idle projector.
value     p99 ms of append -> visible (p50 as an extra key); baseline: p99 ms of the append
          alone; ratio = baseline / value (the share of the visible latency that is the append;
          it cannot exceed 1). The goal is p99 < 50 ms (`goal_ms`, `met`).
extra     `after_append_*`: from the append's return until visible (the projector's share);
          the projector is stopped with SIGTERM at the end and must exit 0 (`projector_exit`).
          Every call is checked to have been counted once in `n_call`.

    .venv/bin/python bench/live.py [--samples 500] [--customers 200] [--warmup 20]
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import argparse
import gc
import random
import signal
import subprocess
import tempfile
import time
from datetime import timedelta
from typing import IO, Any
from uuid import UUID, uuid4

import msgspec
import psycopg
from psycopg.sql import SQL, Identifier

from bench._common import (
    EPOCH,
    bench_schema,
    emit,
    import_line,
    interaction_data,
    log,
    percentile,
    pg_url,
    process_env,
    random_uuid,
    register_data,
    with_schema,
)
from handlers.decision import CommandContext
from handlers.importer import Importer
from infra.engine import Engine, open_engine
from infra.projector import open_runner

GOAL_MS = 50.0
READY_TIMEOUT = 60.0
VISIBLE_TIMEOUT = 10.0


def register(engine: Engine, customers: int, seed: int) -> list[UUID]:
    """`customers` registrations imported in one batch; their ids."""
    rng = random.Random(seed)
    ids = [random_uuid(rng) for _ in range(customers)]
    lines = [
        import_line(
            "customer.register",
            register_data(rng, i, customer, EPOCH + timedelta(minutes=i)),
            str(random_uuid(rng)),
        )
        for i, customer in enumerate(ids)
    ]
    importer = Importer(engine.bus, engine.store, batch_size=5000, pipeline=True)
    report = importer.run(lines, CommandContext(actor="import:bench", channel="import"))
    if report.errors or report.events != customers:
        raise SystemExit(f"registration: {report.events:,} events, {report.errors[:3]}")
    return ids


def catch_up(engine: Engine) -> int:
    with open_runner(engine) as runner:
        return runner.catch_up()


class Projector:
    """`crm serve projector` in a process of its own; its stderr goes to a temporary file."""

    def __init__(self, url: str, poll: float, stderr: IO[str]) -> None:
        self.stderr = stderr
        cmd = [sys.executable, "-m", "infra.cli", "serve", "projector", "--poll", str(poll)]
        self.proc = subprocess.Popen(
            cmd,
            env=process_env(url),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=self.stderr,
            text=True,
        )

    def output(self) -> str:
        self.stderr.seek(0)
        return self.stderr.read()

    def tail(self, n: int = 12) -> list[str]:
        return [line for line in self.output().splitlines() if line.strip()][-n:]

    def check_alive(self) -> None:
        if self.proc.poll() is not None:
            raise SystemExit(
                f"the projector exited {self.proc.returncode}:\n" + "\n".join(self.tail(40))
            )

    def wait_ready(self) -> float:
        """Seconds until it says it runs."""
        t0 = time.perf_counter()
        while "projector running" not in self.output():
            self.check_alive()
            if time.perf_counter() - t0 > READY_TIMEOUT:
                raise SystemExit("the projector did not start:\n" + "\n".join(self.tail(40)))
            time.sleep(0.05)
        return time.perf_counter() - t0

    def stop(self) -> int | None:
        """SIGTERM, then its exit code (None if it had to be killed)."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                return None
        return self.proc.returncode

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


class Sampler:
    """Sends one call on a random customer; waits until the view shows it."""

    def __init__(
        self,
        engine: Engine,
        conn: psycopg.Connection[Any],
        schema: str,
        customers: list[UUID],
        projector: Projector,
        *,
        seed: int,
        interval: float,
    ) -> None:
        self.execute = engine.bus.execute_json
        self.conn = conn
        self.query = SQL("SELECT position FROM {0}.customer_profile WHERE customer_id = %s").format(
            Identifier(schema)
        )
        self.customers = customers
        self.projector = projector
        self.rng = random.Random(seed)
        self.interval = interval
        self.sent = 0

    def append(self) -> tuple[UUID, int, float]:
        """One call through the bus: (customer, its event's position, ms of the append)."""
        customer = self.rng.choice(self.customers)
        data = interaction_data(self.rng, "interaction.log_call", customer, None)
        body = msgspec.json.encode(data)
        ctx = CommandContext(actor="user:bench", channel="api", command_id=str(uuid4()))
        t0 = time.perf_counter_ns()
        result = self.execute("interaction.log_call", body, ctx)
        ms = (time.perf_counter_ns() - t0) / 1e6
        if len(result.positions) != 1:
            raise SystemExit(f"log_call appended {len(result.positions)} events, expected 1")
        self.sent += 1
        return customer, result.positions[0], ms

    def wait_visible(self, customer: UUID, position: int, timeout: float = VISIBLE_TIMEOUT) -> None:
        execute, query, interval = self.conn.execute, self.query, self.interval
        deadline = time.perf_counter() + timeout
        while True:
            row = execute(query, (customer,), prepare=True).fetchone()
            if row is not None and row[0] >= position:
                return
            if time.perf_counter() > deadline:
                self.projector.check_alive()
                raise SystemExit(
                    f"position {position} not visible in customer_profile after {timeout:.0f} s:"
                    "\n" + "\n".join(self.projector.tail(40))
                )
            if interval:
                time.sleep(interval)

    def subject(self) -> tuple[float, float]:
        """(ms append -> visible, ms append's return -> visible)."""
        t0 = time.perf_counter_ns()
        customer, position, append_ms = self.append()
        self.wait_visible(customer, position)
        total = (time.perf_counter_ns() - t0) / 1e6
        return total, total - append_ms

    def baseline(self) -> float:
        customer, position, ms = self.append()
        self.wait_visible(customer, position)  # not timed: the next sample finds it idle
        return ms


def calls_counted(conn: psycopg.Connection[Any], schema: str) -> int:
    row = conn.execute(
        SQL("SELECT coalesce(sum(n_call), 0) FROM {0}.customer_profile").format(Identifier(schema))
    ).fetchone()
    assert row is not None
    return int(row[0])


def measure(sampler: Sampler, samples: int, warmup: int) -> dict[str, list[float]]:
    for _ in range(warmup):
        sampler.subject()
        sampler.baseline()
    out: dict[str, list[float]] = {"subject": [], "after_append": [], "baseline": []}

    def subject() -> None:
        total, after = sampler.subject()
        out["subject"].append(total)
        out["after_append"].append(after)

    def baseline() -> None:
        out["baseline"].append(sampler.baseline())

    gc.collect()
    gc.freeze()
    try:
        for i in range(samples):
            for side in (subject, baseline) if i % 2 == 0 else (baseline, subject):
                side()
            if (i + 1) % max(1, samples // 4) == 0:
                log(
                    f"  {i + 1:>5,} samples: p50 visible {percentile(out['subject'], 50):.2f} ms,"
                    f" append {percentile(out['baseline'], 50):.2f} ms"
                )
    finally:
        gc.unfreeze()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--samples", type=int, default=500, help="timed samples of each side")
    parser.add_argument("--customers", type=int, default=200, help="customers registered first")
    parser.add_argument("--warmup", type=int, default=20, help="untimed samples of each side")
    parser.add_argument(
        "--poll-interval",
        type=float,
        default=0.0005,
        help="seconds between two reads of the view while waiting (0: tight loop)",
    )
    parser.add_argument(
        "--projector-poll",
        type=float,
        default=0.2,
        help="the projector's --poll (its longest wait between checks; NOTIFY wakes it sooner)",
    )
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()

    with bench_schema("live") as schema:
        url = with_schema(pg_url(), schema)
        t0 = time.perf_counter()
        with (
            open_engine(url, env={}) as engine,
            tempfile.TemporaryFile("w+", encoding="utf-8") as stderr,
        ):
            customers = register(engine, args.customers, args.seed)
            applied = catch_up(engine)
            log(
                f"setup: {len(customers):,} customers registered, {applied:,} events applied "
                f"to the views in {time.perf_counter() - t0:.1f} s"
            )
            projector = Projector(url, args.projector_poll, stderr)
            try:
                ready = projector.wait_ready()
                with psycopg.connect(pg_url(), autocommit=True) as conn:
                    sampler = Sampler(
                        engine,
                        conn,
                        schema,
                        customers,
                        projector,
                        seed=args.seed,
                        interval=args.poll_interval,
                    )
                    t1 = time.perf_counter()
                    customer, position, _ = sampler.append()
                    sampler.wait_visible(customer, position, timeout=READY_TIMEOUT)
                    log(
                        f"projector: running after {ready:.1f} s, first call visible "
                        f"{time.perf_counter() - t1:.2f} s later"
                    )
                    log(
                        f"measure: {args.samples:,} samples of each side (after {args.warmup} "
                        "warm-up), interleaved"
                    )
                    samples = measure(sampler, args.samples, args.warmup)
                    counted = calls_counted(conn, schema)
                code = projector.stop()
                for line in projector.tail(3):
                    log(f"  crm serve projector: {line.strip()}")
            finally:
                projector.close()
    if counted != sampler.sent:
        raise SystemExit(f"customer_profile counts {counted:,} calls; {sampler.sent:,} were sent")
    if code != 0:
        raise SystemExit(f"the projector exited {code} on SIGTERM, expected 0")
    log(f"projector: stopped by SIGTERM, exit {code}; {counted:,} calls counted once each")

    p = {side: {q: percentile(samples[side], q) for q in (50, 90, 99)} for side in samples}
    value, baseline = p["subject"][99], p["baseline"][99]
    ratio = baseline / value
    log(
        f"append -> visible p50 {p['subject'][50]:.2f} ms p99 {value:.2f} ms "
        f"(goal p99 < {GOAL_MS:.0f} ms: {'met' if value < GOAL_MS else 'NOT met'}); "
        f"append alone p50 {p['baseline'][50]:.2f} ms p99 {baseline:.2f} ms; "
        f"after the append p50 {p['after_append'][50]:.2f} ms p99 {p['after_append'][99]:.2f} ms"
    )
    emit(
        {
            "bench": "live",
            "value": round(value, 3),
            "unit": "ms",
            "baseline": round(baseline, 3),
            "ratio": round(ratio, 3),
            "p50": round(p["subject"][50], 3),
            "baseline_p50": round(p["baseline"][50], 3),
            "p90": round(p["subject"][90], 3),
            "baseline_p90": round(p["baseline"][90], 3),
            "max": round(max(samples["subject"]), 3),
            "after_append_p50": round(p["after_append"][50], 3),
            "after_append_p99": round(p["after_append"][99], 3),
            "goal_ms": GOAL_MS,
            "met": value < GOAL_MS,
            "samples": args.samples,
            "customers": len(customers),
            "poll_interval_ms": args.poll_interval * 1000,
            "projector_exit": code,
        }
    )


if __name__ == "__main__":
    main()
