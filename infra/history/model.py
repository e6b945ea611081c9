"""The latent model behind the demo history: segments, effects, and the population drawn from them.

The population is the ground truth an analysis of the demo should recover; `generate` only turns
it into observations (import lines). docs/demo-model.md explains every number below and quotes
the tables `tables()` renders from them (a test keeps the two equal). A new effect is one field
of `Segment` (or one table here), one trait of `LatentCustomer`, and one use in `generate`.
"""

from __future__ import annotations

import math
import random
from datetime import UTC, date, datetime, timedelta
from typing import Literal, cast
from uuid import UUID

import msgspec
from msgspec.structs import replace

from domain.customers.events import CustomerKind, Gender, Stage
from infra.history import names

CHANNELS = ("web", "email", "call", "meeting", "conversation", "questionnaire")
DAY = 86_400.0
MONTH = 30.44 * DAY  # a "month" of a rate
REFERENCE_AGE = 45.0


class HistoryConfig(msgspec.Struct, frozen=True, kw_only=True):
    """`now` is when the history ends (naive means UTC); it starts `years` before."""

    now: datetime
    customers: int = 2000
    years: float = 2.0
    seed: int = 7

    def __post_init__(self) -> None:
        if self.customers < 1 or self.years <= 0:
            raise ValueError("a history needs at least one customer and a positive length")
        if self.now.tzinfo is None:
            msgspec.structs.force_setattr(self, "now", self.now.replace(tzinfo=UTC))

    @property
    def start(self) -> datetime:
        return self.now - timedelta(days=365.25 * self.years)


class Segment(msgspec.Struct, frozen=True, kw_only=True):
    """One kind of customer. Rates are per month at the reference: age 45, middle income,
    stage `customer`, season 1, activity 1; web counts sessions (each several lines)."""

    kind: CustomerKind
    share: float  # of persons, or of organisations
    about: str
    rates: dict[str, float]
    age: tuple[float, float] | None  # mean and sd of the age at `now`
    income: dict[str, float]
    sources: dict[str, float]
    purposes: dict[str, float]
    consents: dict[str, float]  # "channel/purpose" -> probability of granting it
    qualify: tuple[float, float]  # P(lead -> prospect), mean days to it
    convert: tuple[float, float]  # P(prospect -> customer), mean days after qualifying
    churn: float  # monthly hazard customer -> former_customer at satisfaction 0.5
    satisfaction: tuple[float, float]  # Beta(a, b)
    price_sensitivity: tuple[float, float]  # Beta(a, b)
    inbound_calls: float  # share of calls the customer starts
    media: dict[str, float]  # conversation medium


def _rates(*per_month: float) -> dict[str, float]:
    return dict(zip(CHANNELS, per_month, strict=True))


def _bands(low: float, middle: float, high: float) -> dict[str, float]:
    return {"low": low, "middle": middle, "high": high}


CONSENT_KEYS = (
    "email/marketing",
    "email/newsletter",
    "phone/marketing",
    "sms/marketing",
    "post/marketing",
    "email/surveys",
)


def _consents(*probabilities: float) -> dict[str, float]:
    return dict(zip(CONSENT_KEYS, probabilities, strict=True))


