"""`crm demo` as far as the engine goes today: the store, the registry and every channel.

It builds its own store `demo-out/crm-demo.db` (never one it did not create), imports a seeded
history of customers, organisations, consents and interactions through the bulk import path,
merges duplicates, forgets one customer, and shows one customer's record and history. The
projections issue replaces the small generator here with the documented latent model.
"""

from __future__ import annotations

import json
import random
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from faker import Faker
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from handlers.decision import CommandContext
from handlers.deps import load_customer
from handlers.importer import Importer, ImportReport
from infra.engine import Engine, open_engine

DEMO_DIR = Path("demo-out")
DEMO_DB = DEMO_DIR / "crm-demo.db"
MARKER = DEMO_DIR / ".created-by-crm-demo"
CHANNELS = ("call", "email", "meeting", "web", "conversation", "questionnaire")


class DemoStoreNotOurs(Exception):
    """demo-out/crm-demo.db exists but this demo did not create it: we never wipe it."""


@dataclass(frozen=True)
class DemoResult:
    customers: int
    lines: int
    events: int
    seconds: float
    shown: uuid.UUID
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


def _line(command: str, command_id: str, **data: Any) -> bytes:
    return json.dumps(
        {"command": command, "command_id": command_id, "data": data}, default=str
    ).encode()


