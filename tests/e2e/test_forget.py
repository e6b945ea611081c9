"""Forgetting end to end (issue 10, part 6): after `crm forget`, no table, view, raw SQLite
byte, JetStream message or log line holds the customer's name, e-mail or phone, while counts,
spend and audiences that need none stay as they were.

Each backend gets a customer with distinctive personal data in every personal field
(registration, notes, e-mail bodies, a survey comment, a reminder note, an order occasion) and a
control customer who is not forgotten: the control's name must still be found by the same
searches (so a search that finds nothing proves something), and the target's must be found
before forgetting. The projector and the relay run in this process with structlog and stdlib
logging at DEBUG into a file; `crm forget` runs as a real process with its stderr kept.
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import logging
import os
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

import psycopg
import pytest
import structlog
from psycopg.sql import SQL, Identifier

from domain.customers.errors import ContactAlreadyRegistered
from handlers.decision import CommandContext
from infra.engine import Engine, open_engine
from infra.logging import configure_logging
from infra.nats.connect import NatsSettings, connect
from infra.nats.relay import Relay, RelayConfig
from infra.projector import open_runner, views
from projections.orders_view import customer_orders
from tests.pg import PG_URL, fresh_schema, pg_url_with_schema

ROOT = Path(__file__).resolve().parents[2]
NATS_URL = os.environ.get("CRM_TEST_NATS_URL", "nats://127.0.0.1:4222")
NOW = datetime(2026, 5, 4, 12, 0, tzinfo=UTC)
CTX = CommandContext(actor="employee:e-7", channel="manual")

NAME = "Wilhelmina Quxtrapp-Zorvald"
EMAIL = "wilhelmina.quxtrapp@zorvald.example"
PHONE = "+44 7700 900461"
BIRTH = "1937-11-19"
NEEDLES = ("Quxtrapp", "Zorvald", EMAIL, PHONE, "7700900461", "7700 900461", BIRTH)
CONTROL = "Ottoline Brandywyne-Fesk"

# Run `crm forget` as the lead registers it; until then, the same function on the same app.
CLI = (
    "from infra.cli import app, main\n"
    "from infra.cli.forget import forget\n"
    "if not any(c.callback is forget or c.name == 'forget' for c in app.registered_commands):\n"
    "    app.command('forget')(forget)\n"
    "main()\n"
)


def do(engine: Engine, command: str, **data: Any) -> list[int]:
    body = {k: (str(v) if isinstance(v, UUID | datetime) else v) for k, v in data.items()}
    return engine.bus.execute_json(command, body, CTX).positions


@dataclass
class People:
    target: UUID
    control: UUID
    order: UUID
    positions: list[int] = field(default_factory=list)


def feed(engine: Engine) -> People:
    """A realistic little history of two customers; personal data in every personal field."""
    people = People(target=uuid4(), control=uuid4(), order=uuid4())
    t0 = NOW - timedelta(days=60)
    do(
        engine,
        "product.define",
        sku="Q-KETTLE",
        name="kettle",
        category="kitchen",
        list_price={"amount": "49.90", "currency": "EUR"},
        occurred_at=t0 - timedelta(days=1),
    )
    for cid, name, email, phone, birth in (
        (people.target, NAME, EMAIL, PHONE, BIRTH),
        (people.control, CONTROL, "ottoline@brandywyne.example", "+44 7700 900999", "1980-01-02"),
    ):
        do(
            engine,
            "customer.register",
            customer_id=cid,
            name=name,
            email=email,
            phone=phone,
            birth_date=birth,
            gender="female",
            occurred_at=t0,
        )
        do(engine, "customer.grant_consent", customer_id=cid, consent_channel="email")
        do(
            engine,
            "customer.add_contact",
            customer_id=cid,
            kind="email",
            value=email.replace("@", ".work@"),
            occurred_at=t0 + timedelta(hours=1),
        )
        for day, minutes in ((3, 12), (9, 25)):
            do(
                engine,
                "interaction.log_call",
                customer_id=cid,
                direction="in",
                duration_min=minutes,
                notes=f"{name} called from {phone} about the kettle",
                occurred_at=t0 + timedelta(days=day),
            )
        do(
            engine,
            "interaction.log_email",
            customer_id=cid,
            direction="out",
            subject=f"Dear {name}",
            body=f"Write to {email} or call {phone}",
            occurred_at=t0 + timedelta(days=10),
        )
        do(
            engine,
            "interaction.log_meeting",
            customer_id=cid,
            duration_min=45,
            notes=f"Met {name}, born {birth}",
            occurred_at=t0 + timedelta(days=11),
        )
    do(
        engine,
        "order.place",
        order_id=people.order,
        customer_id=people.target,
        items=[
            {"sku": "Q-KETTLE", "quantity": 2, "unit_price": {"amount": "49.90", "currency": "EUR"}}
        ],
        payment_method="card",
        occasion={"kind": "birthday", "for_person": NAME, "date": "2026-04-01"},
        occurred_at=t0 + timedelta(days=12),
    )
    do(
        engine,
        "order.pay",
        order_id=people.order,
        amount={"amount": "99.80", "currency": "EUR"},
        occurred_at=t0 + timedelta(days=12, hours=1),
    )
    ticket = uuid4()
    do(
        engine,
        "ticket.open",
        ticket_id=ticket,
        customer_id=people.target,
        kind="complaint",
        category="delivery",
        subject=f"{NAME}: kettle arrived dented",
        order_id=people.order,
        occurred_at=t0 + timedelta(days=14),
    )
    do(
        engine,
        "ticket.respond",
        ticket_id=ticket,
        agent="agent-3",
        message=f"Dear {NAME}, we will call you on {PHONE}",
        occurred_at=t0 + timedelta(days=15),
    )
    survey = uuid4()
    do(
        engine,
        "survey.send",
        survey_id=survey,
        customer_id=people.target,
        kind="csat",
        trigger="after_delivery",
        order_id=people.order,
        occurred_at=t0 + timedelta(days=20),
    )
    do(
        engine,
        "survey.answer",
        survey_id=survey,
        score=4,
        comment=f"Thanks, {NAME} ({EMAIL})",
        occurred_at=t0 + timedelta(days=21),
    )
    do(engine, "order.ship", order_id=people.order, occurred_at=t0 + timedelta(days=12, hours=2))
    do(engine, "order.deliver", order_id=people.order, occurred_at=t0 + timedelta(days=13))
    do(  # a return's reason is free text: it may name the customer
        engine,
        "order.return",
        order_id=people.order,
        items=[{"sku": "Q-KETTLE", "quantity": 1}],
        reason=f"{NAME} says the second kettle leaks; call {PHONE}",
        occurred_at=t0 + timedelta(days=22),
    )
    return people


def search_postgres(schema: str, needles: tuple[str, ...]) -> list[str]:
    """Every table and view of the schema: each row as text (every column, json and arrays
    included), and every bytea column for the needles' UTF-8 bytes."""
    hits: list[str] = []
    with psycopg.connect(PG_URL, autocommit=True) as conn:
        relations = conn.execute(
            "SELECT table_name, table_type FROM information_schema.tables "
            "WHERE table_schema = %s ORDER BY table_name",
            (schema,),
        ).fetchall()
        assert len(relations) > 20, relations
        for table, _ in relations:
            rel = SQL("{0}.{1}").format(Identifier(schema), Identifier(table))
            for needle in needles:
                (n,) = conn.execute(
                    SQL("SELECT count(*) FROM {0} t WHERE t::text ILIKE %s").format(rel),
                    (f"%{needle}%",),
                ).fetchone() or (0,)
                if n:
                    hits.append(f"postgres {table}: {n} rows hold {needle!r}")
        columns = conn.execute(
            "SELECT table_name, column_name FROM information_schema.columns "
            "WHERE table_schema = %s AND data_type = 'bytea'",
            (schema,),
        ).fetchall()
        for table, column in columns:
            rel = SQL("{0}.{1}").format(Identifier(schema), Identifier(table))
            for needle in needles:
                (n,) = conn.execute(
                    SQL("SELECT count(*) FROM {0} WHERE position(%s::bytea IN {1}) > 0").format(
                        rel, Identifier(column)
                    ),
                    (needle.encode(),),
                ).fetchone() or (0,)
                if n:
                    hits.append(f"postgres {table}.{column} (bytea): {n} rows hold {needle!r}")
    return hits


