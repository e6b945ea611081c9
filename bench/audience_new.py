"""A new windowed audience over the whole history, seconds to complete membership, on PostgreSQL.

setup     (not timed) a fresh schema; `--customers` registrations (`customer_envelopes`, sealed
          personal fields) and `--events` in all (registrations included), the rest interaction
          events of those customers: calls (`duration_min` drawn from an exponential of mean
          `--call-mean`, capped at 240), e-mails and web activity, a few very active customers
          and most rarely seen (Pareto weights), business times spread over the year before
          NOW = 2025-01-01 (the engine's and the runner's clock: `FixedClock(NOW)`), appended in
          log order by `EventStore.append(bulk=True)` (binary COPY; no command handling: the
          envelopes are built directly). Then the `audiences` view alone is caught up by a
          runner (`open_runner(engine).catch_up(["audiences"])`): every customer's facts are
          in its tables (the JSON documents and the typed `audience_facts` rows) before the
          define; other views stay behind (they do not handle `audience.*`). ANALYZE,
          CHECKPOINT.
subject   `audience.define` of RULE (the seeds' example by default,
          `sum(call.duration_min, last 4 months) > 300`) through `engine.bus.execute_json`, then
          `runner.catch_up(["audiences"])` until the definition is applied: the view compiles
          the rule to one SQL query over `audience_facts` (projections/audience_sql.py), which
          returns each customer's answer and next change at NOW, and writes the members,
          their change rows and a timer for each customer whose answer can change with time
          (the earlier of its current timer and the rule's edge).
          Timed from before the command to the commit of that page. Run `warm` on the runner
          that caught the view up (its cache of facts holds every customer, as a long-running
          `crm serve projector` does; the compiled define does not use it) and `cold` on a
          fresh runner (new projection objects, nothing cached: a projector just started); each run defines a new name, the previous
          audience retired first (untimed), so one live audience is evaluated each time.
baseline  in the same run, brute force in Python over the same log: read it page by page with
          the store's `read_rows` and decode every row with `decode_rows` (personal fields left
          sealed: the rule needs none), sum each customer's `interaction.call_logged`
          `duration_min` with `NOW - 4 months < occurred_at <= NOW`, count the customers over
          the threshold. The brute-force members must equal the view's members exactly.
value     seconds of the worse (slower) of the warm and cold defines; baseline: seconds of the
          brute force (the best of `--repeat`); ratio = baseline / value (target: value < 5 s
          and ratio >= 3). `--profile warm|cold` runs that define under cProfile and prints
          where its time goes (its seconds are then inflated by the profiler).

    .venv/bin/python bench/audience_new.py [--customers 100000] [--events 1000000] [--profile cold]
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import argparse
import contextlib
import cProfile
import io
import itertools
import pstats
import random
import time
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

import msgspec
import psycopg
from psycopg.sql import SQL, Identifier

from bench._common import (
    bench_schema,
    customer_envelopes,
    emit,
    log,
    pg_url,
    random_uuid,
    timed,
    with_schema,
)
from domain.audiences.evaluate import months_before
from domain.envelope import Envelope
from domain.interactions.events import CallLogged, EmailLogged, WebActivity
from handlers.decision import CommandContext
from infra.clock import FixedClock
from infra.engine import Engine, open_engine
from infra.projector import open_runner
from projections.runner import PAGE, Runner

NOW = datetime(2025, 1, 1, tzinfo=UTC)
"""The clock of the run: business times fall in the year before it."""
DEFAULT_RULE = "sum(call.duration_min, last 4 months) > 300"
CALL = "interaction.call_logged"
GOAL_SECONDS = 5.0
GOAL_RATIO = 3.0
_PAGES = ("/", "/products", "/pricing", "/support", "/contact", "/account/orders")
_OUTCOMES = (None, "reached", "voicemail", "call back", "sale")


# -- fixture --------------------------------------------------------------------------------


def registrations(customers: int, seed: int) -> list[Envelope]:
    """The registrations, business times moved to the first days of the year before NOW."""
    start = NOW - timedelta(days=366)
    out = []
    for i, e in enumerate(customer_envelopes(customers, seed=seed)):
        at = start + timedelta(seconds=i * 3)
        out.append(Envelope(**{**_fields(e), "occurred_at": at}))
    return out


def _fields(e: Envelope) -> dict[str, Any]:
    return {k: getattr(e, k) for k in e.__struct_fields__}


def interactions(
    customers: list[UUID], n: int, seed: int, call_share: float, call_mean: float
) -> list[Envelope]:
    """`n` interaction events over the customers (Pareto-skewed), sorted by business time."""
    rng = random.Random(seed)
    weights = list(itertools.accumulate(rng.paretovariate(1.1) for _ in customers))
    who = rng.choices(customers, cum_weights=weights, k=n)
    begin = NOW - timedelta(days=360)
    span = (NOW - begin).total_seconds()
    times = sorted(begin + timedelta(seconds=rng.random() * span) for _ in range(n))
    out = []
    for customer, at in zip(who, times, strict=True):
        r = rng.random()
        payload: Any
        if r < call_share:
            payload = CallLogged(
                direction=rng.choice(("in", "out")),
                duration_min=round(min(rng.expovariate(1 / call_mean), 240.0), 1),
                outcome=rng.choice(_OUTCOMES),
            )
            channel = "call"
        elif r < call_share + (1 - call_share) / 2:
            payload = EmailLogged(direction=rng.choice(("in", "out")), thread=None)
            channel = "email"
        else:
            payload = WebActivity(action="page_view", page=rng.choice(_PAGES))
            channel = "web"
        out.append(
            Envelope(
                customer_id=customer,
                stream_id=random_uuid(rng),
                stream_type="interaction",
                version=1,
                occurred_at=at,
                payload=payload,
                actor="user:bench",
                channel=channel,
            )
        )
    return out


def load(engine: Engine, events: list[Envelope], batch: int = 20_000) -> int:
    appended = 0
    for i in range(0, len(events), batch):
        appended += len(engine.store.append(events[i : i + batch], bulk=True))
    return appended


def maintain(schema: str) -> None:
    with psycopg.connect(pg_url(), autocommit=True) as conn:
        conn.execute(SQL("ANALYZE {0}.stored_events").format(Identifier(schema)))
        with contextlib.suppress(psycopg.Error):
            conn.execute("CHECKPOINT")


# -- subject --------------------------------------------------------------------------------


def command(engine: Engine, name: str, data: dict[str, Any]) -> None:
    ctx = CommandContext(actor="user:bench", channel="manual")
    engine.bus.execute_json(name, data, ctx)


def define(
    engine: Engine, runner: Runner, name: str, rule: str, profiler: cProfile.Profile | None = None
) -> float:
    """Seconds from the command to the view having applied it (members written)."""

    def run() -> None:
        if profiler is not None:
            profiler.enable()
        command(engine, "audience.define", {"name": name, "rule": rule})
        runner.catch_up(["audiences"])
        if profiler is not None:
            profiler.disable()

    seconds = timed(run)
    check_live(runner)
    return seconds


def check_live(runner: Runner) -> None:
    behind = [
        s
        for s in runner.status()
        if s.name == "audiences" and (s.lag or s.state != "live" or s.dead_letters)
    ]
    if behind:
        raise SystemExit(f"the audiences view is behind or stopped: {behind}")


def retire(engine: Engine, runner: Runner, name: str) -> None:
    command(engine, "audience.retire", {"name": name})
    runner.catch_up(["audiences"])


def members(schema: str, name: str) -> set[UUID]:
    with psycopg.connect(pg_url()) as conn:
        rows = conn.execute(
            SQL("SELECT customer_id FROM {0}.audience_members WHERE audience = %s").format(
                Identifier(schema)
            ),
            (name,),
        ).fetchall()
    return {UUID(str(c)) for (c,) in rows}


# -- baseline -------------------------------------------------------------------------------


class BruteForce(msgspec.Struct, kw_only=True):
    members: set[UUID]
    read_seconds: float = 0.0
    """Of it, waiting for the pages (`read_rows`); the rest is decoding and summing."""


def brute_force(engine: Engine, months: int, threshold: float, page: int) -> BruteForce:
    """Customers whose calls in the last `months` months at NOW sum over `threshold`."""
    store = engine.store
    start = months_before(NOW, months)
    sums: dict[UUID, float] = defaultdict(float)
    after = 0
    read = 0.0
    while True:
        t0 = time.perf_counter()
        rows = store.read_rows(after, page)
        read += time.perf_counter() - t0
        if not rows:
            break
        for e in store.decode_rows(rows, unseal=()):
            if e.type == CALL and start < e.occurred_at <= NOW and e.customer_id is not None:
                sums[e.customer_id] += e.payload.duration_min
        after = rows[-1].position
    members = {c for c, total in sums.items() if total > threshold}
    return BruteForce(members=members, read_seconds=read)


def timed_brute_force(engine: Engine, args: argparse.Namespace) -> tuple[float, BruteForce]:
    found: list[BruteForce] = []
    seconds = timed(
        lambda: found.append(brute_force(engine, args.months, args.threshold, args.page))
    )
    return seconds, found[0]


# -- main -----------------------------------------------------------------------------------


def profile_text(profiler: cProfile.Profile) -> str:
    out = io.StringIO()
    stats = pstats.Stats(profiler, stream=out)
    stats.sort_stats("cumulative").print_stats(40)
    stats.sort_stats("tottime").print_stats(30)
    return out.getvalue()


def setup(engine: Engine, schema: str, args: argparse.Namespace) -> tuple[Runner, int]:
    """The log appended and the audiences view caught up: (the runner that did it, events)."""
    t0 = time.perf_counter()
    regs = registrations(args.customers, args.seed)
    ids = [e.customer_id for e in regs if e.customer_id is not None]
    rest = interactions(
        ids, args.events - len(regs), args.seed + 1, args.call_share, args.call_mean
    )
    log(
        f"fixture: {len(regs):,} registrations, {len(rest):,} interactions built in "
        f"{time.perf_counter() - t0:.1f} s"
    )
    t0 = time.perf_counter()
    appended = load(engine, regs) + load(engine, rest)
    del regs, rest
    maintain(schema)
    log(f"setup: {appended:,} events appended in {time.perf_counter() - t0:.1f} s")
    runner = open_runner(engine, page=args.page)
    t0 = time.perf_counter()
    applied = runner.catch_up(["audiences"])
    check_live(runner)
    maintain(schema)
    log(
        f"setup: audiences view caught up ({applied:,} events applied) in "
        f"{time.perf_counter() - t0:.1f} s"
    )
    return runner, appended


def defines(
    engine: Engine, schema: str, runner: Runner, expected: set[UUID], args: argparse.Namespace
) -> tuple[dict[str, float], str]:
    """The warm define on `runner`, then the cold one on a fresh runner: seconds of each (and
    a profile when asked). Each result must equal the brute force's."""
    rule = args.rule
    runs: dict[str, float] = {}
    text = ""
    previous: str | None = None
    try:
        for kind in ("warm", "cold"):
            name = f"heavy_callers_{kind}"
            if previous is not None:
                retire(engine, runner, previous)
            if kind == "cold":
                runner.close()
                runner = open_runner(engine, page=args.page)
                maintain(schema)
            profiler = cProfile.Profile() if args.profile == kind else None
            runs[kind] = define(engine, runner, name, rule, profiler)
            if profiler is not None:
                text = profile_text(profiler)
            previous = name
            got = members(schema, name)
            if got != expected:
                raise SystemExit(
                    f"{kind} define: the view has {len(got):,} members, brute force "
                    f"{len(expected):,} ({len(got - expected)} extra, "
                    f"{len(expected - got)} missing)"
                )
            profiled = " (profiled)" if profiler is not None else ""
            log(
                f"  define ({kind}){profiled}: {runs[kind]:.2f} s, {len(got):,} members (= brute force)"
            )
    finally:
        runner.close()
    return runs, text


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--customers", type=int, default=100_000)
    parser.add_argument("--events", type=int, default=1_000_000, help="events in the log")
    parser.add_argument("--call-share", type=float, default=0.4, help="share of calls")
    parser.add_argument("--call-mean", type=float, default=12.0, help="mean call minutes")
    parser.add_argument("--months", type=int, default=4, help="the rule's window")
    parser.add_argument("--threshold", type=float, default=300.0, help="the rule's minutes")
    parser.add_argument("--page", type=int, default=PAGE, help="log rows read per page")
    parser.add_argument("--repeat", type=int, default=2, help="brute-force runs")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument(
        "--profile", choices=("warm", "cold"), help="cProfile that define (its time inflated)"
    )
    args = parser.parse_args()
    if args.events <= args.customers:
        raise SystemExit("--events counts the registrations too: give more than --customers")
    args.rule = f"sum(call.duration_min, last {args.months} months) > {args.threshold:g}"

    with (
        bench_schema("audience_new") as schema,
        open_engine(with_schema(pg_url(), schema), env={}, clock=FixedClock(NOW)) as engine,
    ):
        runner, appended = setup(engine, schema, args)
        results = []
        for _ in range(args.repeat):
            results.append(timed_brute_force(engine, args))
            seconds, found = results[-1]
            log(
                f"  brute force: {seconds:.2f} s (reading {found.read_seconds:.2f} s),"
                f" {len(found.members):,} customers over"
            )
        baseline, best = min(results, key=lambda r: r[0])
        runs, text = defines(engine, schema, runner, best.members, args)
    if text:
        log(text)

    value = max(runs.values())
    ratio = baseline / value
    met = value < GOAL_SECONDS and ratio >= GOAL_RATIO
    log(
        f"define -> members complete: warm {runs['warm']:.2f} s, cold {runs['cold']:.2f} s; "
        f"brute force {baseline:.2f} s; ratio {ratio:.2f} (goal < {GOAL_SECONDS:g} s and "
        f"ratio >= {GOAL_RATIO:g}: {'met' if met else 'NOT met'})"
    )
    emit(
        {
            "bench": "audience_new",
            "value": round(value, 3),
            "unit": "s",
            "baseline": round(baseline, 3),
            "ratio": round(ratio, 3),
            "warm_seconds": round(runs["warm"], 3),
            "cold_seconds": round(runs["cold"], 3),
            "baseline_read_seconds": round(best.read_seconds, 3),
            "goal_seconds": GOAL_SECONDS,
            "goal_ratio": GOAL_RATIO,
            "met": met,
            "profiled": args.profile,
            "rule": args.rule,
            "members": len(best.members),
            "events": appended,
            "customers": args.customers,
            "page": args.page,
            "seed": args.seed,
        }
    )


if __name__ == "__main__":
    main()
