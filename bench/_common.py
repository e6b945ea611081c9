"""Shared helpers of the benchmarks: fixtures, a schema of their own, timing, the JSON line.

Every bench prints, as its LAST stdout line, one JSON object
`{"bench", "value", "unit", "baseline", "ratio", ...}` (DESIGN.md, "Benchmarks").
This module is not a bench; run as a script (`make bench` globs bench/*.py) it does nothing.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import gc
import hashlib
import json
import os
import random
import statistics
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, date, datetime, timedelta
from typing import Any, TypeVar
from uuid import UUID, uuid4

import msgspec
import psycopg
from psycopg.sql import SQL, Identifier

from domain.customers.events import CustomerForgotten, CustomerRegistered
from domain.envelope import Envelope
from domain.events import DomainEvent

ROOT = Path(__file__).resolve().parents[1]
CACHE_DIR = ROOT / "bench" / ".cache"
DEFAULT_PG_URL = "postgresql://127.0.0.1:5432/test"

T = TypeVar("T", bound=DomainEvent)


def log(message: str) -> None:
    """Human-readable progress, on stdout before the final JSON line."""
    print(message, flush=True)


def emit(result: Mapping[str, Any]) -> None:
    """The contract's last line: one JSON object."""
    sys.stdout.flush()
    print(json.dumps(dict(result)), flush=True)


# -- PostgreSQL -----------------------------------------------------------------------------


def pg_url() -> str:
    return os.environ.get("CRM_BENCH_PG_URL", "").strip() or DEFAULT_PG_URL


def with_schema(url: str, schema: str) -> str:
    """A store URL (`CRM_STORE_URL` form) naming the schema the tables live in."""
    return f"{url}{'&' if '?' in url else '?'}schema={schema}"


@contextmanager
def bench_schema(prefix: str) -> Iterator[str]:
    """A fresh, uniquely named schema, dropped with everything in it at the end (also on error)."""
    url = pg_url()
    name = f"bench_{prefix}_{os.getpid()}_{uuid4().hex[:8]}"
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(SQL("CREATE SCHEMA {0}").format(Identifier(name)))
    try:
        yield name
    finally:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(SQL("DROP SCHEMA IF EXISTS {0} CASCADE").format(Identifier(name)))
        log(f"dropped schema {name}")


# -- fixtures -------------------------------------------------------------------------------

_FIRST = [
    "Anna",
    "Ben",
    "Chloé",
    "David",
    "Emma",
    "Farid",
    "Greta",
    "Hugo",
    "Ines",
    "Jonas",
    "Karin",
    "Luca",
    "Maja",
    "Nils",
    "Olga",
    "Pedro",
    "Quentin",
    "Rosa",
    "Sven",
    "Tereza",
    "Ugo",
    "Vera",
    "Wim",
    "Xenia",
    "Yusuf",
    "Zoé",
    "Łukasz",
    "Søren",
    "Björn",
    "Ayşe",
]
_LAST = [
    "Müller",
    "Schmidt",
    "Dupont",
    "Rossi",
    "García",
    "Novak",
    "Kowalski",
    "Jansen",
    "Andersson",
    "Petit",
    "Moreau",
    "Bauer",
    "Fischer",
    "Weber",
    "Silva",
    "Costa",
    "Horváth",
    "Nielsen",
    "O'Brien",
    "van",
    "Dijk",
    "Papadopoulos",
    "Yilmaz",
]
_ORGS = ("GmbH", "SARL", "Ltd", "BV", "AG", "S.p.A.", "Oy", "AB")
_DOMAINS = ("example.com", "mail.example.org", "post.example.net", "example.de", "example.fr")
_SOURCES = ("web-form", "shop-checkout", "import:legacy-crm", "referral", "event-badge-scan")
_CHANNELS = ("web", "api", "shop", "import", "phone")
_ACTORS = ("user:anna.k", "user:farid.m", "service:shop-sync", "import:legacy-crm", "system")
_INCOME = ("<20k", "20-40k", "40-70k", "70-120k", ">120k")
_GENDERS = ("female", "male", "other", "unknown")
_STAGES = ("lead", "lead", "prospect", "customer")
_PURPOSES = (None, None, "newsletter", "quote request", "support contract")
_EPOCH = datetime(2024, 1, 1, tzinfo=UTC)


def _payload(cls: type[T], **values: Any) -> T:
    """The payload, given only the fields its type has (the fixture outlives schema changes)."""
    return cls(**{k: v for k, v in values.items() if k in cls.__struct_fields__})