def search_sqlite(path: Path, needles: tuple[str, ...]) -> list[str]:
    """Every table and view via sqlite_master, each value as text or bytes; then the raw bytes
    of the database file and its WAL (free pages and old row versions included)."""
    hits: list[str] = []
    conn = sqlite3.connect(path)
    try:
        relations = [
            r[0]
            for r in conn.execute(
                "SELECT name FROM sqlite_master WHERE type IN ('table', 'view') ORDER BY name"
            )
        ]
        assert len(relations) > 20, relations
        for table in relations:
            for row in conn.execute(f'SELECT * FROM "{table}"'):
                for value in row:
                    blob = value if isinstance(value, bytes) else str(value).encode()
                    for needle in needles:
                        if needle.lower().encode() in blob.lower():
                            hits.append(f"sqlite {table}: a row holds {needle!r}")
    finally:
        conn.close()
    for file in sorted(path.parent.glob(path.name + "*")):
        raw = raw_bytes(file).lower()
        for needle in needles:
            if needle.lower().encode() in raw:
                hits.append(f"sqlite file {file.name}: raw bytes hold {needle!r}")
    return sorted(set(hits))


def raw_bytes(file: Path) -> bytes:
    """A file's bytes read by another process: opening and closing the database file here
    would drop every POSIX lock this process's SQLite connections hold on it (fcntl
    semantics), and another process could then take itself for the last one and delete the
    WAL under them."""
    return subprocess.run(["cat", str(file)], capture_output=True, check=True).stdout


