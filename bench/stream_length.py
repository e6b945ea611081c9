"""Latency of a command on a customer with 100,000 events against one with 10, same run.

Events "about" a customer are every event whose `customer_id` is that customer: the customer's
own stream (stream id = customer id) holds only registry changes (registration, profile,
consents, contacts...), while every interaction lives in a one-event stream of its own keyed by
`customer_id`. So BIG's 100,000 events are its registration and 99,999 logged interactions,
SMALL's 10 its registration and 9 interactions; both own streams start with one event (the
bench reports how many). DESIGN.md promises that deciding a command costs the same for 10 or
100,000 events about a customer: this bench checks it.

setup     (not timed) a fresh schema; BIG and SMALL registered through the bus; their
          interactions (every channel, personal free text, business times over two years;
          generated once and cached under bench/.cache/) imported by `handlers.importer`,
          which appends through the bulk path; then ANALYZE.
measure   `engine.bus.execute_json` (the NATS body's path: parse, find_command, load the
          customer's stream, decide, append events and command record in one transaction),
          each command with a fresh command_id, alternating BIG and SMALL (who goes first
          alternates too, so noise hits both), in a cycle that mixes interaction.log_call
          with customer commands that load the customer's stream and append to it:
          log_call, grant_consent, log_call, update_profile, log_call, withdraw_consent,
          log_call, update_profile. Every command appends exactly one event (checked).
value     p99 ms on BIG; baseline: p99 ms on SMALL; ratio = baseline / value (target >= 0.8).

`--own-stream N` also puts N profile updates into BIG's OWN stream (bulk-appended envelopes)
so the cost of a long aggregate stream (no snapshots) can be seen; it is 0 by default.

    .venv/bin/python bench/stream_length.py [--big 100000] [--small 10] [--commands 2000]
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import argparse
import gc
import random
import statistics
import time
from collections.abc import Callable
from datetime import timedelta
from typing import Any
from uuid import UUID, uuid4

import msgspec
import psycopg
from psycopg.sql import SQL, Identifier

from bench._common import (
    CACHE_DIR,
    EPOCH,
    bench_schema,
    emit,
    import_line,
    log,
    payload_fingerprint,
    percentile,
    pg_url,
    random_interaction,
    random_uuid,
    register_data,
    with_schema,
)
from domain.customers.events import ProfileUpdated
from domain.envelope import Envelope
from domain.interactions import commands as icmd
from handlers.decision import CommandContext
from handlers.importer import Importer
from infra.engine import Engine, open_engine

FIXTURE_FORMAT = 1
TWO_YEARS = int(timedelta(days=730).total_seconds())
CTX = CommandContext(actor="import:bench", channel="import")
INCOME = ("20-40k", "40-70k")


def customer_ids(seed: int) -> tuple[UUID, UUID]:
    rng = random.Random(seed)
    return random_uuid(rng), random_uuid(rng)


def interaction_lines(customer: UUID, n: int, seed: int, tag: str) -> list[bytes]:
    """`n` interaction commands about `customer` (any channel), generated once and cached."""
    shape = payload_fingerprint(*icmd.LogInteraction.__subclasses__())  # type: ignore[arg-type]
    path = CACHE_DIR / f"stream_length-v{FIXTURE_FORMAT}-{tag}-{n}-{seed}-{shape}.jsonl"
    if path.exists():
        return path.read_bytes().splitlines(keepends=True)
    rng = random.Random(f"{seed}:{tag}")
    lines = []
    for _ in range(n):
        at = EPOCH + timedelta(days=7, seconds=rng.randrange(TWO_YEARS))
        name, data = random_interaction(rng, customer, at)
        lines.append(import_line(name, data, str(random_uuid(rng))))
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_bytes(b"".join(lines))
    tmp.replace(path)
    log(f"fixture: {n:,} lines cached in {path.relative_to(CACHE_DIR.parent.parent)}")
    return lines


def register(engine: Engine, customer: UUID, i: int, seed: int) -> None:
    data = register_data(random.Random(seed + i), i, customer, EPOCH)
    data.pop("income_band", None)  # update_profile alternates it: every update changes it
    body = msgspec.json.encode(data)
    result = engine.bus.execute_json(
        "customer.register", body, CommandContext(actor="bench", command_id=str(uuid4()))
    )
    assert result.positions, "registration appended nothing"


def own_stream_updates(engine: Engine, customer: UUID, n: int) -> None:
    """`n` profile updates appended to the customer's own stream (envelopes, bulk path)."""
    version = len(engine.store.load(customer))
    for start in range(0, n, 10_000):
        engine.store.append(
            [
                Envelope(
                    stream_id=customer,
                    stream_type="customer",
                    version=version + k + 1,
                    occurred_at=EPOCH + timedelta(days=7, minutes=version + k),
                    payload=ProfileUpdated(purpose=f"p{(version + k) % 7}"),
                    customer_id=customer,
                    actor="import:bench",
                    channel="import",
                )
                for k in range(start, min(start + 10_000, n))
            ],
            bulk=True,
        )