SEGMENTS: dict[str, Segment] = {
    "digital_natives": Segment(
        kind="person",
        share=0.27,
        about="young, online first: web, e-mail and chat; rarely call",
        rates=_rates(4.0, 2.5, 0.3, 0.05, 1.2, 0.25),
        age=(30, 7),
        income=_bands(0.35, 0.50, 0.15),
        sources={
            "web": 0.35,
            "search_ad": 0.2,
            "social": 0.25,
            "referral": 0.1,
            "comparison_portal": 0.1,
        },
        purposes={"own_use": 0.7, "family": 0.15, "gift": 0.1, "small_business": 0.05},
        consents=_consents(0.6, 0.7, 0.1, 0.4, 0.05, 0.3),
        qualify=(0.85, 10),
        convert=(0.7, 20),
        churn=0.025,
        satisfaction=(6, 3),
        price_sensitivity=(3, 4),
        inbound_calls=0.5,
        media={"chat": 0.55, "messenger": 0.25, "social": 0.15, "in_person": 0.05},
    ),
    "phone_loyalists": Segment(
        kind="person",
        share=0.20,
        about="older, loyal, pick up the phone; little web",
        rates=_rates(0.6, 0.8, 3.5, 0.2, 0.5, 0.15),
        age=(63, 10),
        income=_bands(0.40, 0.45, 0.15),
        sources={"call": 0.35, "referral": 0.3, "fair": 0.2, "partner": 0.1, "web": 0.05},
        purposes={"own_use": 0.6, "family": 0.3, "gift": 0.1},
        consents=_consents(0.25, 0.2, 0.6, 0.1, 0.4, 0.2),
        qualify=(0.8, 20),
        convert=(0.75, 30),
        churn=0.010,
        satisfaction=(7, 3),
        price_sensitivity=(2, 5),
        inbound_calls=0.7,
        media={"in_person": 0.7, "chat": 0.2, "messenger": 0.1},
    ),
    "bargain_hunters": Segment(
        kind="person",
        share=0.18,
        about="price driven: many web sessions on offers, answer surveys, churn fast",
        rates=_rates(5.0, 2.0, 0.6, 0.05, 0.6, 0.4),
        age=(40, 12),
        income=_bands(0.50, 0.40, 0.10),
        sources={
            "comparison_portal": 0.4,
            "search_ad": 0.2,
            "web": 0.2,
            "social": 0.1,
            "referral": 0.1,
        },
        purposes={"own_use": 0.6, "family": 0.25, "gift": 0.15},
        consents=_consents(0.8, 0.85, 0.15, 0.5, 0.2, 0.5),
        qualify=(0.9, 7),
        convert=(0.6, 15),
        churn=0.045,
        satisfaction=(4, 4),
        price_sensitivity=(8, 2),
        inbound_calls=0.6,
        media={"chat": 0.5, "social": 0.2, "messenger": 0.2, "in_person": 0.1},
    ),
    "premium_advisory": Segment(
        kind="person",
        share=0.10,
        about="well off, want personal advice: meetings and calls",
        rates=_rates(1.5, 2.5, 1.5, 0.8, 0.4, 0.2),
        age=(52, 10),
        income=_bands(0.05, 0.35, 0.60),
        sources={"referral": 0.45, "partner": 0.2, "fair": 0.15, "web": 0.1, "call": 0.1},
        purposes={"own_use": 0.5, "family": 0.3, "gift": 0.1, "small_business": 0.1},
        consents=_consents(0.4, 0.4, 0.5, 0.1, 0.3, 0.3),
        qualify=(0.9, 14),
        convert=(0.85, 30),
        churn=0.008,
        satisfaction=(8, 2),
        price_sensitivity=(2, 8),
        inbound_calls=0.4,
        media={"in_person": 0.6, "chat": 0.3, "messenger": 0.1},
    ),
    "dormant": Segment(
        kind="person",
        share=0.25,
        about="signed up once, barely heard of since",
        rates=_rates(0.3, 0.2, 0.1, 0.01, 0.05, 0.03),
        age=(45, 15),
        income=_bands(0.35, 0.45, 0.20),
        sources={"web": 0.3, "fair": 0.25, "comparison_portal": 0.2, "social": 0.15, "call": 0.1},
        purposes={"own_use": 0.7, "family": 0.15, "gift": 0.15},
        consents=_consents(0.1, 0.15, 0.05, 0.02, 0.05, 0.05),
        qualify=(0.4, 60),
        convert=(0.3, 90),
        churn=0.030,
        satisfaction=(4, 4),
        price_sensitivity=(4, 4),
        inbound_calls=0.5,
        media={"chat": 0.4, "in_person": 0.4, "social": 0.2},
    ),
    "business_accounts": Segment(
        kind="organisation",
        share=1.0,
        about="companies and partners: e-mail, calls and meetings with their contact persons",
        rates=_rates(1.2, 8.0, 3.0, 1.2, 0.4, 0.1),
        age=None,
        income=_bands(0.30, 0.45, 0.25),  # revenue band for an organisation
        sources={"partner": 0.35, "fair": 0.3, "referral": 0.2, "call": 0.1, "web": 0.05},
        purposes={"business": 1.0},
        consents=_consents(0.6, 0.5, 0.6, 0.1, 0.2, 0.2),
        qualify=(0.85, 30),
        convert=(0.7, 60),
        churn=0.006,
        satisfaction=(6, 3),
        price_sensitivity=(4, 4),
        inbound_calls=0.5,
        media={"in_person": 0.5, "chat": 0.4, "messenger": 0.1},
    ),
}

