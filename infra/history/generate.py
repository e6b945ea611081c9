"""The population as import lines: registry commands and interactions, in business-time order.

Interactions of a customer on a channel are a Poisson process whose monthly rate is the
customer's `rates[channel]` x the month's season x the activity of the customer's stage at the
time; within an interval each event's time follows the channel's weekly pattern. Every random
choice and every id comes from RNGs seeded by the config: one config, the same bytes.
"""

from __future__ import annotations

import math
import random
from bisect import bisect
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from itertools import accumulate
from operator import itemgetter
from typing import Any, NamedTuple, TypeVar
from uuid import UUID

import msgspec

from domain.customers.state import primary_contact_id
from infra.history import model as m
from infra.history import names
from infra.history.model import DAY, MONTH, HistoryConfig, LatentCustomer

WEEK = 7 * DAY
T = TypeVar("T")
_MONDAY = 4 * DAY  # 1970-01-05 00:00 UTC, the epoch's first Monday
_encode = msgspec.json.Encoder().encode

NPS_QUESTION = "How likely are you to recommend us to a friend or colleague? (0-10)"
NPS_REASON = "What is the main reason for your score?"
SERVICE_RATING = "How satisfied are you with our service? (1-5)"
SERVICE_RESOLVED = "Was your issue resolved?"
SERVICE_COMMENT = "Anything else you would like to tell us?"
INTEREST_TOPIC = "Which topics interest you most?"
INTEREST_CHANNEL = "How would you like us to contact you?"
_PREFERRED = {
    "web": "online",
    "email": "e-mail",
    "call": "phone",
    "meeting": "in person",
    "conversation": "chat",
    "questionnaire": "e-mail",
}
_PAGES = ("/", "/products", "/support", "/support/faq", "/account", "/contact", "/blog")
_OFFER_PAGES = ("/offers", "/tariffs")
_REFERRERS = ("direct", "search", "newsletter", "social", "comparison_portal")
_REFERRER_CUM = tuple(accumulate((0.35, 0.35, 0.1, 0.1, 0.1)))
_FORMS = {
    "contact": "/contact",
    "quote_request": "/tariffs",
    "newsletter_signup": "/newsletter",
    "callback_request": "/support",
}
_FORM_NAMES = tuple(_FORMS)
_IN_OUTCOMES = ("resolved", "callback_requested", "transferred")
_OUT_OUTCOMES = ("reached", "appointment_set", "offer_discussed")
_MEETING_MINUTES = tuple(float(x) for x in m.MEETING_MINUTES)
_MEETING_CUM = tuple(accumulate(m.MEETING_MINUTES.values()))
_QUESTIONNAIRES = tuple(m.QUESTIONNAIRES)
_QUESTIONNAIRE_CUM = tuple(accumulate(m.QUESTIONNAIRES.values()))


def history(config: HistoryConfig) -> Iterator[bytes]:
    """Every import line of the history, newline-terminated, in business-time order."""
    lines = _timed_lines(config)
    lines.sort(key=itemgetter(0))  # stable: ties keep the order drawn
    for _, line in lines:
        yield line


def _timed_lines(config: HistoryConfig) -> list[tuple[float, bytes]]:
    """(business time, line) for every line, in the order drawn: customer by customer, then
    the commerce (catalogue, deals, orders, subscriptions; `infra.history.commerce`), then the
    service that follows the orders (equipment, tickets, surveys; `infra.history.service`)."""
    people = m.population(config)
    by_id = {c.customer_id: c for c in people}
    out: list[tuple[float, bytes]] = []
    calendar = months(config)
    for c in people:
        writer = _Writer(c, config, out, by_id)
        writer.registry()
        writer.interactions(calendar)
    from infra.history import commerce, service  # they build on this module's helpers

    facts: dict[int, list[commerce.Event]] = {}
    out += commerce.timed_lines(config, people, calendar, facts)
    out += service.timed_lines(config, people, facts)
    return out


class _Pattern(NamedTuple):
    cum: list[float]
    total: float


def _patterns() -> dict[str, _Pattern]:
    out = {}
    for channel, name in m.CHANNEL_PATTERN.items():
        days, hours = m.WEEKLY[name]
        cum = list(accumulate(d * h for d in days for h in hours))
        out[channel] = _Pattern(cum, cum[-1])
    return out


PATTERNS = _patterns()


