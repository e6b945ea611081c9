"""`crm import` of interaction commands into PostgreSQL, events/s, against the bulk append alone.

subject   the real CLI in a process of its own: `python -m infra.cli import FILE.jsonl` with
          CRM_STORE_URL naming a fresh schema (tables created before timing). Timed from spawn
          to exit, so it includes the interpreter's start and imports (reported apart as
          `startup_seconds`, the time of `python -m infra.cli --help`). Everything the import
          does is in it: parse and validate each line, skip recorded command ids, load the
          customers of each batch, decide, encode (personal fields sealed with AES-GCM per
          customer), append events and command records through the bulk path (binary COPY).
          It must exit 0 and leave exactly one event and one command record per line.
baseline  `EventStore.append_stored(rows, bulk=True)` (the bulk path: binary COPY under the
          log lock) of the very rows the import wrote (stream, version, topic, state bytes read
          back from its log, in log order), in batches of the importer's size, into a second
          fresh schema: the cost of appending the same events already decided and encoded.
ratio     value / baseline (target >= 0.5).
extra     `--inprocess N` also runs `handlers.importer.Importer` in this process over the
          file's first N lines into a third schema (`--profile` adds a cProfile of it).

The file (cached under bench/.cache/) holds `--customers` customer.register lines, then
interaction commands over those customers (a few very active, most rarely seen) mixing every
channel: web, e-mail, call, conversation, meeting, questionnaire; notes, subjects, bodies,
summaries and answers are personal free text. Business times spread over two years. Every line
has its own command_id. Each line decides exactly one event.

    .venv/bin/python bench/import.py [--commands 1000000] [--customers 10000] [--batch 5000]
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import argparse
import cProfile
import io
import itertools
import pstats
import random
import subprocess
import time
from datetime import timedelta

import psycopg
from psycopg.sql import SQL, Identifier

from bench._common import (
    CACHE_DIR,
    EPOCH,
    bench_schema,
    emit,
    fmt_rate,
    import_line,
    interaction_data,
    log,
    payload_fingerprint,
    pg_url,
    process_env,
    random_interaction,
    random_uuid,
    register_data,
    timed,
    with_schema,
)
from domain.customers.commands import RegisterCustomer
from domain.interactions import commands as icmd
from handlers.decision import CommandContext
from handlers.importer import Importer
from infra.codec import StoredRow
from infra.engine import open_engine
from infra.store.backends import open_store

FIXTURE_FORMAT = 1
TWO_YEARS = timedelta(days=730)
COMMAND_TYPES = (
    RegisterCustomer,
    icmd.LogEmail,
    icmd.LogCall,
    icmd.LogMeeting,
    icmd.LogQuestionnaire,
    icmd.LogConversation,
    icmd.LogWebActivity,
)


def fixture(commands: int, customers: int, seed: int) -> Path:
    """The JSONL file of commands, generated once and cached (not timed)."""
    shape = payload_fingerprint(*COMMAND_TYPES)  # type: ignore[arg-type]
    path = CACHE_DIR / f"import-v{FIXTURE_FORMAT}-{commands}-{customers}-{seed}-{shape}.jsonl"
    if path.exists():
        log(f"fixture: {path.relative_to(CACHE_DIR.parent.parent)}")
        return path
    log(f"fixture: generating {commands:,} lines ({customers:,} customers) ...")
    started = time.perf_counter()
    rng = random.Random(seed)
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    ids = [random_uuid(rng) for _ in range(customers)]
    # Registrations over the first week, interactions over the two years that follow.
    interactions_from = EPOCH + timedelta(days=7)
    span = int(TWO_YEARS.total_seconds())
    kinds_seen: set[str] = set()
    with tmp.open("wb", buffering=1 << 20) as out:
        for i, customer in enumerate(ids):
            at = EPOCH + timedelta(seconds=i * 60 + rng.randrange(60))
            data = register_data(rng, i, customer, at)
            out.write(import_line("customer.register", data, str(random_uuid(rng))))
        for j in range(commands - customers):
            customer = ids[int(customers * rng.random() ** 2)]  # a few customers are very active
            at = interactions_from + timedelta(seconds=rng.randrange(span))
            if j < 6:  # every channel at least once, even in a tiny file
                name = ("web", "email", "call", "conversation", "meeting", "questionnaire")[j]
                name = f"interaction.log_{name}"
                data = interaction_data(rng, name, customer, at)
            else:
                name, data = random_interaction(rng, customer, at)
            kinds_seen.add(name)
            out.write(import_line(name, data, str(random_uuid(rng))))
    tmp.replace(path)
    log(
        f"fixture: {commands:,} lines, {path.stat().st_size / 1e6:,.0f} MB in "
        f"{time.perf_counter() - started:.0f} s, cached in "
        f"{path.relative_to(CACHE_DIR.parent.parent)}"
    )
    return path


def count_rows(schema: str) -> tuple[int, int]:
    """(events in the log, command records) of a schema."""
    with psycopg.connect(pg_url()) as conn:
        events = conn.execute(
            SQL("SELECT count(*) FROM {0}.stored_events").format(Identifier(schema))
        ).fetchone()
        commands = conn.execute(
            SQL("SELECT count(*) FROM {0}.crm_commands").format(Identifier(schema))
        ).fetchone()
    assert events is not None and commands is not None
    return int(events[0]), int(commands[0])


def checkpoint() -> None:
    """Flush dirty pages so that no side pays for the writes of the one before it."""
    try:
        with psycopg.connect(pg_url(), autocommit=True) as conn:
            conn.execute("CHECKPOINT")
    except psycopg.Error:
        pass


def startup_seconds(url: str) -> float:
    """What a `crm` process costs before it does anything: interpreter, imports, typer."""
    cmd = [sys.executable, "-m", "infra.cli", "--help"]
    best = float("inf")
    for _ in range(3):
        t0 = time.perf_counter()
        subprocess.run(cmd, env=process_env(url), capture_output=True, check=True)
        best = min(best, time.perf_counter() - t0)
    return best


def run_cli(path: Path, schema: str, lines: int, batch: int) -> tuple[float, int]:
    """The subject: `crm import FILE` as a user runs it; (seconds, events appended)."""
    url = with_schema(pg_url(), schema)
    with open_engine(url, env={}):  # tables and key metadata exist before timing
        pass
    checkpoint()
    cmd = [sys.executable, "-m", "infra.cli", "import", str(path), "--batch-size", str(batch)]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, env=process_env(url), capture_output=True, text=True, check=False)
    seconds = time.perf_counter() - t0
    tail = [line for line in proc.stderr.strip().splitlines() if line.strip()][-3:]
    for line in tail:
        log(f"  crm import: {line.strip()}")
    if proc.returncode != 0:
        raise SystemExit(f"crm import exited {proc.returncode}:\n{proc.stderr[-4000:]}")
    events, commands = count_rows(schema)
    if (events, commands) != (lines, lines):
        raise SystemExit(
            f"crm import left {events:,} events and {commands:,} command records; "
            f"expected {lines:,} of each (one per line)"
        )
    return seconds, events


def read_back(schema: str, page: int = 50_000) -> list[StoredRow]:
    """The rows the import wrote, in log order, as the recorders insert them."""
    rows: list[StoredRow] = []
    with open_engine(with_schema(pg_url(), schema), env={}) as engine:
        after = 0
        while chunk := engine.store.read_rows(after, page):
            rows.extend(StoredRow(r.stream_id, r.version, r.topic, r.state) for r in chunk)
            after = chunk[-1].position
    return rows


def run_baseline(rows: list[StoredRow], schema: str, batch: int) -> float:
    """The bulk append of the same rows, batch by batch, into a fresh log; seconds."""
    store = open_store(with_schema(pg_url(), schema), env={})
    try:
        batches = [rows[i : i + batch] for i in range(0, len(rows), batch)]
        checkpoint()

        def append_all() -> None:
            append = store.append_stored
            for chunk in batches:
                append(chunk, bulk=True)

        seconds = timed(append_all)
    finally:
        store.close()
    events, _ = count_rows(schema)
    if events != len(rows):
        raise SystemExit(f"baseline left {events:,} events, expected {len(rows):,}")
    return seconds


def run_inprocess(path: Path, n: int, schema: str, batch: int, profile: bool) -> float:
    """`Importer` in this process over the file's first `n` lines; events/s."""
    with open_engine(with_schema(pg_url(), schema), env={}) as engine, path.open("rb") as fh:
        importer = Importer(engine.bus, engine.store, batch_size=batch, pipeline=True)
        ctx = CommandContext(actor="import", channel="import")
        profiler = cProfile.Profile() if profile else None
        report = None
        checkpoint()

        def run() -> None:
            nonlocal report
            if profiler is not None:
                profiler.enable()
            report = importer.run(itertools.islice(fh, n), ctx)
            if profiler is not None:
                profiler.disable()

        seconds = timed(run)
    assert report is not None
    if report.errors or report.events != n:
        raise SystemExit(f"in-process import: {report.events:,} events, {report.errors[:3]}")
    if profiler is not None:
        out = io.StringIO()
        pstats.Stats(profiler, stream=out).sort_stats("cumulative").print_stats(40)
        log(out.getvalue())
    return report.events / seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--commands", type=int, default=1_000_000, help="lines in the file")
    parser.add_argument(
        "--customers",
        type=int,
        default=10_000,
        help="customer.register lines first (at most 1 in 100 of the lines)",
    )
    parser.add_argument("--batch", type=int, default=5000, help="the importer's batch size")
    parser.add_argument(
        "--inprocess",
        type=int,
        default=0,
        help="also run the Importer in-process over this many first lines (0: skip)",
    )
    parser.add_argument("--profile", action="store_true", help="cProfile the in-process run")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()

    customers = max(1, min(args.customers, args.commands // 100))
    path = fixture(args.commands, customers, args.seed)
    lines = args.commands
    log(
        f"import: {lines:,} lines ({customers:,} registrations, "
        f"{lines - customers:,} interactions), {path.stat().st_size / 1e6:,.0f} MB, "
        f"batches of {args.batch:,}"
    )
    extra: dict[str, object] = {}
    with bench_schema("import") as subject_schema:
        startup = startup_seconds(with_schema(pg_url(), subject_schema))
        log(f"startup of a crm process (--help): {startup:.2f} s")
        seconds, events = run_cli(path, subject_schema, lines, args.batch)
        value = events / seconds
        log(f"subject  crm import  {fmt_rate(value)}  ({events:,} events, {seconds:.1f} s)")
        rows = read_back(subject_schema)
    with bench_schema("import_base") as baseline_schema:
        base_seconds = run_baseline(rows, baseline_schema, args.batch)
    baseline = len(rows) / base_seconds
    log(f"baseline bulk append {fmt_rate(baseline)}  ({len(rows):,} events, {base_seconds:.1f} s)")
    mean_bytes = sum(len(r.state) for r in rows) / len(rows)
    del rows
    if args.inprocess:
        n = min(args.inprocess, lines)
        with bench_schema("import_inproc") as schema:
            rate = run_inprocess(path, n, schema, args.batch, args.profile)
        log(f"extra    Importer in-process, first {n:,} lines  {fmt_rate(rate)}")
        extra.update(inprocess_rate=round(rate), inprocess_lines=n)
    ratio = value / baseline
    log(f"crm import / bulk append = {ratio:.3f} (target >= 0.5)")
    emit(
        {
            "bench": "import",
            "value": round(value),
            "unit": "events/s",
            "baseline": round(baseline),
            "ratio": round(ratio, 3),
            "lines": lines,
            "events": events,
            "seconds": round(seconds, 2),
            "baseline_events": events,
            "baseline_seconds": round(base_seconds, 2),
            "startup_seconds": round(startup, 2),
            "customers": customers,
            "batch": args.batch,
            "mean_state_bytes": round(mean_bytes, 1),
            **extra,
        }
    )


if __name__ == "__main__":
    main()