def search_text(text: str, where: str, needles: tuple[str, ...]) -> list[str]:
    return [f"{where}: holds {n!r}" for n in needles if n.lower() in text.lower()]


@contextmanager
def logs_to(path: Path) -> Iterator[None]:
    """structlog (JSON) and stdlib logging at DEBUG into `path`; the old set-up restored."""
    saved = structlog.get_config()
    root = logging.getLogger()
    level = root.level
    with path.open("a", encoding="utf-8") as fh:
        configure_logging("DEBUG", json=True)
        structlog.configure(logger_factory=structlog.PrintLoggerFactory(file=fh))
        handler = logging.StreamHandler(fh)
        root.addHandler(handler)
        root.setLevel(logging.DEBUG)
        try:
            yield
        finally:
            root.removeHandler(handler)
            root.setLevel(level)
            structlog.configure(**saved)


def crm_forget(url: str, customer: UUID, *extra: str) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "CRM_STORE_URL": url,
        "CRM_ENV": "development",
        "CRM_LOG_LEVEL": "DEBUG",
        "CRM_ACTOR": "employee:dpo",
        "CRM_NOW": NOW.isoformat(),
        "PYTHONPATH": str(ROOT),
    }
    env.pop("CRM_MASTER_KEY", None)
    return subprocess.run(
        [sys.executable, "-c", CLI, "forget", str(customer), "--reason", "gdpr-art-17", *extra],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=120,
        check=False,
    )