class Month(NamedTuple):
    start: float
    end: float
    season: float


def months(config: HistoryConfig) -> list[Month]:
    """The calendar months (UTC) of the history; the last ends at `now`."""
    start, end = config.start.astimezone(UTC), config.now.astimezone(UTC)
    at = datetime(start.year, start.month, 1, tzinfo=UTC)
    out = []
    while at < end:
        following = datetime(at.year + at.month // 12, at.month % 12 + 1, 1, tzinfo=UTC)
        out.append(Month(at.timestamp(), min(following, end).timestamp(), m.SEASON[at.month - 1]))
        at = following
    return out


_DAYS: dict[int, str] = {}
_MINUTES = tuple(f"{h:02d}:{mi:02d}:" for h in range(24) for mi in range(60))
_SECONDS = tuple(f"{sec:02d}Z" for sec in range(60))


def stamp(t: float) -> str:
    """RFC 3339 in UTC to the second, for epoch seconds (a few times faster than datetime)."""
    s = int(t)
    day, s = divmod(s, 86400)
    prefix = _DAYS.get(day)
    if prefix is None:
        prefix = _DAYS[day] = datetime.fromtimestamp(day * DAY, UTC).strftime("%Y-%m-%dT")
    return prefix + _MINUTES[s // 60] + _SECONDS[s % 60]


def _one(rng: random.Random, options: Sequence[T]) -> T:
    """`rng.choice` without its bounds checks: the hot loop calls it half a million times."""
    return options[int(rng.random() * len(options))]


def _weighted(rng: random.Random, options: Sequence[T], cum: Sequence[float]) -> T:
    """`rng.choices(options, cum_weights=cum)[0]`, lean."""
    return options[bisect(cum, rng.random() * cum[-1])]


def poisson(rng: random.Random, lam: float) -> int:
    if lam <= 0:
        return 0
    if lam > 30:
        return max(0, round(rng.gauss(lam, math.sqrt(lam))))
    limit, k, p = math.exp(-lam), 0, rng.random()
    while p > limit:
        k += 1
        p *= rng.random()
    return k


def place(rng: random.Random, pattern: _Pattern, a: float, b: float) -> float | None:
    """A time in [a, b) with density proportional to the weekly pattern: an hour of the week by
    its weight, then one of its occurrences in [a, b) (rejection keeps occurrences equally
    likely). None if 100 tries find no time: the interval is short and (nearly) off-hours."""
    occurrences = int((b - a) // WEEK) + 1
    into_week = (a - _MONDAY) % WEEK
    cum, total = pattern
    for _ in range(100):
        hour = bisect(cum, rng.random() * total)
        first = a + (hour * 3600.0 + rng.random() * 3600.0 - into_week) % WEEK
        t = first + int(rng.random() * occurrences) * WEEK
        if t < b:
            return t
    return None


class _Who(NamedTuple):
    """Whom an interaction is logged on, and the names its free text may mention."""

    customer_id: str
    first: str
    last: str
    email: str
    phone: str
    place: str
    until: float  # nothing after this


def _ts(at: datetime) -> float:
    return at.timestamp()


class _Writer:
    """Draws the lines of one customer (and of their duplicate) with the customer's own RNG."""

    def __init__(
        self,
        c: LatentCustomer,
        config: HistoryConfig,
        out: list[tuple[float, bytes]],
        by_id: dict[UUID, LatentCustomer],
    ) -> None:
        self.c, self.out = c, out
        self.rng = rng = random.Random(f"{config.seed}/events/{c.index}")
        self.end = config.now.timestamp()
        self.seg = m.SEGMENTS[c.segment]
        age = c.age(config.now.date())
        self.call_scale = (
            1.0 if age is None else m.CALL_AGE_EFFECT ** ((age - m.REFERENCE_AGE) / 10)
        )
        self.offer_share = m.OFFER_PAGES[0] + m.OFFER_PAGES[1] * c.price_sensitivity
        self.media = tuple(self.seg.media)
        self.media_cum = tuple(accumulate(self.seg.media.values()))
        fm = c.false_merge
        self.blocked = (_ts(fm.merged_at) - 60, _ts(fm.unmerged_at) + 60) if fm else (0.0, 0.0)
        self.thread: str | None = None
        self.ids = names.UuidSequence(rng)
        first, last = c.first_name, c.last_name
        if first is None or last is None:  # an organisation: its first contact person speaks
            person = by_id[c.contact_persons[0].person_id] if c.contact_persons else None
            first = person.first_name if person else names.first_name(rng, "unknown")
            last = person.last_name if person else names.last_name(rng)
        self.who = _Who(
            str(c.customer_id),
            first or "",
            last or "",
            c.email,
            c.phone or c.email,
            c.city,
            self.end,
        )
        self.channels = {
            "web": self.web,
            "email": self.email,
            "call": self.call,
            "meeting": self.meeting,
            "conversation": self.conversation,
            "questionnaire": self.questionnaire,
        }

    def add(self, t: float, command: str, data: dict[str, Any]) -> None:
        data["occurred_at"] = stamp(t)
        line = {"command": command, "data": data, "command_id": self.ids.next()}
        self.out.append((t, _encode(line) + b"\n"))

    def log(self, t: float, command: str, data: dict[str, Any]) -> None:
        """An interaction; none while the customer is wrongly merged into someone else."""
        if not self.blocked[0] <= t <= self.blocked[1]:
            self.add(t, command, data)

    def registry(self) -> None:
        c, cid = self.c, str(self.c.customer_id)
        data: dict[str, Any] = {
            "customer_id": cid,
            "kind": c.kind,
            "name": c.name,
            "email": c.email,
        }
        if c.phone:
            data["phone"] = c.phone
        if c.kind == "person":
            data["gender"] = c.gender
        if c.profile_complete:
            data["income_band"] = c.income_band
            if c.birth_date:
                data["birth_date"] = c.birth_date.isoformat()
        data |= {"purpose": c.purpose, "source": c.source}
        self.add(_ts(c.joined), "customer.register", data)
        completed = c.profile_complete
        for s in c.stages:
            self.add(
                _ts(s.at),
                "customer.change_stage",
                {"customer_id": cid, "stage": s.stage, "source": s.source},
            )
            if s.stage == "customer" and not completed:
                completed = True
                assert c.birth_date is not None
                profile = {
                    "customer_id": cid,
                    "birth_date": c.birth_date.isoformat(),
                    "income_band": c.income_band,
                }
                self.add(_ts(s.at) + 60, "customer.update_profile", profile)
        for span in c.consents:
            consent = {"customer_id": cid, "consent_channel": span.channel, "purpose": span.purpose}
            self.add(
                _ts(span.granted_at), "customer.grant_consent", consent | {"source": span.source}
            )
            if span.withdrawn_at:
                source = m.WITHDRAW_SOURCES[span.channel]
                self.add(
                    _ts(span.withdrawn_at),
                    "customer.withdraw_consent",
                    consent | {"source": source},
                )
        for x in c.extra_contacts:
            contact = {"customer_id": cid, "contact_id": str(x.contact_id), "kind": x.kind}
            self.add(
                _ts(x.added_at),
                "customer.add_contact",
                contact | {"value": x.value, "label": x.label},
            )
        if c.email_verified_at:
            primary = str(primary_contact_id(c.customer_id, "email"))
            self.add(
                _ts(c.email_verified_at),
                "customer.verify_contact",
                {"customer_id": cid, "contact_id": primary},
            )
        for link in c.contact_persons:
            ids = {"organisation_id": cid, "person_id": str(link.person_id)}
            self.add(_ts(link.linked_at), "customer.link_contact_person", ids | {"role": link.role})
            if link.role_changed_at:
                self.add(
                    _ts(link.role_changed_at),
                    "customer.link_contact_person",
                    ids | {"role": link.new_role},
                )
            if link.unlinked_at:
                self.add(_ts(link.unlinked_at), "customer.unlink_contact_person", ids)
        self.duplicate()
        if c.false_merge:
            ids = {"survivor_id": str(c.false_merge.survivor_id), "merged_id": cid}
            self.add(_ts(c.false_merge.merged_at), "customer.merge", dict(ids))
            self.add(_ts(c.false_merge.unmerged_at), "customer.unmerge", dict(ids))

    def duplicate(self) -> None:
        c, dup, rng = self.c, self.c.duplicate, self.rng
        if dup is None:
            return
        dup_id, registered = str(dup.customer_id), _ts(dup.registered_at)
        data = {"customer_id": dup_id, "kind": "person", "name": dup.name, "email": dup.email}
        self.add(registered, "customer.register", data | {"gender": c.gender, "source": dup.source})
        until = _ts(dup.merged_at) - 60 if dup.merged_at else self.end
        first, last = dup.name.split(" ", 1)
        who = self.who._replace(
            customer_id=dup_id, first=first, last=last, email=dup.email, until=until
        )
        channels, weights = tuple(c.rates), tuple(c.rates.values())
        for _ in range(dup.interactions):
            channel = rng.choices(channels, weights)[0]
            t = place(rng, PATTERNS[channel], registered + 3600, until - 3600)
            if t is not None:
                self.channels[channel](t, who)
        if dup.merged_at:
            merge = {"survivor_id": str(c.customer_id), "merged_id": dup_id}
            self.add(_ts(dup.merged_at), "customer.merge", merge)

    def interactions(self, calendar: list[Month]) -> None:
        """Month by month, split where the stage changes, a Poisson count per channel."""
        c, rng, who = self.c, self.rng, self.who
        start = _ts(c.joined) + 60
        changes = [(_ts(s.at), s.stage) for s in c.stages]
        rates = [
            (rate, PATTERNS[ch], self.channels[ch]) for ch, rate in c.rates.items() if rate > 0
        ]
        stage, k = "lead", 0
        first = max(0, bisect([x.start for x in calendar], start) - 1)
        for month in calendar[first:]:
            lo = max(month.start, start)
            while lo < month.end:
                change = changes[k][0] if k < len(changes) else math.inf
                if change <= lo:
                    stage, k = changes[k][1], k + 1
                    continue
                hi = min(month.end, change)
                scale = month.season * m.STAGE_ACTIVITY[stage] * (hi - lo) / MONTH
                for rate, pattern, emit in rates:
                    for _ in range(poisson(rng, rate * scale)):
                        if (t := place(rng, pattern, lo, hi)) is not None:
                            emit(t, who)
                lo = hi

    def free_text(self, templates: tuple[str, ...], who: _Who) -> str:
        rng = self.rng
        return _one(rng, templates).format(
            first=who.first,
            last=who.last,
            phone=who.phone,
            email=who.email,
            place=who.place,
            topic=_one(rng, names.TOPICS),
            next=_one(rng, names.NEXT_STEPS),
        )

    def page(self) -> str:
        rng = self.rng
        return _one(rng, _OFFER_PAGES if rng.random() < self.offer_share else _PAGES)

    def web(self, t: float, who: _Who) -> None:
        """A session: the visit, Poisson(PAGES) page views, maybe a form, minutes apart."""
        rng, cid, command = self.rng, who.customer_id, "interaction.log_web"
        session = f"{rng.getrandbits(48):012x}"
        referrer = _weighted(rng, _REFERRERS, _REFERRER_CUM)
        visit = {"customer_id": cid, "action": "visit", "page": self.page(), "session": session}
        visit["referrer"] = referrer
        self.log(t, command, visit)
        for _ in range(poisson(rng, m.PAGES)):
            t += 10 + rng.expovariate(1 / 60)
            if t >= who.until:
                return
            view = {
                "customer_id": cid,
                "action": "page_view",
                "page": self.page(),
                "session": session,
            }
            self.log(t, command, view)
        if rng.random() < m.FORM_SHARE:
            t += 30 + rng.expovariate(1 / 120)
            form = _one(rng, _FORM_NAMES)
            if t < who.until:
                data = {"customer_id": cid, "action": "form_submitted", "page": _FORMS[form]}
                self.log(t, command, data | {"form": form, "session": session})

    def email(self, t: float, who: _Who) -> None:
        rng = self.rng
        out = rng.random() < m.EMAIL_OUT
        data: dict[str, Any] = {"customer_id": who.customer_id, "direction": "out" if out else "in"}
        if rng.random() < 0.95:
            subjects = names.SUBJECTS_OUT if out else names.SUBJECTS_IN
            data["subject"] = _one(rng, subjects).format(ref=10_000 + int(rng.random() * 90_000))
        if rng.random() < m.FREE_TEXT["email"]:
            data["body"] = self.free_text((names.BODY_OUT,) if out else (names.BODY_IN,), who)
        if self.thread is None or rng.random() >= 0.4:
            self.thread = f"T-{rng.getrandbits(32):08x}"
        data["thread"] = self.thread
        self.log(t, "interaction.log_email", data)

    def call(self, t: float, who: _Who) -> None:
        rng = self.rng
        inbound = rng.random() < self.seg.inbound_calls
        r = rng.random()
        if inbound:
            outcome = (
                "complaint"
                if r < m.COMPLAINT * (1 - self.c.satisfaction)
                else _one(rng, _IN_OUTCOMES)
            )
        else:
            outcome = (
                "no_answer" if r < 0.2 else "voicemail" if r < 0.3 else _one(rng, _OUT_OUTCOMES)
            )
        if outcome == "no_answer":
            minutes = 0.0
        elif outcome == "voicemail":
            minutes = rng.uniform(0.3, 1.0)
        else:
            median = m.CALL_MEDIAN["in" if inbound else "out"] * self.call_scale
            minutes = min(240.0, rng.lognormvariate(math.log(median), m.CALL_SIGMA))
        data = {
            "customer_id": who.customer_id,
            "direction": "in" if inbound else "out",
            "duration_min": round(minutes, 1),
            "outcome": outcome,
        }
        if minutes > 0 and rng.random() < m.FREE_TEXT["call"]:
            data["notes"] = self.free_text(names.CALL_NOTES, who)
        self.log(t, "interaction.log_call", data)

    def meeting(self, t: float, who: _Who) -> None:
        rng = self.rng
        minutes = _weighted(rng, _MEETING_MINUTES, _MEETING_CUM)
        place = _one(rng, (who.place, "our office", "video call"))
        data: dict[str, Any] = {
            "customer_id": who.customer_id,
            "duration_min": minutes,
            "location": place,
        }
        if rng.random() < m.FREE_TEXT["meeting"]:
            data["notes"] = self.free_text(names.MEETING_NOTES, who)
        self.log(t, "interaction.log_meeting", data)

    def conversation(self, t: float, who: _Who) -> None:
        rng = self.rng
        medium = _weighted(rng, self.media, self.media_cum)
        data: dict[str, Any] = {"customer_id": who.customer_id, "medium": medium}
        if medium in m.CONVERSATION_MEDIAN:
            median = m.CONVERSATION_MEDIAN[medium]
            data["duration_min"] = round(min(600.0, rng.lognormvariate(math.log(median), 0.6)), 1)
        if rng.random() < m.FREE_TEXT["conversation"]:
            data["summary"] = self.free_text(names.SUMMARIES, who)
        self.log(t, "interaction.log_conversation", data)

    def questionnaire(self, t: float, who: _Who) -> None:
        """Scores follow the latent satisfaction s: NPS ~ 10s + N(0, 1.2), rating ~ 1 + 4s +
        N(0, 0.6), resolved with probability 0.4 + 0.5s."""
        rng, s = self.rng, self.c.satisfaction
        kind = _weighted(rng, _QUESTIONNAIRES, _QUESTIONNAIRE_CUM)
        if kind == "nps":
            score = min(10, max(0, round(10 * s + rng.gauss(0, 1.2))))
            answers = [{"question": NPS_QUESTION, "answer": str(score)}]
            if rng.random() < 0.4:
                reasons = names.REASONS_GOOD if score >= 7 else names.REASONS_BAD
                answers.append({"question": NPS_REASON, "answer": _one(rng, reasons)})
        elif kind == "service_feedback":
            rating = min(5, max(1, round(1 + 4 * s + rng.gauss(0, 0.6))))
            resolved = "yes" if rng.random() < 0.4 + 0.5 * s else "no"
            answers = [
                {"question": SERVICE_RATING, "answer": str(rating)},
                {"question": SERVICE_RESOLVED, "answer": resolved},
            ]
            if rng.random() < 0.3:
                reasons = names.REASONS_GOOD if rating >= 4 else names.REASONS_BAD
                comment = f"{_one(rng, reasons)} Regards, {who.first} {who.last}"
                answers.append({"question": SERVICE_COMMENT, "answer": comment})
        else:
            preferred = max(self.c.rates, key=self.c.rates.__getitem__)
            answers = [
                {
                    "question": INTEREST_TOPIC,
                    "answer": _one(
                        rng, ("tariffs", "new products", "accessories", "service plans")
                    ),
                },
                {"question": INTEREST_CHANNEL, "answer": _PREFERRED[preferred]},
            ]
        data = {"customer_id": who.customer_id, "questionnaire": kind, "answers": answers}
        self.log(t, "interaction.log_questionnaire", data)