# Effects on every segment. Age effects are per decade above (below: the inverse) age 45.
AGE_EFFECT = {"call": 1.2, "web": 0.8, "conversation": 0.85, "questionnaire": 1.1}
INCOME_EFFECT = {"meeting": _bands(0.6, 1.0, 1.8), "email": _bands(0.9, 1.0, 1.15)}
SEASON = (0.95, 0.90, 1.00, 1.00, 1.00, 0.95, 0.85, 0.65, 1.00, 1.05, 1.15, 1.45)  # Jan..Dec
STAGE_ACTIVITY: dict[str, float] = {
    "lead": 0.5,
    "prospect": 0.8,
    "customer": 1.0,
    "former_customer": 0.2,
}
ACTIVITY_GAMMA = (2.0, 0.5)  # shape, scale: mean 1, sd 0.71
WIN_BACK = 0.02  # monthly hazard former_customer -> customer
CONSENT_WITHDRAWAL = 0.015  # monthly hazard per granted consent
ORGANISATION_SHARE = 0.10
DUPLICATE_SHARE = 0.02
INCOMPLETE_PROFILE = 0.25  # persons registered without birth date and income band
EMAIL_VERIFIED = 0.65
PHONE_GIVEN = 0.8  # persons; organisations always give one
GENDERS = {"female": 0.49, "male": 0.48, "other": 0.01, "unknown": 0.02}
ROLES = {
    "purchasing": 0.3,
    "technical contact": 0.25,
    "accounts payable": 0.2,
    "managing director": 0.15,
    "assistant": 0.1,
}
CONTACT_PERSONS = {1: 0.4, 2: 0.4, 3: 0.2}
# Web sessions: a visit line, Poisson(PAGES) page views, a form with FORM_SHARE. The share of
# pages that are offers or tariffs is OFFER_PAGES[0] + OFFER_PAGES[1] * price sensitivity.
PAGES = 1.5
FORM_SHARE = 0.12
OFFER_PAGES = (0.1, 0.5)
# Interaction details. Call minutes are log-normal (median by direction, sigma) and longer by
# CALL_AGE_EFFECT per decade of age above 45; an inbound call is a complaint with probability
# COMPLAINT * (1 - satisfaction); outbound calls reach no one in 20% (0 min), a voicemail in 10%.
CALL_MEDIAN = {"in": 5.0, "out": 4.0}
CALL_SIGMA = 0.8
CALL_AGE_EFFECT = 1.1
COMPLAINT = 0.2
MEETING_MINUTES = {30: 0.2, 45: 0.2, 60: 0.35, 90: 0.15, 120: 0.1}
CONVERSATION_MEDIAN = {"chat": 6.0, "in_person": 15.0}  # messenger and social: no duration
EMAIL_OUT = 0.55
FREE_TEXT = {"call": 0.4, "email": 0.45, "meeting": 0.6, "conversation": 0.6}
QUESTIONNAIRES = {"nps": 0.5, "service_feedback": 0.3, "product_interest": 0.2}
# Weekly pattern: weight of an hour of the week = day weight (Mon..Sun) * hour weight (0..23).
_OFFICE_HOURS = (0,) * 8 + (0.6, 1, 1, 1, 0.6, 0.9, 0.9, 0.9, 0.9, 0.6, 0.3) + (0,) * 5
_MIXED_HOURS = (0.05,) * 7 + (0.3,) + (1,) * 10 + (0.6,) * 4 + (0.2,) * 2
_HOME_HOURS = (0.2, 0.1, 0.05, 0.05, 0.05, 0.1, 0.4, 0.4, 0.4) + (0.7,) * 9 + (1,) * 5 + (0.4,)
WEEKLY = {
    "office": ((1, 1, 1, 1, 0.9, 0.15, 0), _OFFICE_HOURS),
    "mixed": ((1, 1, 1, 1, 0.9, 0.4, 0.3), _MIXED_HOURS),
    "home": ((0.9, 0.9, 0.9, 0.9, 0.9, 1.2, 1.3), _HOME_HOURS),
}
CHANNEL_PATTERN = {
    "call": "office",
    "meeting": "office",
    "email": "mixed",
    "web": "home",
    "conversation": "home",
    "questionnaire": "home",
}


