"""Names, addresses and the phrases of free text, drawn with the caller's seeded RNG.

Faker's word lists (en_US, weighted by frequency) are used directly: a Faker call costs 30-180 µs
and reseeding it per customer is slow, while `rng.choices` over the same lists costs about 1 µs
and stays deterministic with our own seeded `random.Random`.
"""

from __future__ import annotations

import random
import re
from itertools import accumulate

from faker.providers.address.en_US import Provider as _Address
from faker.providers.company.en_US import Provider as _Company
from faker.providers.internet.en_US import Provider as _Internet
from faker.providers.person.en_US import Provider as _Person

_FEMALE = tuple(_Person.first_names_female)
_FEMALE_CUM = tuple(accumulate(_Person.first_names_female.values()))
_MALE = tuple(_Person.first_names_male)
_MALE_CUM = tuple(accumulate(_Person.first_names_male.values()))
_LAST = tuple(_Person.last_names)
_LAST_CUM = tuple(accumulate(_Person.last_names.values()))
_CITY_PREFIXES = tuple(_Address.city_prefixes)
_CITY_SUFFIXES = tuple(_Address.city_suffixes)
_STREET_SUFFIXES = tuple(_Address.street_suffixes)
_COMPANY_SUFFIXES = tuple(_Company.company_suffixes)
EMAIL_DOMAINS = (*_Internet.free_email_domains, "outlook.com", "icloud.com", "aol.com")
_NOT_LOCAL = re.compile(r"[^a-z0-9]")


_VARIANT = "89ab"


class UuidSequence:
    """Version-4-shaped UUID strings: 74 random bits drawn once, then a 48-bit counter. Unique
    and seeded like a fresh `uuid.UUID(int=rng.getrandbits(128), version=4)` per id, at a
    fifth of the cost, which matters for a quarter of a million command ids."""

    def __init__(self, rng: random.Random) -> None:
        h = f"{rng.getrandbits(80):020x}"
        self._prefix = f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{_VARIANT[int(h[16], 16) & 3]}{h[17:20]}-"
        self._n = 0

    def next(self) -> str:
        self._n += 1
        return f"{self._prefix}{self._n:012x}"


def first_name(rng: random.Random, gender: str) -> str:
    if gender in {"other", "unknown"}:
        gender = rng.choice(("female", "male"))
    if gender == "female":
        return rng.choices(_FEMALE, cum_weights=_FEMALE_CUM)[0]
    return rng.choices(_MALE, cum_weights=_MALE_CUM)[0]


def last_name(rng: random.Random) -> str:
    return rng.choices(_LAST, cum_weights=_LAST_CUM)[0]


def company(rng: random.Random) -> str:
    a, b, c = last_name(rng), last_name(rng), last_name(rng)
    return rng.choice((f"{a} {rng.choice(_COMPANY_SUFFIXES)}", f"{a}-{b}", f"{a}, {b} and {c}"))


def city(rng: random.Random) -> str:
    name = first_name(rng, "unknown") if rng.random() < 0.6 else last_name(rng)
    if rng.random() < 0.5:
        return f"{rng.choice(_CITY_PREFIXES)} {name}{rng.choice(_CITY_SUFFIXES)}"
    return f"{name}{rng.choice(_CITY_SUFFIXES)}"


def street_address(rng: random.Random, town: str) -> str:
    return f"{rng.randrange(1, 9999)} {last_name(rng)} {rng.choice(_STREET_SUFFIXES)}, {town}"


def phone(rng: random.Random) -> str:
    return f"+1-{rng.randrange(201, 990)}-{rng.randrange(200, 1000)}-{rng.randrange(10000):04d}"


def email_local(*parts: str) -> str:
    return ".".join(p for p in (_NOT_LOCAL.sub("", part.lower()) for part in parts) if p)


def misspelt(rng: random.Random, first: str, last: str) -> tuple[str, str]:
    """How a second registration of the same person spells the name: one small slip."""
    slip = rng.choice(("swap", "drop", "double", "initial", "short"))
    if slip == "initial":
        return f"{first[0]}.", last
    if slip == "short" and len(first) > 4:
        return first[:3], last
    if len(last) < 4:
        return first, last + last[-1]
    i = rng.randrange(1, len(last) - 1)
    if slip == "swap" and last[i] != last[i + 1]:
        return first, last[:i] + last[i + 1] + last[i] + last[i + 2 :]
    if slip == "drop":
        return first, last[:i] + last[i + 1 :]
    return first, last[: i + 1] + last[i:]  # a doubled letter


# Free text. Every phrase may carry the customer's name, phone or e-mail: personal data that is
# encrypted in the log and blanked when the customer is forgotten.
TOPICS = (
    "their last invoice",
    "a delivery date",
    "switching to another tariff",
    "a technical problem",
    "renewing the contract",
    "long waiting times",
    "a change of address",
    "a payment reminder",
    "the offer we sent",
    "a new product",
)
NEXT_STEPS = (
    "Sent a summary by e-mail.",
    "Follow-up call next week.",
    "Resolved right away.",
    "Escalated to second-level support.",
    "Offer to be sent.",
    "No action needed.",
)
CALL_NOTES = (
    "{first} called about {topic}. {next}",
    "Spoke with {first} {last} about {topic}; {next}",
    "{first} asked about {topic}. Call back on {phone}.",
)
MEETING_NOTES = (
    "Met {first} {last} in {place} to talk about {topic}. {next}",
    "Visit in {place}: {first} wants to know more about {topic}. {next}",
)
SUMMARIES = (
    "{first} asked about {topic}. {next}",
    "Chat with {first} {last} about {topic}; {next}",
)
SUBJECTS_IN = (
    "Question about invoice {ref}",
    "Re: your offer {ref}",
    "Change of address",
    "Problem with my order {ref}",
    "Appointment request",
    "Thank you!",
)
SUBJECTS_OUT = (
    "Your offer {ref}",
    "Invoice {ref}",
    "Confirmation of your appointment",
    "Re: your question",
    "Our seasonal deals",
    "How are we doing?",
)
BODY_IN = "Hello,\n\nI have a question about {topic}. Please reach me at {email}.\n\nBest regards,\n{first} {last}"
BODY_OUT = "Dear {first} {last},\n\nthank you for your message about {topic}. {next}\n\nKind regards,\nYour customer service"
REASONS_GOOD = ("Friendly staff.", "Good value for money.", "Fast delivery.", "Always reachable.")
REASONS_BAD = (
    "Too expensive.",
    "Hard to reach by phone.",
    "The app keeps crashing.",
    "Slow answers.",
)