def history(customers: int, seed: int, now: datetime) -> Iterator[bytes]:
    """Import lines, in business-time order per customer, ending today."""
    fake, rnd = Faker(), random.Random(seed)
    Faker.seed(seed)
    start = now - timedelta(days=730)
    people: list[uuid.UUID] = []
    for i in range(customers):
        cid = uuid.UUID(int=rnd.getrandbits(128), version=4)
        joined = start + timedelta(seconds=rnd.randrange(0, 600 * 86400))
        organisation = i % 10 == 0
        yield _line(
            "customer.register",
            f"demo-reg-{i}",
            customer_id=cid,
            occurred_at=joined,
            kind="organisation" if organisation else "person",
            name=fake.company() if organisation else fake.name(),
            email=f"c{i}@{fake.free_email_domain()}",
            birth_date=None if organisation else fake.date_of_birth(minimum_age=18, maximum_age=80),
            gender="unknown" if organisation else rnd.choice(["female", "male"]),
            income_band=rnd.choice(["low", "middle", "high"]),
            source=rnd.choice(["web", "referral", "fair", "call", "partner"]),
        )
        if organisation and people:
            for person in rnd.sample(people, k=min(2, len(people))):
                role = rnd.choice(["buyer", "technician", "owner"])
                yield _line(
                    "customer.link_contact_person",
                    f"demo-link-{i}-{person}",
                    organisation_id=cid,
                    person_id=person,
                    role=role,
                    occurred_at=joined,
                )
        else:
            people.append(cid)
        if rnd.random() < 0.6:
            yield _line(
                "customer.grant_consent",
                f"demo-consent-{i}",
                customer_id=cid,
                consent_channel=rnd.choice(["email", "phone", "sms"]),
                source="web form",
                occurred_at=joined,
            )
        at = joined
        for j in range(rnd.randrange(5, 30)):
            at = min(now, at + timedelta(hours=rnd.expovariate(1 / 400)))
            yield _interaction(rnd, fake, cid, f"demo-int-{i}-{j}", at)
    pairs = rnd.sample(people, 2 * (customers // 100))  # duplicates that get merged
    for k, (survivor, dup) in enumerate(zip(pairs[::2], pairs[1::2], strict=True)):
        yield _line(
            "customer.merge",
            f"demo-merge-{k}",
            survivor_id=survivor,
            merged_id=dup,
            occurred_at=now,
        )


def _interaction(
    rnd: random.Random, fake: Faker, cid: uuid.UUID, command_id: str, at: datetime
) -> bytes:
    channel = rnd.choices(CHANNELS, weights=(30, 30, 8, 20, 8, 4))[0]
    common = {"customer_id": cid, "occurred_at": at}
    if channel == "call":
        return _line(
            "interaction.log_call",
            command_id,
            direction=rnd.choice(["in", "out"]),
            duration_min=round(rnd.expovariate(1 / 8), 1),
            notes=fake.sentence(),
            **common,
        )
    if channel == "email":
        return _line(
            "interaction.log_email",
            command_id,
            direction=rnd.choice(["in", "out"]),
            subject=fake.sentence(nb_words=5),
            **common,
        )
    if channel == "meeting":
        return _line(
            "interaction.log_meeting",
            command_id,
            duration_min=rnd.choice([30, 45, 60, 90]),
            location=fake.city(),
            **common,
        )
    if channel == "web":
        return _line(
            "interaction.log_web",
            command_id,
            action=rnd.choice(["visit", "page_view", "form_submitted"]),
            page=rnd.choice(["/", "/tariffs", "/offers", "/support"]),
            **common,
        )
    if channel == "conversation":
        return _line(
            "interaction.log_conversation",
            command_id,
            medium=rnd.choice(["chat", "in_person"]),
            summary=fake.sentence(),
            **common,
        )
    answers = [
        {"question": "How likely are you to recommend us?", "answer": str(rnd.randrange(0, 11))}
    ]
    return _line(
        "interaction.log_questionnaire", command_id, questionnaire="nps", answers=answers, **common
    )


def run_demo(console: Console, customers: int = 2000, seed: int = 7) -> DemoResult:
    started = time.perf_counter()
    db = prepare_store_path()
    now = datetime.now(UTC)
    with open_engine(f"sqlite:///{db}", env={}) as engine:
        lines = list(history(customers, seed, now))
        report = _import(console, engine, lines)
        registered = [
            json.loads(x) for x in lines[:50] if b'"customer.register"' in x and b'"person"' in x
        ]
        shown = uuid.UUID(registered[1]["data"]["customer_id"])
        forgotten = uuid.UUID(registered[0]["data"]["customer_id"])
        engine.bus.execute_json(
            "customer.forget",
            {"customer_id": str(forgotten)},
            CommandContext(actor="employee:dpo", channel="manual"),
        )
        show_customer(console, engine, shown)
        show_forgotten(console, engine, forgotten)
        return DemoResult(
            customers,
            report.lines,
            engine.store.head(),
            time.perf_counter() - started,
            shown,
            forgotten,
        )


def _import(console: Console, engine: Engine, lines: list[bytes]) -> ImportReport:
    importer = Importer(engine.bus, engine.store, batch_size=5000, pipeline=True)
    with Progress(
        TextColumn("import (bulk path)"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[rate]}"),
        TimeRemainingColumn(),
        console=console,
    ) as progress:
        task = progress.add_task("import", total=len(lines), rate="")
        t0 = time.perf_counter()

        def tick(report: ImportReport) -> None:
            progress.update(
                task,
                completed=report.lines,
                rate=f"{report.lines / (time.perf_counter() - t0):,.0f} commands/s",
            )

        report = importer.run(
            lines, CommandContext(actor="import:demo", channel="import"), progress=tick
        )
    if report.errors:
        console.print(
            f"[yellow]{len(report.errors)} lines rejected, e.g. line {report.errors[0].line}: {report.errors[0].message}[/yellow]"
        )
    return report


def show_customer(console: Console, engine: Engine, customer_id: uuid.UUID) -> None:
    state = load_customer(engine.bus.deps, customer_id)
    events = engine.store.read_customer(customer_id)
    counts = Counter(e.channel for e in events if e.stream_type == "interaction")
    console.print(
        f"\n[bold]{state.name}[/bold] ({customer_id}), {state.kind}, stage {state.stage}, source {state.source}, "
        f"income {state.income_band}, born {state.birth_date}; consents: "
        f"{', '.join(f'{c}/{p}' for c, p in sorted(state.consents)) or 'none'}"
    )
    console.print(
        "Interactions per channel: " + ", ".join(f"{c} {n}" for c, n in counts.most_common())
    )
    table = Table(title=f"Latest of {len(events)} events about this customer (business time)")
    for col in ("occurred_at", "type", "channel", "actor", "position"):
        table.add_column(col)
    for e in sorted(events, key=lambda e: e.occurred_at, reverse=True)[:8]:
        table.add_row(
            e.occurred_at.strftime("%Y-%m-%d %H:%M"), e.type, e.channel, e.actor, str(e.position)
        )
    console.print(table)


def show_forgotten(console: Console, engine: Engine, customer_id: uuid.UUID) -> None:
    events = engine.store.read_customer(customer_id)
    first = events[0]
    console.print(
        f"Customer {str(customer_id)[:8]} asked to be forgotten: their data key is deleted, the log "
        f"is untouched. Their {len(events)} events still decode; personal fields now read "
        f"{first.payload.name!r} (fields forgotten: {', '.join(first.forgotten)})."  # type: ignore[attr-defined]
    )