class StageChange(msgspec.Struct, frozen=True, kw_only=True):
    stage: Stage
    at: datetime
    source: str


class ConsentSpan(msgspec.Struct, frozen=True, kw_only=True):
    channel: str
    purpose: str
    granted_at: datetime
    source: str
    withdrawn_at: datetime | None = None


class ExtraContact(msgspec.Struct, frozen=True, kw_only=True):
    contact_id: UUID
    kind: Literal["phone", "address"]
    value: str
    label: str
    added_at: datetime


class ContactLink(msgspec.Struct, frozen=True, kw_only=True):
    """A person linked to an organisation; maybe given another role, maybe unlinked later."""

    person_id: UUID
    role: str
    linked_at: datetime
    new_role: str | None = None
    role_changed_at: datetime | None = None
    unlinked_at: datetime | None = None


class Duplicate(msgspec.Struct, frozen=True, kw_only=True):
    """A second record of the same person; merged into the real one, or still open at `now`."""

    customer_id: UUID
    name: str
    email: str
    source: str
    registered_at: datetime
    merged_at: datetime | None
    interactions: int  # logged on the duplicate before the merge


class FalseMerge(msgspec.Struct, frozen=True, kw_only=True):
    """This person was merged into another by mistake and unmerged soon after."""

    survivor_id: UUID
    merged_at: datetime
    unmerged_at: datetime


class LatentCustomer(msgspec.Struct, frozen=True, kw_only=True):
    """One real customer and every trait the history is drawn from."""

    index: int
    customer_id: UUID
    kind: CustomerKind
    segment: str
    name: str
    first_name: str | None
    last_name: str | None
    email: str
    phone: str | None
    city: str
    gender: Gender
    birth_date: date | None
    income_band: str
    purpose: str
    source: str
    joined: datetime
    profile_complete: bool  # else birth date and income band come with the first order
    activity: float
    satisfaction: float
    price_sensitivity: float
    rates: dict[str, float]  # per month in stage customer at season 1: the model's truth
    stages: tuple[StageChange, ...] = ()  # after registering as a lead
    consents: tuple[ConsentSpan, ...] = ()
    extra_contacts: tuple[ExtraContact, ...] = ()
    email_verified_at: datetime | None = None
    contact_persons: tuple[ContactLink, ...] = ()
    duplicate: Duplicate | None = None
    false_merge: FalseMerge | None = None

    def age(self, at: date) -> float | None:
        return None if self.birth_date is None else (at - self.birth_date).days / 365.25


def _pick(rng: random.Random, weights: dict[str, float]) -> str:
    return rng.choices(tuple(weights), weights=tuple(weights.values()))[0]


def _uuid(rng: random.Random) -> UUID:
    return UUID(int=rng.getrandbits(128), version=4)