def counts(schema: str, customer: UUID) -> tuple[int, int]:
    """(events about the customer, events in the customer's own stream)."""
    with psycopg.connect(pg_url()) as conn:
        row = conn.execute(
            SQL(
                "SELECT count(*), count(*) FILTER (WHERE originator_id = %s) "
                "FROM {0}.stored_events WHERE customer_id = %s"
            ).format(Identifier(schema)),
            (customer, customer),
        ).fetchone()
    assert row is not None
    return int(row[0]), int(row[1])


def analyze(schema: str) -> None:
    with psycopg.connect(pg_url(), autocommit=True) as conn:
        conn.execute(SQL("ANALYZE {0}.stored_events").format(Identifier(schema)))
        conn.execute(SQL("ANALYZE {0}.crm_commands").format(Identifier(schema)))


class Driver:
    """The cycle of commands for one customer; `next()` gives (name, body) of the next one."""

    def __init__(self, customer: UUID, seed: int) -> None:
        self.customer = str(customer)
        self.rng = random.Random(seed)
        self.i = 0
        self.updates = 0
        self.cycle: list[Callable[[], tuple[str, dict[str, Any]]]] = [
            self.call,
            self.grant,
            self.call,
            self.update,
            self.call,
            self.withdraw,
            self.call,
            self.update,
        ]

    def call(self) -> tuple[str, dict[str, Any]]:
        return "interaction.log_call", {
            "customer_id": self.customer,
            "direction": self.rng.choice(("in", "out")),
            "duration_min": round(self.rng.uniform(0.5, 20), 1),
            "outcome": "reached",
            "notes": "Asked about the delivery date; promised a call back.",
        }

    def grant(self) -> tuple[str, dict[str, Any]]:
        return "customer.grant_consent", {
            "customer_id": self.customer,
            "consent_channel": "email",
            "purpose": "newsletter",
            "source": "phone",
        }

    def withdraw(self) -> tuple[str, dict[str, Any]]:
        return "customer.withdraw_consent", {
            "customer_id": self.customer,
            "consent_channel": "email",
            "purpose": "newsletter",
            "source": "phone",
        }

    def update(self) -> tuple[str, dict[str, Any]]:
        self.updates += 1
        return "customer.update_profile", {
            "customer_id": self.customer,
            "income_band": INCOME[self.updates % 2],
        }

    def next(self) -> tuple[str, bytes]:
        name, data = self.cycle[self.i % len(self.cycle)]()
        self.i += 1
        return name, msgspec.json.encode(data)


def run_one(engine: Engine, driver: Driver) -> tuple[str, float]:
    """One command through the bus; (command name, milliseconds)."""
    name, body = driver.next()
    ctx = CommandContext(actor="user:bench", channel="api", command_id=str(uuid4()))
    execute = engine.bus.execute_json
    t0 = time.perf_counter_ns()
    result = execute(name, body, ctx)
    ms = (time.perf_counter_ns() - t0) / 1e6
    if len(result.positions) != 1:
        raise SystemExit(f"{name} appended {len(result.positions)} events, expected 1")
    return name, ms


