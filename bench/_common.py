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


# -- latency --------------------------------------------------------------------------------


def percentile(values: list[float], q: float) -> float:
    """The q-th percentile (0..100) of `values`, linearly interpolated between closest ranks."""
    ordered = sorted(values)
    if not ordered:
        raise ValueError("percentile of no values")
    rank = (len(ordered) - 1) * q / 100
    lo = int(rank)
    hi = min(lo + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (rank - lo)


# -- processes ------------------------------------------------------------------------------


def process_env(store_url: str, **extra: str) -> dict[str, str]:
    """The environment of a `crm` process the bench starts: its store URL set, no stray CRM_*.

    The master key is left unset (the development default, as the demo and tests use), so
    the bench process itself can read what the child wrote.
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith("CRM_")}
    env["CRM_STORE_URL"] = store_url
    env["PYTHONPATH"] = str(ROOT)
    env.update(extra)
    return env


# -- command lines (import files, bus bodies) -----------------------------------------------

INTERACTION_COMMANDS = (
    "interaction.log_web",
    "interaction.log_email",
    "interaction.log_call",
    "interaction.log_conversation",
    "interaction.log_meeting",
    "interaction.log_questionnaire",
)
_INTERACTION_WEIGHTS = (35, 25, 15, 10, 8, 7)
_TOPICS = (
    "the renewal of the service contract",
    "a late delivery of order 4711",
    "pricing for the premium plan",
    "an invoice that was charged twice",
    "the new product catalogue",
    "a warranty claim for the dishwasher",
    "moving the installation date",
    "their feedback on the last visit",
    "a referral from a colleague",
    "the newsletter they no longer receive",
)
_FOLLOW_UPS = (
    "Promised a call back on Thursday.",
    "Sent the brochure by e-mail.",
    "Customer is happy with the answer.",
    "Needs approval from their manager first.",
    "Asked us to call again after the holidays.",
    "Escalated to second-level support.",
    "Will visit the shop next week.",
    "Mentioned that the kids start school in September.",
    "Prefers to be called in the morning.",
    "No further action needed.",
)
_OUTCOMES = (None, "reached", "voicemail", "no answer", "call back", "sale", "complaint")
_LOCATIONS = (None, "customer site", "head office", "Berlin showroom", "video call", "trade fair")
_PAGES = (
    "/",
    "/products",
    "/products/dishwasher-x5",
    "/products/coffee-pro",
    "/pricing",
    "/support",
    "/support/warranty",
    "/blog/energy-saving",
    "/contact",
    "/account/orders",
)
_FORMS = ("contact", "newsletter", "quote-request", "warranty-claim")
_REFERRERS = ("https://www.google.com/", "https://www.bing.com/", "newsletter", "partner-site")
_QUESTIONNAIRES = ("nps-2024", "after-sales-survey", "product-fit", "event-feedback")
_QUESTIONS = (
    ("How likely are you to recommend us?", ("10", "9", "8", "7", "5", "3")),
    ("How satisfied are you with the delivery?", ("very", "satisfied", "neutral", "unhappy")),
    ("What could we improve?", ("faster delivery", "clearer invoices", "nothing", "more colours")),
    ("How many people live in your household?", ("1", "2", "3", "4", "5+")),
    ("Which products are you interested in?", ("coffee", "dishwashers", "ovens", "service")),
    ("How did you hear about us?", ("friends", "search", "newspaper", "trade fair")),
)


def _text(rng: random.Random, sentences: int) -> str:
    parts = [f"Talked about {rng.choice(_TOPICS)}."]
    parts += [rng.choice(_FOLLOW_UPS) for _ in range(sentences - 1)]
    return " ".join(parts)


def register_data(rng: random.Random, i: int, customer_id: UUID, occurred_at: datetime) -> dict:
    """The data of a `customer.register` command: a person or an organisation, unique e-mail."""
    organisation = rng.random() < 0.15
    if organisation:
        name = f"{rng.choice(_LAST)} {rng.choice(_LAST)} {rng.choice(_ORGS)}"
    else:
        name = f"{rng.choice(_FIRST)} {rng.choice(_LAST)}"
    data: dict[str, Any] = {
        "customer_id": str(customer_id),
        "kind": "organisation" if organisation else "person",
        "name": name,
        "occurred_at": occurred_at.isoformat(),
        "source": rng.choice(_SOURCES),
        "stage": rng.choice(_STAGES),
    }
    if rng.random() < 0.9:
        data["email"] = f"{name.split()[0].lower()}.{i}@{rng.choice(_DOMAINS)}"
    if rng.random() < 0.5:
        data["phone"] = f"+49 {rng.randrange(100, 999)} {i:07d}"
    if not organisation:
        data["gender"] = rng.choice(_GENDERS)
        if rng.random() < 0.7:
            born = date(1940, 1, 1) + timedelta(days=rng.randrange(0, 365 * 65))
            data["birth_date"] = born.isoformat()
    if rng.random() < 0.5:
        data["income_band"] = rng.choice(_INCOME)
    if purpose := rng.choice(_PURPOSES):
        data["purpose"] = purpose
    return data


def interaction_data(
    rng: random.Random, command: str, customer_id: UUID, occurred_at: datetime | None
) -> dict:
    """The data of one `interaction.log_*` command with realistic fields, some personal text."""
    data: dict[str, Any] = {"customer_id": str(customer_id)}
    if occurred_at is not None:
        data["occurred_at"] = occurred_at.isoformat()
    if command == "interaction.log_web":
        action = rng.choice(("visit", "page_view", "page_view", "page_view", "form_submitted"))
        data.update(action=action, page=rng.choice(_PAGES), session=f"{rng.getrandbits(64):016x}")
        if action == "form_submitted":
            data["form"] = rng.choice(_FORMS)
        if rng.random() < 0.3:
            data["referrer"] = rng.choice(_REFERRERS)
    elif command == "interaction.log_email":
        data["direction"] = rng.choice(("in", "out"))
        if rng.random() < 0.9:
            data["subject"] = f"Re: {rng.choice(_TOPICS)}"
        if rng.random() < 0.5:
            data["body"] = _text(rng, rng.randint(2, 6))
        if rng.random() < 0.4:
            data["thread"] = f"thread-{rng.getrandbits(32):08x}"
    elif command == "interaction.log_call":
        data.update(
            direction=rng.choice(("in", "out")),
            duration_min=round(min(rng.expovariate(1 / 6), 240.0), 1),
        )
        if outcome := rng.choice(_OUTCOMES):
            data["outcome"] = outcome
        if rng.random() < 0.7:
            data["notes"] = _text(rng, rng.randint(1, 4))
    elif command == "interaction.log_conversation":
        data["medium"] = rng.choice(("chat", "in_person", "messenger", "social"))
        if rng.random() < 0.5:
            data["duration_min"] = rng.randint(1, 45)
        if rng.random() < 0.7:
            data["summary"] = _text(rng, rng.randint(1, 3))
    elif command == "interaction.log_meeting":
        data["duration_min"] = rng.choice((15, 30, 45, 60, 90, 120))
        if location := rng.choice(_LOCATIONS):
            data["location"] = location
        if rng.random() < 0.6:
            data["notes"] = _text(rng, rng.randint(2, 5))
    elif command == "interaction.log_questionnaire":
        questions = rng.sample(_QUESTIONS, rng.randint(2, len(_QUESTIONS)))
        data.update(
            questionnaire=rng.choice(_QUESTIONNAIRES),
            answers=[{"question": q, "answer": rng.choice(a)} for q, a in questions],
        )
    else:
        raise ValueError(f"not an interaction command: {command}")
    return data


def random_interaction(
    rng: random.Random, customer_id: UUID, occurred_at: datetime | None
) -> tuple[str, dict]:
    """A command name (channels mixed as a CRM sees them: mostly web and e-mail) and its data."""
    command = rng.choices(INTERACTION_COMMANDS, _INTERACTION_WEIGHTS)[0]
    return command, interaction_data(rng, command, customer_id, occurred_at)


_line_encoder = msgspec.json.Encoder()


def import_line(command: str, data: dict, command_id: str) -> bytes:
    """One line of `crm import`: `{"command", "data", "command_id"}` and a newline."""
    return (
        _line_encoder.encode({"command": command, "data": data, "command_id": command_id}) + b"\n"
    )


EPOCH = _EPOCH
"""The start of the fixtures' business time (2024-01-01 UTC)."""


def random_uuid(rng: random.Random) -> UUID:
    """A version-4 UUID drawn from `rng` (fixtures are reproducible from their seed)."""
    return _uuid(rng)