def _at(t: float) -> datetime:
    return datetime.fromtimestamp(t, UTC)


def channel_rates(
    segment: Segment, age: float | None, income_band: str, activity: float
) -> dict[str, float]:
    """The monthly rate of each channel for one customer (stage customer, season 1)."""
    rates = {}
    for channel, base in segment.rates.items():
        rate = base * activity * INCOME_EFFECT.get(channel, {}).get(income_band, 1.0)
        if age is not None:
            rate *= AGE_EFFECT.get(channel, 1.0) ** ((age - REFERENCE_AGE) / 10)
        rates[channel] = rate
    return rates


def population(config: HistoryConfig) -> list[LatentCustomer]:
    """The customers of a history, the same for the same config. Customer i is drawn from its
    own seeded RNG, so its traits do not depend on how many customers come after it."""
    taken: set[str] = set()
    people = [_draw(config, i, taken) for i in range(config.customers)]
    rng = random.Random(f"{config.seed}/population")
    _false_merge(rng, people, config)
    _link_contact_persons(rng, people, config)
    return people


def _unique(value: str, taken: set[str]) -> str:
    local, _, domain = value.partition("@")
    n, candidate = 1, value
    while candidate in taken:
        n += 1
        candidate = f"{local}{n}@{domain}" if domain else f"{value}-{n}"
    taken.add(candidate)
    return candidate


def _draw(config: HistoryConfig, i: int, taken: set[str]) -> LatentCustomer:
    rng = random.Random(f"{config.seed}/customer/{i}")
    start, end = config.start.timestamp(), config.now.timestamp()
    latest = end - min(14 * DAY, (end - start) / 5)
    kind: CustomerKind = "organisation" if rng.random() < ORGANISATION_SHARE else "person"
    persons = {k: s.share for k, s in SEGMENTS.items() if s.kind == "person"}
    segment_name = _pick(rng, persons) if kind == "person" else "business_accounts"
    seg = SEGMENTS[segment_name]
    customer_id = _uuid(rng)
    joined = start + rng.random() * (latest - start)
    town = names.city(rng)
    first = last = birth = None
    gender: Gender = "unknown"
    if kind == "person":
        gender = cast(Gender, _pick(rng, GENDERS))
        first, last = names.first_name(rng, gender), names.last_name(rng)
        name = f"{first} {last}"
        mean, sd = seg.age or (REFERENCE_AGE, 10)
        years = min(95.0, max(18.0, rng.gauss(mean, sd)))
        birth = (config.now - timedelta(days=years * 365.25)).date()
        local = names.email_local(first, last) + (
            str(rng.randrange(1, 99)) if rng.random() < 0.3 else ""
        )
        email = f"{local}@{rng.choice(names.EMAIL_DOMAINS)}"
        phone = names.phone(rng) if rng.random() < PHONE_GIVEN else None
    else:
        name = names.company(rng)
        email = f"{rng.choice(('info', 'office', 'contact'))}@{names.email_local(name).replace('.', '')[:24]}.com"
        phone = names.phone(rng)
    income = _pick(rng, seg.income)
    satisfaction = rng.betavariate(*seg.satisfaction)
    activity = rng.gammavariate(*ACTIVITY_GAMMA)
    age = None if birth is None else (config.now.date() - birth).days / 365.25
    customer = LatentCustomer(
        index=i,
        customer_id=customer_id,
        kind=kind,
        segment=segment_name,
        name=name,
        first_name=first,
        last_name=last,
        email=_unique(email, taken),
        phone=None if phone is None else _unique(phone, taken),
        city=town,
        gender=gender,
        birth_date=birth,
        income_band=income,
        purpose=_pick(rng, seg.purposes),
        source=_pick(rng, seg.sources),
        joined=_at(joined),
        profile_complete=kind == "organisation" or rng.random() >= INCOMPLETE_PROFILE,
        activity=activity,
        satisfaction=satisfaction,
        price_sensitivity=rng.betavariate(*seg.price_sensitivity),
        rates=channel_rates(seg, age, income, activity),
        stages=_stages(rng, seg, satisfaction, joined, end),
        consents=_consent_spans(rng, seg, joined, end),
        extra_contacts=_extra_contacts(rng, kind, town, joined=joined, end=end, taken=taken),
        email_verified_at=_at(joined + 60 + rng.expovariate(1 / DAY))
        if rng.random() < EMAIL_VERIFIED
        else None,
    )
    if kind == "person" and rng.random() < DUPLICATE_SHARE:
        customer = replace(customer, duplicate=_duplicate(rng, customer, end, taken))
    return customer


