"""Append -> audience membership change visible, with the projector running under a steady stream.

setup     (not timed) a fresh schema; `--customers` customers registered by `handlers.importer`
          (bulk path, as bench/live.py does), plus `--history` interaction events per customer
          on average (calls, e-mails, web activity; business times over the year before now,
          envelopes appended in bulk) so every customer has facts to evaluate; every view
          caught up in this process. Then the projector started as a user runs it, a process of
          its own (`python -m infra.cli serve projector`, bench/live.py's `Projector`), and a
          steady stream: a thread with an engine of its own sends `--rate` interaction commands
          a second (calls and e-mails on `--background` customers kept apart from the sampled
          ones) through the bus for the whole measurement.
baseline  (first phase, no audience defined) `--samples` `interaction.log_call` commands, each on
          a customer never called before, sent through `engine.bus.execute_json`; timed from
          just before the append until the customer's `customer_profile` row has `position >=`
          the event's position (a plain autocommit connection polling every `--poll-interval`).
subject   (second phase) after `audience.define` of three audiences, applied by the projector
          (their slow path done, untimed):
              new_callers    count(call, last 30 days) >= 1
              heavy_callers  sum(call.duration_min, last 4 months) > 300
              engaged        count(web, last 2 weeks) >= 3 or
                             count(email where direction = "in", last 30 days) >= 2
          the same appends (a call on a customer never called before), timed until the
          customer's row in `audience_members` for `new_callers` exists: the entry the call
          causes, visible. It includes the append, the NOTIFY, the projector's wake-up, read
          and decode, every view's transaction (customer_profile first, audiences last: folding
          the call into the customer's facts, evaluating the three audiences, member, change
          and timer rows, checkpoint) and the poll's resolution.
          Each sample starts with the previous one visible; the stream goes on meanwhile.
value     p99 ms of append -> entry visible (p50 as an extra key); baseline: p99 ms of append ->
          visible in customer_profile with no audience; ratio = baseline / value. The goal is
          p99 < 50 ms (`goal_ms`, `met`). Every sampled call must have caused exactly one
          `entered` row of `new_callers` with its position.

    .venv/bin/python bench/audience_live.py [--samples 500] [--customers 2000] [--rate 20]
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import argparse
import gc
import itertools
import random
import tempfile
import threading
import time
from datetime import timedelta
from typing import Any
from uuid import UUID, uuid4

import msgspec
import psycopg
from psycopg.sql import SQL, Identifier

from bench._common import (
    bench_schema,
    emit,
    interaction_data,
    log,
    percentile,
    pg_url,
    random_uuid,
    with_schema,
)
from bench.live import Projector, register
from domain.envelope import Envelope
from domain.interactions.events import CallLogged, EmailLogged, WebActivity
from handlers.decision import CommandContext
from infra.engine import Engine, open_engine
from infra.projector import open_runner

GOAL_MS = 50.0
READY_TIMEOUT = 120.0
VISIBLE_TIMEOUT = 10.0
SAMPLED = "new_callers"
AUDIENCES = {
    SAMPLED: "count(call, last 30 days) >= 1",
    "heavy_callers": "sum(call.duration_min, last 4 months) > 300",
    "engaged": (
        'count(web, last 2 weeks) >= 3 or count(email where direction = "in", last 30 days) >= 2'
    ),
}


# -- setup ----------------------------------------------------------------------------------


def seed_history(engine: Engine, customers: list[UUID], n: int, seed: int) -> int:
    """`n` e-mails and web events (no calls: a sampled customer was never called) over the
    customers, business times in the year before now, appended in bulk."""
    rng = random.Random(seed)
    now = engine.clock.now()
    events = []
    for _ in range(n):
        at = now - timedelta(seconds=rng.random() * 360 * 86400)
        if rng.random() < 0.5:
            payload: Any = EmailLogged(direction=rng.choice(("in", "out")))
            channel = "email"
        else:
            payload = WebActivity(action="page_view", page=rng.choice(("/", "/pricing", "/faq")))
            channel = "web"
        events.append(
            Envelope(
                customer_id=rng.choice(customers),
                stream_id=random_uuid(rng),
                stream_type="interaction",
                version=1,
                occurred_at=at,
                payload=payload,
                actor="user:bench",
                channel=channel,
            )
        )
    events.sort(key=lambda e: e.occurred_at)
    for i in range(0, len(events), 20_000):
        engine.store.append(events[i : i + 20_000], bulk=True)
    return len(events)


def seed_calls(engine: Engine, customers: list[UUID], n: int, seed: int) -> int:
    """`n` calls on the customers not sampled, a few very active (Pareto weights): some are
    heavy callers."""
    rng = random.Random(seed)
    now = engine.clock.now()
    weights = list(itertools.accumulate(rng.paretovariate(1.1) for _ in customers))
    who = rng.choices(customers, cum_weights=weights, k=n)
    events = [
        Envelope(
            customer_id=customer,
            stream_id=random_uuid(rng),
            stream_type="interaction",
            version=1,
            occurred_at=now - timedelta(seconds=rng.random() * 200 * 86400),
            payload=CallLogged(
                direction=rng.choice(("in", "out")),
                duration_min=round(min(rng.expovariate(1 / 15), 240.0), 1),
            ),
            actor="user:bench",
            channel="call",
        )
        for customer in who
    ]
    events.sort(key=lambda e: e.occurred_at)
    for i in range(0, len(events), 20_000):
        engine.store.append(events[i : i + 20_000], bulk=True)
    return len(events)


class Stream(threading.Thread):
    """A steady stream of interaction commands on the background customers."""

    def __init__(self, url: str, customers: list[UUID], rate: float, seed: int) -> None:
        super().__init__(name="bench-stream", daemon=True)
        self.url, self.customers, self.rate = url, customers, rate
        self.rng = random.Random(seed)
        self.stop = threading.Event()
        self.sent = 0
        self.error: BaseException | None = None

    def run(self) -> None:
        if self.rate <= 0:
            return
        try:
            with open_engine(self.url, env={}) as engine:
                interval = 1.0 / self.rate
                due = time.perf_counter()
                while not self.stop.is_set():
                    name = self.rng.choice(("interaction.log_call", "interaction.log_email"))
                    customer = self.rng.choice(self.customers)
                    data = interaction_data(self.rng, name, customer, None)
                    ctx = CommandContext(actor="user:stream", channel="api", command_id=None)
                    engine.bus.execute_json(name, msgspec.json.encode(data), ctx)
                    self.sent += 1
                    due += interval
                    self.stop.wait(max(0.0, due - time.perf_counter()))
        except BaseException as e:
            self.error = e


# -- measurement ----------------------------------------------------------------------------


class Sampler:
    """One call on a customer never called before; waits until a query shows its effect."""

    def __init__(
        self,
        engine: Engine,
        conn: psycopg.Connection[Any],
        schema: str,
        fresh: list[UUID],
        projector: Projector,
        *,
        seed: int,
        interval: float,
    ) -> None:
        self.execute = engine.bus.execute_json
        self.conn = conn
        self.profile = SQL(
            "SELECT position FROM {0}.customer_profile WHERE customer_id = %s"
        ).format(Identifier(schema))
        self.member = SQL("SELECT 1 FROM {0}.audience_members WHERE key = %s").format(
            Identifier(schema)
        )
        self.fresh = fresh
        self.projector = projector
        self.rng = random.Random(seed)
        self.interval = interval
        self.sent: list[tuple[UUID, int]] = []

    def append(self) -> tuple[UUID, int]:
        customer = self.fresh.pop()
        data = interaction_data(self.rng, "interaction.log_call", customer, None)
        ctx = CommandContext(actor="user:bench", channel="api", command_id=str(uuid4()))
        result = self.execute("interaction.log_call", msgspec.json.encode(data), ctx)
        if len(result.positions) != 1:
            raise SystemExit(f"log_call appended {len(result.positions)} events, expected 1")
        self.sent.append((customer, result.positions[0]))
        return customer, result.positions[0]

    def _wait(self, query: Any, params: tuple[Any, ...], done: Any, what: str) -> None:
        execute, interval = self.conn.execute, self.interval
        deadline = time.perf_counter() + VISIBLE_TIMEOUT
        while True:
            row = execute(query, params, prepare=True).fetchone()
            if done(row):
                return
            if time.perf_counter() > deadline:
                self.projector.check_alive()
                raise SystemExit(
                    f"{what} not visible after {VISIBLE_TIMEOUT:.0f} s:\n"
                    + "\n".join(self.projector.tail(40))
                )
            if interval:
                time.sleep(interval)

    def in_profile(self) -> float:
        """ms from before the append until customer_profile shows it."""
        t0 = time.perf_counter_ns()
        customer, position = self.append()
        self._wait(
            self.profile,
            (customer,),
            lambda r: r is not None and r[0] >= position,
            f"position {position} in customer_profile",
        )
        return (time.perf_counter_ns() - t0) / 1e6

    def entered(self) -> float:
        """ms from before the append until the customer is a member of `new_callers`."""
        t0 = time.perf_counter_ns()
        customer, position = self.append()
        self._wait(
            self.member,
            (f"{SAMPLED}/{customer}",),
            lambda r: r is not None,
            f"{customer} in {SAMPLED} (position {position})",
        )
        return (time.perf_counter_ns() - t0) / 1e6


def phase(name: str, sample: Any, samples: int, warmup: int) -> list[float]:
    for _ in range(warmup):
        sample()
    out: list[float] = []
    gc.collect()
    gc.freeze()
    try:
        for i in range(samples):
            out.append(sample())
            if (i + 1) % max(1, samples // 4) == 0:
                log(f"  {name}: {i + 1:>5,} samples, p50 {percentile(out, 50):.2f} ms")
    finally:
        gc.unfreeze()
    return out


def wait_defined(conn: psycopg.Connection[Any], schema: str, projector: Projector) -> float:
    """Seconds until the projector has applied the definitions (members written with them)."""
    query = SQL("SELECT count(*) FROM {0}.audience_defs").format(Identifier(schema))
    t0 = time.perf_counter()
    while True:
        try:
            row = conn.execute(query).fetchone()
        except psycopg.errors.UndefinedTable:
            row = None
        if row is not None and row[0] >= len(AUDIENCES):
            return time.perf_counter() - t0
        projector.check_alive()
        if time.perf_counter() - t0 > READY_TIMEOUT:
            raise SystemExit("the definitions were not applied:\n" + "\n".join(projector.tail()))
        time.sleep(0.01)


def entries(conn: psycopg.Connection[Any], schema: str) -> dict[UUID, list[int | None]]:
    rows = conn.execute(
        SQL(
            "SELECT customer_id, position FROM {0}.audience_changes "
            "WHERE audience = %s AND kind = 'entered'"
        ).format(Identifier(schema)),
        (SAMPLED,),
    ).fetchall()
    out: dict[UUID, list[int | None]] = {}
    for c, pos in rows:
        out.setdefault(UUID(str(c)), []).append(pos)
    return out


def sizes(conn: psycopg.Connection[Any], schema: str) -> dict[str, int]:
    rows = conn.execute(
        SQL("SELECT audience, count(*) FROM {0}.audience_members GROUP BY audience").format(
            Identifier(schema)
        )
    ).fetchall()
    return {a: int(n) for a, n in rows}


class Result(msgspec.Struct, kw_only=True):
    base: list[float]
    subject: list[float]
    entries: dict[UUID, list[int | None]]
    sampled: list[tuple[UUID, int]]
    sizes: dict[str, int]
    stream_sent: int
    projector_exit: int | None


def setup(
    engine: Engine, total: int, need: int, args: argparse.Namespace
) -> tuple[list[UUID], list[UUID], int]:
    """Customers registered, history appended, every view caught up: (fresh, background,
    history events)."""
    t0 = time.perf_counter()
    ids = register(engine, total, args.seed)
    fresh, others = ids[:need], ids[need:]
    seeded = seed_history(engine, ids, int(args.history * total), args.seed + 11)
    seeded += seed_calls(engine, others, int(args.history * len(others) / 2), args.seed + 13)
    with open_runner(engine) as runner:
        applied = runner.catch_up()
    log(
        f"setup: {total:,} customers registered, {seeded:,} history events, "
        f"{applied:,} applied to the views in {time.perf_counter() - t0:.1f} s"
    )
    return fresh, others[: args.background], seeded


def measure(
    engine: Engine,
    schema: str,
    url: str,
    *,
    fresh: list[UUID],
    background: list[UUID],
    args: argparse.Namespace,
) -> Result:
    """Both phases with the projector running and the stream going."""
    with tempfile.TemporaryFile("w+", encoding="utf-8") as stderr:
        projector = Projector(url, args.projector_poll, stderr)
        stream = Stream(url, background, args.rate, args.seed + 17)
        try:
            log(f"projector: running after {projector.wait_ready():.1f} s")
            with psycopg.connect(pg_url(), autocommit=True) as conn:
                sampler = Sampler(
                    engine,
                    conn,
                    schema,
                    fresh,
                    projector,
                    seed=args.seed,
                    interval=args.poll_interval,
                )
                stream.start()
                log(f"stream: {args.rate:g} commands/s on {len(background):,} customers")
                base = phase("no audience", sampler.in_profile, args.samples, args.warmup)
                first = len(sampler.sent)
                ctx = CommandContext(actor="user:bench", channel="manual")
                for name, rule in AUDIENCES.items():
                    engine.bus.execute_json("audience.define", {"name": name, "rule": rule}, ctx)
                applied = wait_defined(conn, schema, projector)
                log(f"defined {len(AUDIENCES)} audiences: applied {applied:.1f} s later")
                subject = phase(
                    f"{len(AUDIENCES)} audiences", sampler.entered, args.samples, args.warmup
                )
                stream.stop.set()
                stream.join()
                if stream.error is not None:
                    raise SystemExit(f"the stream failed: {stream.error!r}")
                got = entries(conn, schema)
                members = sizes(conn, schema)
            code = projector.stop()
            for line in projector.tail(3):
                log(f"  crm serve projector: {line.strip()}")
        finally:
            stream.stop.set()
            projector.close()
    return Result(
        base=base,
        subject=subject,
        entries=got,
        sampled=sampler.sent[first:],
        sizes=members,
        stream_sent=stream.sent,
        projector_exit=code,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--samples", type=int, default=500, help="timed samples of each phase")
    parser.add_argument("--warmup", type=int, default=20, help="untimed samples of each phase")
    parser.add_argument("--customers", type=int, default=2000, help="customers, sampled excluded")
    parser.add_argument("--background", type=int, default=1000, help="customers of the stream")
    parser.add_argument("--history", type=float, default=10.0, help="events per customer")
    parser.add_argument("--rate", type=float, default=20.0, help="stream commands per second")
    parser.add_argument("--poll-interval", type=float, default=0.0005)
    parser.add_argument("--projector-poll", type=float, default=0.2)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    need = 2 * (args.samples + args.warmup)
    total = args.customers + need

    with bench_schema("audience_live") as schema:
        url = with_schema(pg_url(), schema)
        with open_engine(url, env={}) as engine:
            fresh, background, seeded = setup(engine, total, need, args)
            r = measure(engine, schema, url, fresh=fresh, background=background, args=args)
    wrong = [(c, p) for c, p in r.sampled if r.entries.get(c) != [p]]
    if wrong:
        raise SystemExit(f"{len(wrong)} sampled calls without exactly one entry: {wrong[:3]}")
    if r.projector_exit != 0:
        raise SystemExit(f"the projector exited {r.projector_exit} on SIGTERM, expected 0")
    subject, base = r.subject, r.base

    p = {q: percentile(subject, q) for q in (50, 90, 99)}
    b = {q: percentile(base, q) for q in (50, 90, 99)}
    value, baseline = p[99], b[99]
    log(
        f"append -> entry visible p50 {p[50]:.2f} ms p99 {value:.2f} ms (goal p99 < "
        f"{GOAL_MS:.0f} ms: {'met' if value < GOAL_MS else 'NOT met'}); no audience, append -> "
        f"customer_profile p50 {b[50]:.2f} ms p99 {baseline:.2f} ms; stream sent {r.stream_sent:,}; "
        f"sizes {r.sizes}"
    )
    emit(
        {
            "bench": "audience_live",
            "value": round(value, 3),
            "unit": "ms",
            "baseline": round(baseline, 3),
            "ratio": round(baseline / value, 3),
            "p50": round(p[50], 3),
            "baseline_p50": round(b[50], 3),
            "p90": round(p[90], 3),
            "baseline_p90": round(b[90], 3),
            "max": round(max(subject), 3),
            "baseline_max": round(max(base), 3),
            "goal_ms": GOAL_MS,
            "met": value < GOAL_MS,
            "samples": args.samples,
            "audiences": len(AUDIENCES),
            "audience_sizes": r.sizes,
            "customers": total,
            "history_events": seeded,
            "stream_rate": args.rate,
            "stream_sent": r.stream_sent,
            "projector_exit": r.projector_exit,
        }
    )


if __name__ == "__main__":
    main()