def measure(
    engine: Engine, big: UUID, small: UUID, commands: int, *, warmup: int, seed: int
) -> tuple[dict[str, list[float]], dict[str, list[float]]]:
    """Latencies (ms) of BIG and SMALL, interleaved; also split by command name."""
    drivers = {"big": Driver(big, seed), "small": Driver(small, seed)}
    for _ in range(warmup):
        for side in ("big", "small"):
            run_one(engine, drivers[side])
    samples: dict[str, list[float]] = {"big": [], "small": []}
    by_name: dict[str, list[float]] = {}
    gc.collect()
    gc.freeze()
    try:
        for i in range(commands):
            for side in ("big", "small") if i % 2 == 0 else ("small", "big"):
                name, ms = run_one(engine, drivers[side])
                samples[side].append(ms)
                by_name.setdefault(f"{side}:{name}", []).append(ms)
            if (i + 1) % max(1, commands // 4) == 0:
                log(
                    f"  {i + 1:>6,} commands each: p50 BIG {statistics.median(samples['big']):.2f}"
                    f" ms, SMALL {statistics.median(samples['small']):.2f} ms"
                )
    finally:
        gc.unfreeze()
    return samples, by_name


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--big", type=int, default=100_000, help="events about BIG")
    parser.add_argument("--small", type=int, default=10, help="events about SMALL")
    parser.add_argument("--commands", type=int, default=2000, help="timed commands per customer")
    parser.add_argument("--warmup", type=int, default=40, help="untimed commands per customer")
    parser.add_argument(
        "--own-stream",
        type=int,
        default=0,
        help="profile updates appended to BIG's own stream too (0: interactions only)",
    )
    parser.add_argument("--seed", type=int, default=11)
    args = parser.parse_args()

    big, small = customer_ids(args.seed)
    big_lines = interaction_lines(big, args.big - 1 - args.own_stream, args.seed, "big")
    small_lines = interaction_lines(small, args.small - 1, args.seed, "small")

    with (
        bench_schema("stream_length") as schema,
        open_engine(with_schema(pg_url(), schema), env={}) as engine,
    ):
        t0 = time.perf_counter()
        register(engine, big, 0, args.seed)
        register(engine, small, 1, args.seed)
        importer = Importer(engine.bus, engine.store)
        for lines in (big_lines, small_lines):
            report = importer.run(lines, CTX)
            if report.errors or report.events != len(lines):
                raise SystemExit(f"setup import: {report.events:,} events, {report.errors[:3]}")
        if args.own_stream:
            own_stream_updates(engine, big, args.own_stream)
        analyze(schema)
        events_big, own_big = counts(schema, big)
        events_small, own_small = counts(schema, small)
        log(
            f"setup {time.perf_counter() - t0:.1f} s: BIG {events_big:,} events "
            f"({own_big:,} in its own stream), SMALL {events_small:,} ({own_small:,} in its "
            f"own stream)"
        )
        log(
            f"measure: {args.commands:,} commands each (after {args.warmup} warm-up), "
            "BIG and SMALL interleaved"
        )
        samples, by_name = measure(
            engine, big, small, args.commands, warmup=args.warmup, seed=args.seed
        )
        _, own_big_after = counts(schema, big)
        _, own_small_after = counts(schema, small)

    p = {side: {q: percentile(samples[side], q) for q in (50, 90, 99)} for side in samples}
    for key in sorted(by_name):
        log(
            f"  {key:<34} p50 {percentile(by_name[key], 50):6.2f} ms  "
            f"p99 {percentile(by_name[key], 99):6.2f} ms  (n={len(by_name[key]):,})"
        )
    ratio = p["small"][99] / p["big"][99]
    log(
        f"BIG p50 {p['big'][50]:.2f} ms p99 {p['big'][99]:.2f} ms; SMALL p50 "
        f"{p['small'][50]:.2f} ms p99 {p['small'][99]:.2f} ms; ratio {ratio:.3f} (target >= 0.8)"
    )
    emit(
        {
            "bench": "stream_length",
            "value": round(p["big"][99], 3),
            "unit": "ms",
            "baseline": round(p["small"][99], 3),
            "ratio": round(ratio, 3),
            "p50": round(p["big"][50], 3),
            "baseline_p50": round(p["small"][50], 3),
            "p90": round(p["big"][90], 3),
            "baseline_p90": round(p["small"][90], 3),
            "events_big": events_big,
            "events_small": events_small,
            "big_own_stream": own_big,
            "small_own_stream": own_small,
            "big_own_stream_after": own_big_after,
            "small_own_stream_after": own_small_after,
            "commands": args.commands,
        }
    )


if __name__ == "__main__":
    main()