def _after(rng: random.Random, t: float, mean_days: float) -> float:
    return t + 3600 + rng.expovariate(1 / (mean_days * DAY))


def _monthly(hazard: float) -> float:
    """A monthly hazard as a rate per second."""
    return -math.log(1 - min(hazard, 0.95)) / MONTH


def _stages(
    rng: random.Random, seg: Segment, satisfaction: float, t: float, end: float
) -> tuple[StageChange, ...]:
    """lead -> prospect -> customer, then churn (hazard scaled by 2 x (1 - satisfaction)) and
    win-back, until `end`."""
    out: list[StageChange] = []
    (p_qualify, d_qualify), (p_convert, d_convert) = seg.qualify, seg.convert
    if rng.random() >= p_qualify or (t := _after(rng, t, d_qualify)) >= end:
        return ()
    out.append(StageChange(stage="prospect", at=_at(t), source="qualified"))
    if rng.random() >= p_convert or (t := _after(rng, t, d_convert)) >= end:
        return tuple(out)
    out.append(StageChange(stage="customer", at=_at(t), source="first_order"))
    churn = max(_monthly(seg.churn * 2 * (1 - satisfaction)), 1e-12)
    while (t := t + rng.expovariate(churn)) < end:
        out.append(StageChange(stage="former_customer", at=_at(t), source="contract_ended"))
        if (t := t + rng.expovariate(_monthly(WIN_BACK))) >= end:
            break
        out.append(StageChange(stage="customer", at=_at(t), source="win_back"))
    return tuple(out)


_CONSENT_SOURCES = ("web form", "call", "fair", "e-mail link")
WITHDRAW_SOURCES = {
    "email": "unsubscribe link",
    "phone": "call",
    "sms": "STOP reply",
    "post": "letter",
}


def _consent_spans(
    rng: random.Random, seg: Segment, joined: float, end: float
) -> tuple[ConsentSpan, ...]:
    """70% of consents come with the registration, the rest later (mean 60 days)."""
    out = []
    for key, p in seg.consents.items():
        if rng.random() >= p:
            continue
        channel, purpose = key.split("/")
        at_registration = rng.random() < 0.7
        t = joined + 60 if at_registration else _after(rng, joined, 60)
        source = "registration" if at_registration else rng.choice(_CONSENT_SOURCES)
        withdrawn = t + 60 + rng.expovariate(_monthly(CONSENT_WITHDRAWAL))
        if t < end:
            out.append(
                ConsentSpan(
                    channel=channel,
                    purpose=purpose,
                    granted_at=_at(t),
                    source=source,
                    withdrawn_at=_at(withdrawn) if withdrawn < end else None,
                )
            )
    return tuple(out)


def _extra_contacts(
    rng: random.Random, kind: str, town: str, *, joined: float, end: float, taken: set[str]
) -> tuple[ExtraContact, ...]:
    """An address for 35% of persons (80% of organisations), a mobile for 20% of persons."""
    out = []
    if rng.random() < (0.8 if kind == "organisation" else 0.35):
        t = _after(rng, joined, 30)
        value, label = (
            names.street_address(rng, town),
            "office" if kind == "organisation" else "home",
        )
        if t < end:
            out.append(
                ExtraContact(
                    contact_id=_uuid(rng), kind="address", value=value, label=label, added_at=_at(t)
                )
            )
    if kind == "person" and rng.random() < 0.2:
        t, value = _after(rng, joined, 120), names.phone(rng)
        if t < end:
            out.append(
                ExtraContact(
                    contact_id=_uuid(rng),
                    kind="phone",
                    value=_unique(value, taken),
                    label="mobile",
                    added_at=_at(t),
                )
            )
    return tuple(out)


