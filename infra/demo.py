"""`crm demo` as far as the engine goes today: the event store and its privacy guarantees.

It builds its own store `demo-out/crm-demo.db` (never one it did not create), registers
customers with personal data through the bulk path, reads them back, forgets one, and shows
what an auditor would see in the raw bytes. Later issues grow it into the full demo.
"""

from __future__ import annotations

import random
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from faker import Faker
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from domain.customers.events import CustomerForgotten, CustomerRegistered
from domain.envelope import Envelope
from infra.store.backends import open_store
from infra.store.event_store import EventStore

DEMO_DIR = Path("demo-out")
DEMO_DB = DEMO_DIR / "crm-demo.db"
MARKER = DEMO_DIR / ".created-by-crm-demo"


class DemoStoreNotOurs(Exception):
    """demo-out/crm-demo.db exists but this demo did not create it: we never wipe it."""


@dataclass(frozen=True)
class DemoResult:
    customers: int
    events: int
    seconds: float
    forgotten: uuid.UUID


def prepare_store_path(directory: Path = DEMO_DIR) -> Path:
    db = directory / DEMO_DB.name
    marker = directory / MARKER.name
    if db.exists() and not marker.exists():
        raise DemoStoreNotOurs(f"{db} exists and was not created by `crm demo`; move it away first")
    for suffix in ("", "-wal", "-shm"):
        Path(f"{db}{suffix}").unlink(missing_ok=True)
    directory.mkdir(parents=True, exist_ok=True)
    marker.write_text("This folder is rebuilt by `crm demo` on every run.\n")
    return db


def registrations(n: int, seed: int, now: datetime) -> list[Envelope]:
    fake = Faker()
    Faker.seed(seed)
    rnd = random.Random(seed)
    events = []
    for _ in range(n):
        cid = uuid.UUID(int=rnd.getrandbits(128), version=4)
        born = date(1950, 1, 1) + timedelta(days=rnd.randrange(0, 365 * 55))
        events.append(
            Envelope(
                stream_id=cid,
                stream_type="customer",
                version=1,
                occurred_at=now
                - timedelta(days=rnd.randrange(0, 730), seconds=rnd.randrange(86400)),
                customer_id=cid,
                actor="import:demo",
                channel="import",
                payload=CustomerRegistered(
                    name=fake.name(),
                    email=fake.email(),
                    phone=fake.phone_number(),
                    birth_date=born,
                    gender=rnd.choice(["female", "male", "other", "unknown"]),
                    income_band=rnd.choice(["low", "middle", "high"]),
                    source=rnd.choice(["web", "referral", "fair", "call"]),
                ),
            )
        )
    return events


def run_demo(console: Console, customers: int = 2000, seed: int = 7) -> DemoResult:
    started = time.perf_counter()
    db = prepare_store_path()
    url = f"sqlite:///{db}"
    store = open_store(url)
    try:
        events = registrations(customers, seed, datetime.now(UTC))
        with Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[rate]}"),
            TimeRemainingColumn(),
            console=console,
        ) as progress:
            task = progress.add_task("append (bulk path)", total=len(events), rate="")
            t0 = time.perf_counter()
            for i in range(0, len(events), 500):
                batch = events[i : i + 500]
                store.append(batch, bulk=True)
                done = i + len(batch)
                progress.update(
                    task, completed=done, rate=f"{done / (time.perf_counter() - t0):,.0f} ev/s"
                )
        forgotten = events[0].stream_id
        store.forget_keys(forgotten)
        store.append(
            [
                Envelope(
                    stream_id=forgotten,
                    stream_type="customer",
                    version=2,
                    occurred_at=datetime.now(UTC),
                    customer_id=forgotten,
                    actor="employee:demo",
                    channel="web",
                    payload=CustomerForgotten(),
                )
            ]
        )
        show(console, store, events, forgotten)
        return DemoResult(customers, store.head(), time.perf_counter() - started, forgotten)
    finally:
        store.close()


def show(console: Console, store: EventStore, events: list[Envelope], forgotten: uuid.UUID) -> None:
    table = Table(title="Three customers as the log returns them")
    for col in ("position", "customer", "name", "email", "born", "forgotten fields"):
        table.add_column(col)
    for e in store.read(0, limit=3):
        p = e.payload
        assert isinstance(p, CustomerRegistered)
        table.add_row(
            str(e.position),
            str(e.customer_id)[:8],
            p.name,
            p.email or "",
            str(p.birth_date),
            ", ".join(e.forgotten),
        )
    console.print(table)
    first = events[0].payload
    assert isinstance(first, CustomerRegistered)
    raw = store.read_rows(0, limit=len(events) + 1)
    leaked = sum(first.name.encode() in r.state for r in raw)
    console.print(
        f"Customer {str(forgotten)[:8]} was forgotten: their data key is deleted, the log is untouched "
        f"({len(raw)} events). Raw rows containing their name in plaintext: {leaked}."
    )
