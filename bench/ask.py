"""An ad-hoc question over ~1,000,000 events on PostgreSQL, against a full read and decode of the log.

setup     (not timed) the demo history (`infra.history`, `--customers` customers over `--years`
          years ending at a fixed date, seed `--seed`; ~1.0M events at the default 6,300
          customers) imported once by `handlers.importer` (bulk path) into a fresh schema; its
          stored rows and wrapped data keys are then cached under bench/.cache/ (keyed by the
          payload shapes), and later runs COPY them into a fresh schema instead of importing
          again. Then ANALYZE, CHECKPOINT.
subject   `replay.ask.run_question` of examples/questions/order_lead_times.py: it reads
          order.placed, .paid, .shipped, .delivered and .cancelled (about 10% of the demo's
          events; the exact share is printed): pages of `--page` rows filtered by topic in
          SQL, decoded (personal fields not opened, as a question without PERSONAL = True),
          folded, answered; timed end to end.
baseline  in the same run, the full unfiltered read and decode of the same log through the same
          store: `read_rows(after, --page)` page by page and `decode_rows(rows, unseal=())`
          (the same decode as the question's: personal fields left sealed), every event.
value     seconds of the question, the best of `--repeat` runs (they alternate with the
          baseline runs); baseline: the best of as many full reads, in seconds; ratio =
          baseline / value (target >= 3).

    .venv/bin/python bench/ask.py [--customers 6300] [--years 2] [--seed 7] [--repeat 3]
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import argparse
import time
from collections import Counter
from typing import Any
from uuid import UUID

import msgspec
import psycopg
from eventsourcing.persistence import StoredEvent
from psycopg.sql import SQL, Identifier

from bench._common import (
    CACHE_DIR,
    bench_schema,
    emit,
    log,
    payload_fingerprint,
    pg_url,
    timed,
    with_schema,
)
from bench.catchup import history_lines, load, maintain
from domain.catalogue import EVENTS
from infra.engine import Engine, open_engine
from infra.store.event_store import EventStore
from replay.ask import run_question
from replay.questions import load_question

FIXTURE_FORMAT = 1
QUESTION = Path(__file__).resolve().parents[1] / "examples" / "questions" / "order_lead_times.py"
PAGE = 10_000
CHUNK = 50_000

Rows = list[tuple[bytes, int, str, bytes]]
Keys = list[tuple[bytes, bytes]]


def fixture_path(customers: int, years: float, seed: int) -> Path:
    shape = payload_fingerprint(*(spec.cls for spec in EVENTS))
    return CACHE_DIR / f"ask-v{FIXTURE_FORMAT}-{customers}-{years:g}-{seed}-{shape}.msgpack"


def dump(engine: Engine, schema: str, path: Path) -> None:
    """The log's rows (in position order) and the wrapped data keys, cached for later runs."""
    rows: Rows = []
    after = 0
    while page := engine.store.read_rows(after, 100_000):
        rows.extend((r.stream_id.bytes, r.version, r.topic, r.state) for r in page)
        after = page[-1].position
    with psycopg.connect(pg_url()) as conn:
        keys: Keys = [
            (cid.bytes, bytes(wrapped))
            for cid, wrapped in conn.execute(
                SQL("SELECT customer_id, wrapped FROM {0}.crm_data_keys").format(Identifier(schema))
            ).fetchall()
            if wrapped is not None
        ]
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_bytes(msgspec.msgpack.encode((rows, keys)))
    tmp.replace(path)
    log(f"fixture: {len(rows):,} rows and {len(keys):,} keys cached in {path.name}")


def restore(store: EventStore, path: Path) -> int:
    """The cached log appended as it was (bulk path), with the keys its sealed fields need."""
    rows, keys = msgspec.msgpack.decode(path.read_bytes(), type=tuple[Rows, Keys])
    store.backend.vault.add_keys({UUID(bytes=c): w for c, w in keys})
    for i in range(0, len(rows), CHUNK):
        store.append_stored(
            [StoredEvent(UUID(bytes=s), v, t, b) for s, v, t, b in rows[i : i + CHUNK]], bulk=True
        )
    log(f"fixture: {len(rows):,} rows and {len(keys):,} keys restored from {path.name}")
    return len(rows)