def _duplicate(
    rng: random.Random, c: LatentCustomer, end: float, taken: set[str]
) -> Duplicate | None:
    """Registered again 2 weeks to 10 months later with a slip in the name and another e-mail;
    merged after 1 day + a mean of 45 days, unless that is past `now`; 40% of duplicates get
    1-4 interactions of their own before the merge."""
    assert c.first_name is not None and c.last_name is not None
    first, last = names.misspelt(rng, c.first_name, c.last_name)
    registered = c.joined.timestamp() + rng.uniform(14, 300) * DAY
    merged = registered + DAY + rng.expovariate(1 / (45 * DAY))
    email = (
        f"{names.email_local(first, last)}{rng.randrange(100)}@{rng.choice(names.EMAIL_DOMAINS)}"
    )
    interactions = rng.randint(1, 4) if rng.random() < 0.4 else 0
    source = rng.choice([s for s in ("web", "call", "fair", "referral") if s != c.source])
    if registered >= end - 20 * DAY:
        return None
    return Duplicate(
        customer_id=_uuid(rng),
        name=f"{first} {last}",
        email=_unique(email, taken),
        source=source,
        registered_at=_at(registered),
        merged_at=_at(merged) if merged < end - 3600 else None,
        interactions=interactions,
    )


def _registry_times(c: LatentCustomer) -> list[datetime]:
    """When the customer's own record changes after registering (not interactions)."""
    times = [s.at for s in c.stages] + [x.added_at for x in c.extra_contacts]
    times += [t for s in c.consents for t in (s.granted_at, s.withdrawn_at) if t is not None]
    return times + ([c.email_verified_at] if c.email_verified_at else [])


def _false_merge(rng: random.Random, people: list[LatentCustomer], config: HistoryConfig) -> None:
    """One person (in a population of 50+) is merged into a namesake by mistake and unmerged
    1-7 days later, at a time when their own record does not change."""
    persons = [c for c in people if c.kind == "person" and c.duplicate is None]
    if len(persons) < 50:
        return
    end = config.now.timestamp()
    for _ in range(20):
        merged, survivor = rng.sample(persons, 2)
        namesakes = [c for c in persons if c.last_name == merged.last_name and c is not merged]
        survivor = namesakes[0] if namesakes else survivor
        t = max(merged.joined, survivor.joined).timestamp() + rng.uniform(30, 200) * DAY
        undone = t + rng.uniform(1, 7) * DAY
        if undone < end and not any(
            t - 60 <= x.timestamp() <= undone + 60 for x in _registry_times(merged)
        ):
            mistake = FalseMerge(
                survivor_id=survivor.customer_id, merged_at=_at(t), unmerged_at=_at(undone)
            )
            people[merged.index] = replace(merged, false_merge=mistake)
            return