def crm_verify(url: str) -> None:
    """`crm verify` after forgetting: the log still checks out (a forgotten field reads as
    forgotten, not corrupt), and the views equal a fresh rebuild."""
    if importlib.util.find_spec("infra.cli.verify") is None:
        pytest.skip("crm verify is not built yet")
    env = {**os.environ, "CRM_STORE_URL": url, "CRM_NOW": NOW.isoformat(), "PYTHONPATH": str(ROOT)}
    for name in ("CRM_NATS_URL", "CRM_MASTER_KEY"):
        env.pop(name, None)
    proc = subprocess.run(
        [sys.executable, "-m", "infra.cli", "verify", "--format", "json"],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=300,
        check=False,
    )
    report = json.loads(proc.stdout)
    checks = {c["name"]: c for c in report["checks"]}
    for name in ("seal chain", "unsealed tail", "stream versions", "events decode"):
        assert checks[name]["status"] == "ok", checks[name]
    assert "forgotten" in checks["events decode"]["details"]
    failed = {n: c["details"] for n, c in checks.items() if c["status"] == "failed"}
    assert failed == {} and proc.returncode == 0, failed


class JetStream:
    """A stream and subject prefix of this test's own; the relay publishes the log there."""

    def __init__(self) -> None:
        tag = uuid4().hex[:10]
        self.config = RelayConfig(stream=f"TEST_FORGET_{tag}", subject_prefix=f"test.{tag}.evt")
        self.settings = NatsSettings(servers=(NATS_URL,), name="crm-test-forget")

    async def publish(self, engine: Engine) -> int:
        nc = await connect(self.settings)
        try:
            relay = Relay(engine.store, nc, self.config)
            position = await relay.publish_until(engine.store.head())
            await relay.close()
            return position
        finally:
            await nc.close()

    async def messages(self) -> list[bytes]:
        """Every message of the stream: subject, headers and body as bytes."""
        nc = await connect(self.settings)
        try:
            js = nc.jetstream()
            info = await js.stream_info(self.config.stream)
            out = []
            for seq in range(info.state.first_seq, info.state.last_seq + 1):
                msg = await js.get_msg(self.config.stream, seq=seq)
                headers = json.dumps(msg.headers or {}).encode()
                out.append(f"{msg.subject}\n".encode() + headers + b"\n" + (msg.data or b""))
            return out
        finally:
            await nc.close()

    async def delete(self) -> None:
        nc = await connect(self.settings)
        with suppress(Exception):
            await nc.jetstream().delete_stream(self.config.stream)
        await nc.close()


def aggregates(engine: Engine, people: People) -> dict[str, Any]:
    """What needs no personal data: counts per channel, spend, audience and table counts."""
    with open_runner(engine) as runner:
        v = views(runner)
        out: dict[str, Any] = {}
        for who in ("target", "control"):
            cid = getattr(people, who)
            profile = v.profile(cid)
            assert profile is not None
            out[f"{who}.channels"] = sorted(
                (c.channel, c.count) for c in profile.channels if c.count
            )
            out[f"{who}.interactions"] = profile.interactions
            out[f"{who}.stage"] = profile.stage
            orders = customer_orders(runner.db, cid, now=NOW)
            out[f"{who}.orders"] = sorted((str(o.order_id), o.total, o.status) for o in orders)
        q = runner.db.dialect.qualify
        for table in ("timeline", "satisfaction_latest", "demand_facts", "service_breaches"):
            out[f"rows.{table}"] = runner.db.fetch(f"SELECT count(*) FROM {q(table)}")[0][0]
    return out


@pytest.fixture(params=["sqlite", "postgresql"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[str, str | None]]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path}/crm.db", None
    else:
        with fresh_schema("forget") as schema:
            yield pg_url_with_schema(schema), schema


def project(engine: Engine) -> None:
    with open_runner(engine) as runner:
        runner.catch_up()
        runner.fire_timers()
        assert all(s.lag == 0 and s.state == "live" for s in runner.status())