def full_read(store: EventStore, page: int) -> int:
    """The baseline: every row of the log read and decoded, page by page."""
    events = 0
    after = 0
    sealed: frozenset[str] = frozenset()
    while rows := store.read_rows(after, page):
        events += len(store.decode_rows(rows, sealed))
        after = rows[-1].position
    return events


def topic_counts(schema: str) -> Counter[str]:
    with psycopg.connect(pg_url()) as conn:
        rows = conn.execute(
            SQL("SELECT topic, count(*) FROM {0}.stored_events GROUP BY topic").format(
                Identifier(schema)
            )
        ).fetchall()
    return Counter({t: int(n) for t, n in rows})


def prepare(
    engine: Engine, schema: str, path: Path, args: argparse.Namespace, reads: tuple[str, ...]
) -> tuple[int, float]:
    """The log in a fresh schema, from the cache or imported (then cached): (events, share
    of them the question reads)."""
    t0 = time.perf_counter()
    if path.exists():
        restore(engine.store, path)
    else:
        lines = history_lines(args.customers, args.years, args.seed)
        log(f"history: {len(lines):,} lines for {args.customers:,} customers; importing ...")
        load(engine, lines)
        del lines
        dump(engine, schema, path)
    maintain(schema, analyze=True)
    topics = topic_counts(schema)
    events = sum(topics.values())
    share = sum(topics[t] for t in reads) / events
    log(
        f"setup: {events:,} events in {time.perf_counter() - t0:.1f} s; the question reads "
        f"{', '.join(reads)}: {share:.1%} of the log"
    )
    return events, share


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--customers", type=int, default=6300)
    parser.add_argument("--years", type=float, default=2.0)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--page", type=int, default=PAGE)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    question = load_question(QUESTION, EVENTS.tags())
    path = fixture_path(args.customers, args.years, args.seed)
    with (
        bench_schema("ask") as schema,
        open_engine(with_schema(pg_url(), schema), env={}) as engine,
    ):
        events, share = prepare(engine, schema, path, args, question.reads)
        now = engine.clock.now()
        subject: list[float] = []
        base: list[float] = []
        answers: list[Any] = []
        folded = 0
        for i in range(args.repeat):
            maintain(schema)
            counted = 0

            def baseline() -> None:
                nonlocal counted
                counted = full_read(engine.store, args.page)

            base.append(timed(baseline))
            if counted != events:
                raise SystemExit(
                    f"the full read decoded {counted:,} events, the log has {events:,}"
                )
            maintain(schema)

            def ask() -> None:
                nonlocal folded
                answer = run_question(question, engine.store, now=now, page=args.page)
                folded = answer.events
                answers.append(answer.rows)

            subject.append(timed(ask))
            log(
                f"  run {i + 1}: question {subject[-1]:.2f} s ({folded:,} events folded, "
                f"{folded / subject[-1]:,.0f} events/s); full read and decode {base[-1]:.2f} s "
                f"({events / base[-1]:,.0f} events/s)"
            )
    if any(a != answers[0] for a in answers):
        raise SystemExit("the question gave different answers on different runs")
    value, baseline_s = min(subject), min(base)
    ratio = baseline_s / value
    log(f"answer: {answers[0]}")
    log(f"full read / question = {ratio:.2f} (target >= 3)")
    emit(
        {
            "bench": "ask",
            "value": round(value, 3),
            "unit": "s",
            "baseline": round(baseline_s, 3),
            "ratio": round(ratio, 2),
            "median": round(sorted(subject)[len(subject) // 2], 3),
            "baseline_median": round(sorted(base)[len(base) // 2], 3),
            "events": events,
            "question_events": folded,
            "share": round(share, 4),
            "question_events_per_s": round(folded / value),
            "baseline_events_per_s": round(events / baseline_s),
            "question": QUESTION.name,
            "page": args.page,
            "customers": args.customers,
            "seed": args.seed,
        }
    )


if __name__ == "__main__":
    main()