def payload_fingerprint(*classes: type[DomainEvent]) -> str:
    """Changes when a payload type changes shape: cached fixtures keyed by it are regenerated."""
    shapes = repr([msgspec.inspect.type_info(cls) for cls in classes])
    return hashlib.sha1(shapes.encode()).hexdigest()[:10]


def _uuid(rng: random.Random) -> UUID:
    return UUID(int=rng.getrandbits(128), version=4)


def _registration(rng: random.Random, i: int) -> Envelope:
    customer = _uuid(rng)
    occurred = _EPOCH + timedelta(seconds=i * 7 + rng.random() * 5)
    if rng.random() < 0.15:
        kind = "organisation"
        name = f"{rng.choice(_LAST)} {rng.choice(_LAST)} {rng.choice(_ORGS)}"
        birth_date = None
        gender = "unknown"
    else:
        kind = "person"
        name = f"{rng.choice(_FIRST)} {rng.choice(_LAST)}"
        birth_date = (
            date(1940, 1, 1) + timedelta(days=rng.randrange(0, 365 * 65))
            if rng.random() < 0.7
            else None
        )
        gender = rng.choice(_GENDERS)
    email = f"{name.split()[0].lower()}.{i}@{rng.choice(_DOMAINS)}" if rng.random() < 0.9 else None
    phone = f"+49 {rng.randrange(100, 999)} {rng.randrange(1000000, 9999999)}"
    payload = _payload(
        CustomerRegistered,
        kind=kind,
        name=name,
        email=email,
        phone=phone if rng.random() < 0.6 else None,
        birth_date=birth_date,
        gender=gender,
        income_band=rng.choice(_INCOME) if rng.random() < 0.5 else None,
        source=rng.choice(_SOURCES),
        stage=rng.choice(_STAGES),
        purpose=rng.choice(_PURPOSES),
    )
    correlation = str(_uuid(rng))
    return Envelope(
        stream_id=customer,
        stream_type="customer",
        version=1,
        occurred_at=occurred,
        payload=payload,
        customer_id=customer,
        actor=rng.choice(_ACTORS),
        channel=rng.choice(_CHANNELS),
        correlation_id=correlation,
        causation_id=correlation if rng.random() < 0.5 else None,
        command_id=str(_uuid(rng)),
    )


def _forgetting(rng: random.Random, i: int) -> Envelope:
    """A customer (registered before the fixture's window) asks to be forgotten."""
    customer = _uuid(rng)
    return Envelope(
        stream_id=customer,
        stream_type="customer",
        version=rng.randrange(2, 40),
        occurred_at=_EPOCH + timedelta(seconds=i * 7 + rng.random() * 5),
        payload=_payload(
            CustomerForgotten, reason=rng.choice(("request", "gdpr-art-17", "duplicate"))
        ),
        customer_id=customer,
        actor=rng.choice(_ACTORS),
        channel=rng.choice(_CHANNELS),
        correlation_id=str(_uuid(rng)),
        causation_id=None,
        command_id=str(_uuid(rng)),
    )


def customer_envelopes(n: int, seed: int = 42, forgotten_share: float = 0.0) -> list[Envelope]:
    """`n` envelopes of distinct customers: registrations, and a share of forgettings.

    The forgotten customers are not among the registered ones, so that a codec with a keyring
    decodes every registration through the sealed path (a decoded `customer.forgotten` evicts
    its customer's key from the cache).
    """
    rng = random.Random(seed)
    return [
        _forgetting(rng, i) if rng.random() < forgotten_share else _registration(rng, i)
        for i in range(n)
    ]


# -- timing ---------------------------------------------------------------------------------


def timed(fn: Callable[[], object]) -> float:
    """Seconds taken by `fn()`.

    Garbage from setup is collected first and the objects alive then (fixtures) are frozen
    out of the collector's sight while `fn` runs, so that a side creating many tracked objects
    pays for collecting its own, not for traversing the bench's fixtures on every full pass.
    """
    gc.collect()
    gc.freeze()
    try:
        t0 = time.perf_counter()
        fn()
        return time.perf_counter() - t0
    finally:
        gc.unfreeze()


def summary(rates: list[float]) -> dict[str, float]:
    return {"best": max(rates), "median": statistics.median(rates)}


def fmt_rate(rate: float) -> str:
    return f"{rate:>12,.0f} events/s"