def forget_by_cli(url: str, people: People, head: int, log_file: Path) -> None:
    """`crm forget` as a user runs it; then its typed refusals."""
    proc = crm_forget(url, people.target, "--format", "json")
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert report["key_deleted"] is True and report["profile_blanked"] is True
    assert len(report["positions"]) == 1 and report["positions"][0] > head
    assert report["views_position"] >= report["positions"][0]
    assert report["sqlite_wal_truncated"] in (True, None)
    again = crm_forget(url, people.target)
    assert again.returncode == 1
    assert json.loads(again.stdout)["error"]["code"] == "customer_forgotten"
    unknown = crm_forget(url, uuid4())
    assert unknown.returncode == 1
    assert json.loads(unknown.stdout)["error"]["code"] == "customer_not_found"
    with log_file.open("a", encoding="utf-8") as fh:
        fh.write(proc.stderr + again.stderr + unknown.stderr)


@pytest.mark.postgres
@pytest.mark.nats
def test_forget_leaves_no_personal_data_anywhere(
    backend: tuple[str, str | None], tmp_path: Path
) -> None:
    url, schema = backend
    log_file = tmp_path / "crm.log"
    bus = JetStream() if schema else None

    def search(needles: tuple[str, ...]) -> list[str]:
        if schema is None:
            return search_sqlite(tmp_path / "crm.db", needles)
        return search_postgres(schema, needles)

    try:
        # One engine stays open throughout, as a running projector and relay would.
        with logs_to(log_file), open_engine(url, env={"CRM_NOW": NOW.isoformat()}) as engine:
            people = feed(engine)
            with pytest.raises(ContactAlreadyRegistered):  # a refusal that could log the value
                do(engine, "customer.register", name="Someone Else", email=EMAIL)
            structlog.get_logger("crm.test").info("test.probe", customer_id=str(people.target))
            project(engine)
            if bus is not None:
                assert asyncio.run(bus.publish(engine)) == engine.store.head()
            before = aggregates(engine, people)
            # the searches find personal data where it is: the target's, before forgetting
            assert any("customer_profile" in h for h in search(NEEDLES))

            forget_by_cli(url, people, engine.store.head(), log_file)

            project(engine)  # nothing left to do: `crm forget` caught the views up
            if bus is not None:
                assert asyncio.run(bus.publish(engine)) == engine.store.head()
            assert aggregates(engine, people) == before
            forgotten = views_profile(engine, people.target)
            assert forgotten.forgotten and forgotten.name is None and forgotten.contacts == []
            assert forgotten.birth_date is None and forgotten.age is None
            events = engine.store.read_customer(people.target)
            assert events[-1].type == "customer.forgotten"
            registered = next(e for e in events if e.type == "customer.registered")
            assert NAME not in repr(registered)  # the log reads as forgotten now

            hits = search(NEEDLES)
            assert hits == [], "\n".join(hits)
            # a rebuild of every view from the log cannot open the customer's fields either
            with open_runner(engine) as runner:
                for name in list(runner.projections):
                    runner.rebuild(name)
            assert aggregates(engine, people) == before
            hits = search(NEEDLES)
            assert hits == [], "\n".join(hits)
            # the same searches still find the customer who was not forgotten
            assert any("customer_profile" in h for h in search((CONTROL,)))

            if bus is not None:
                messages = asyncio.run(bus.messages())
                assert len(messages) == len(engine.store.read(0, 10_000))
                text = b"\n".join(messages).decode()
                assert search_text(text, "jetstream", NEEDLES) == []
                assert CONTROL not in text  # personal data only as ciphertext, always

        text = log_file.read_text()
        assert "test.probe" in text  # the capture works
        assert search_text(text, "logs", NEEDLES) == []
    finally:
        if bus is not None:
            asyncio.run(bus.delete())


@pytest.mark.postgres
def test_the_store_verifies_after_forgetting(backend: tuple[str, str | None]) -> None:
    """`crm verify` (when built): the chain and decoding hold after a forget."""
    url, _ = backend
    with open_engine(url, env={"CRM_NOW": NOW.isoformat()}) as engine:
        people = feed(engine)
        project(engine)
    assert crm_forget(url, people.target).returncode == 0
    crm_verify(url)


def views_profile(engine: Engine, customer: UUID) -> Any:
    with open_runner(engine) as runner:
        profile = views(runner).profile(customer)
    assert profile is not None
    return profile