def _link_contact_persons(
    rng: random.Random, people: list[LatentCustomer], config: HistoryConfig
) -> None:
    """Each organisation gets 1-3 persons (each person works for one at most), linked after
    both registered (mean 10 days); 8% change role later (mean 180 days), 8% leave (mean 240)."""
    end = config.now.timestamp()
    pool = [
        c
        for c in people
        if c.kind == "person" and c.false_merge is None and c.joined.timestamp() < end - 30 * DAY
    ]
    for org in [c for c in people if c.kind == "organisation"]:
        k = min(len(pool), int(_pick(rng, {str(n): p for n, p in CONTACT_PERSONS.items()})))
        links = []
        for person in rng.sample(pool, k):
            pool.remove(person)
            t = _after(rng, max(org.joined, person.joined).timestamp(), 10)
            link = ContactLink(
                person_id=person.customer_id, role=_pick(rng, ROLES), linked_at=_at(t)
            )
            changed, left = (
                t + rng.expovariate(1 / (180 * DAY)),
                t + rng.expovariate(1 / (240 * DAY)),
            )
            if rng.random() < 0.08 and changed < end:
                others = {r: p for r, p in ROLES.items() if r != link.role}
                link = replace(link, new_role=_pick(rng, others), role_changed_at=_at(changed))
            if (
                rng.random() < 0.08
                and left < end
                and (link.role_changed_at is None or left > changed)
            ):
                link = replace(link, unlinked_at=_at(left))
            if t < end:
                links.append(link)
        people[org.index] = replace(org, contact_persons=tuple(links))


def _table(header: list[str], rows: list[list[str]]) -> str:
    lines = [header, ["---"] * len(header), *rows]
    return "\n".join("| " + " | ".join(row) + " |" for row in lines) + "\n"


def _mix(weights: dict[str, float]) -> str:
    return ", ".join(f"{k} {v:g}" for k, v in weights.items())


def _pair(x: tuple[float, float] | None) -> str:
    return "-" if x is None else f"{x[0]:g}, {x[1]:g}"


def tables() -> dict[str, str]:
    """The model's numbers as the Markdown tables docs/demo-model.md quotes, by name."""
    seg = SEGMENTS.items()
    bands = ("low", "middle", "high")
    return {
        "rates": _table(
            ["segment", "kind", "share", *CHANNELS],
            [[n, s.kind, f"{s.share:g}", *(f"{s.rates[c]:g}" for c in CHANNELS)] for n, s in seg],
        ),
        "traits": _table(
            [
                "segment",
                "age mean, sd",
                "income low/middle/high",
                "satisfaction Beta",
                "price sensitivity Beta",
                "inbound calls",
            ],
            [
                [
                    n,
                    _pair(s.age),
                    "/".join(f"{s.income[b]:g}" for b in bands),
                    _pair(s.satisfaction),
                    _pair(s.price_sensitivity),
                    f"{s.inbound_calls:g}",
                ]
                for n, s in seg
            ],
        ),
        "lifecycle": _table(
            ["segment", "P(qualify), mean days", "P(convert), mean days", "monthly churn at s=0.5"],
            [[n, _pair(s.qualify), _pair(s.convert), f"{s.churn:g}"] for n, s in seg],
        ),
        "mixes": _table(
            ["segment", "acquisition source", "purpose", "conversation medium"],
            [[n, _mix(s.sources), _mix(s.purposes), _mix(s.media)] for n, s in seg],
        ),
        "consents": _table(
            ["segment", *CONSENT_KEYS],
            [[n, *(f"{s.consents[k]:g}" for k in CONSENT_KEYS)] for n, s in seg],
        ),
        "effects": _table(
            ["channel", "age effect per decade", "income low/middle/high", "weekly pattern"],
            [
                [
                    c,
                    f"{AGE_EFFECT.get(c, 1.0):g}",
                    "/".join(f"{INCOME_EFFECT.get(c, {}).get(b, 1.0):g}" for b in bands),
                    CHANNEL_PATTERN[c],
                ]
                for c in CHANNELS
            ],
        ),
        "stages": _table(list(STAGE_ACTIVITY), [[f"{v:g}" for v in STAGE_ACTIVITY.values()]]),
        "season": _table(
            ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"],
            [[f"{v:g}" for v in SEASON]],
        ),
        "days": _table(
            ["pattern", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"],
            [[n, *(f"{v:g}" for v in days)] for n, (days, _) in WEEKLY.items()],
        ),
        "hours": _table(
            ["pattern", *(str(h) for h in range(24))],
            [[n, *(f"{v:g}" for v in hours)] for n, (_, hours) in WEEKLY.items()],
        ),
    }
