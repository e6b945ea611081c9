"""The demo history: deterministic, valid `crm import` lines in order, showing its latent model.

Effects are measured here from the emitted lines and `population()` (the truth), never against
hard-coded counts; rates are per customer-month of exposure (from joining to `now`).
"""

from __future__ import annotations

from bisect import bisect
from collections import Counter, defaultdict
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from statistics import mean

import msgspec
import pytest

from domain.commands import Command
from domain.interactions.commands import LogInteraction
from handlers import customers, interactions, orders, pipeline, products, service  # noqa: F401  (they register the commands)
from handlers.parsing import parse_command, parse_line
from infra.history import HistoryConfig, LatentCustomer, history, population
from infra.history.generate import stamp
from infra.history.model import CHANNELS, MONTH, tables

NOW = datetime(2026, 5, 1, 12, tzinfo=UTC)
SMALL = HistoryConfig(now=NOW, customers=200, seed=11)
DOC = Path(__file__).parents[2] / "docs" / "demo-model.md"
INTERACTIONS = {
    "interaction.log_web": "web",
    "interaction.log_email": "email",
    "interaction.log_call": "call",
    "interaction.log_meeting": "meeting",
    "interaction.log_conversation": "conversation",
    "interaction.log_questionnaire": "questionnaire",
}


class Data(msgspec.Struct):
    occurred_at: str
    customer_id: str | None = None
    organisation_id: str | None = None
    person_id: str | None = None
    survivor_id: str | None = None
    merged_id: str | None = None
    stage: str | None = None
    questionnaire: str | None = None
    answers: list[dict[str, str]] = []


class Seen(msgspec.Struct):
    """The parts of a line the tests look at."""

    command: str
    data: Data
    command_id: str


_seen = msgspec.json.Decoder(Seen)


def decode(lines: Iterable[bytes]) -> list[Seen]:
    return [_seen.decode(line) for line in lines]


@pytest.fixture(scope="module")
def small() -> list[bytes]:
    return list(history(SMALL))


@pytest.fixture(scope="module")
def small_seen(small: list[bytes]) -> list[Seen]:
    return decode(small)


@pytest.fixture(scope="module")
def default() -> tuple[list[LatentCustomer], list[Seen]]:
    """The default config, generated once for the count and the effects."""
    config = HistoryConfig(now=NOW)
    return population(config), decode(history(config))


def months_active(c: LatentCustomer) -> float:
    return (NOW - c.joined).total_seconds() / MONTH


def per_customer(seen: list[Seen]) -> dict[str, Counter[str]]:
    counts: dict[str, Counter[str]] = defaultdict(Counter)
    for s in seen:
        if s.command in INTERACTIONS:
            counts[s.data.customer_id or ""][INTERACTIONS[s.command]] += 1
    return counts


def rate(counts: dict[str, Counter[str]], group: list[LatentCustomer], channel: str) -> float:
    """Interactions per customer-month of the group."""
    n = sum(counts[str(c.customer_id)][channel] for c in group)
    return n / sum(months_active(c) for c in group)


def segment(people: list[LatentCustomer], name: str) -> list[LatentCustomer]:
    return [c for c in people if c.segment == name]


class TestDeterminism:
    def test_the_same_config_gives_the_same_bytes(self, small: list[bytes]) -> None:
        assert list(history(SMALL)) == small
        assert population(SMALL) == population(SMALL)

    def test_another_seed_gives_another_history(self, small: list[bytes]) -> None:
        other = HistoryConfig(now=NOW, customers=200, seed=12)
        assert list(history(other)) != small

    def test_a_naive_now_is_utc(self) -> None:
        naive = HistoryConfig(now=NOW.replace(tzinfo=None), customers=200, seed=11)
        assert naive.now == NOW

    def test_customers_keep_their_traits_in_a_bigger_population(self) -> None:
        bigger = population(HistoryConfig(now=NOW, customers=300, seed=11))[:200]
        for a, b in zip(population(SMALL), bigger, strict=True):
            assert (a.customer_id, a.name, a.segment, a.rates, a.stages) == (
                b.customer_id,
                b.name,
                b.segment,
                b.rates,
                b.stages,
            )


class TestLines:
    def test_every_line_parses_into_a_typed_command(self, small: list[bytes]) -> None:
        for raw in small:
            assert raw.endswith(b"\n") and raw.count(b"\n") == 1
            line = parse_line(raw)
            command = parse_command(line.command, line.data)
            assert isinstance(command, Command)
            assert line.command_id

    def test_command_ids_are_unique(self, small_seen: list[Seen]) -> None:
        ids = [s.command_id for s in small_seen]
        assert len(set(ids)) == len(ids)

    def test_every_channel_and_registry_command_appears(self, small_seen: list[Seen]) -> None:
        commands = {s.command for s in small_seen}
        assert set(INTERACTIONS) <= commands
        assert {
            "customer.register",
            "customer.change_stage",
            "customer.update_profile",
            "customer.grant_consent",
            "customer.withdraw_consent",
            "customer.add_contact",
            "customer.verify_contact",
            "customer.link_contact_person",
            "customer.merge",
            "customer.unmerge",
        } <= commands
        assert "customer.forget" not in commands

    def test_lines_are_in_business_time_order(self, small_seen: list[Seen]) -> None:
        times = [s.data.occurred_at for s in small_seen]
        assert times == sorted(times)

    def test_the_history_spans_the_configured_years(self, small_seen: list[Seen]) -> None:
        start = stamp(SMALL.start.timestamp())
        first, last = small_seen[0].data.occurred_at, small_seen[-1].data.occurred_at
        assert start <= first <= stamp((SMALL.start + timedelta(days=30)).timestamp())
        assert stamp((NOW - timedelta(days=1)).timestamp()) <= last <= stamp(NOW.timestamp())

    def test_every_reference_is_registered_first_and_merged_ids_fall_silent(
        self, small_seen: list[Seen]
    ) -> None:
        registered: set[str] = set()
        merged: set[str] = set()
        for s in small_seen:
            d = s.data
            if s.command == "customer.register":
                assert d.customer_id not in registered
                registered.add(d.customer_id or "")
                continue
            refs = [d.customer_id, d.organisation_id, d.person_id, d.survivor_id, d.merged_id]
            assert all(r in registered for r in refs if r is not None), s
            if s.command == "customer.merge":
                merged.add(d.merged_id or "")
            elif s.command == "customer.unmerge":
                merged.remove(d.merged_id or "")
            else:
                assert not merged & {d.customer_id, d.organisation_id, d.person_id}, s

    def test_duplicates_are_misspelt_and_merged_into_the_real_customer(
        self, small_seen: list[Seen]
    ) -> None:
        people = population(SMALL)
        duplicates = [c for c in people if c.duplicate is not None]
        assert 1 <= len(duplicates) <= 0.05 * len(people)
        merges = {
            (s.data.survivor_id, s.data.merged_id)
            for s in small_seen
            if s.command == "customer.merge"
        }
        for c in duplicates:
            dup = c.duplicate
            assert dup is not None
            assert (dup.name, dup.email) != (c.name, c.email) and dup.email != c.email
            if dup.merged_at is not None:
                assert (str(c.customer_id), str(dup.customer_id)) in merges

    def test_stage_lines_follow_the_latent_lifecycle(self, small_seen: list[Seen]) -> None:
        stages: dict[str, list[str]] = defaultdict(list)
        for s in small_seen:
            if s.command == "customer.change_stage":
                stages[s.data.customer_id or ""].append(s.data.stage or "")
        for c in population(SMALL):
            assert stages.get(str(c.customer_id), []) == [x.stage for x in c.stages]

    def test_calls_and_meetings_keep_office_hours(self, small: list[bytes]) -> None:
        for raw in small:
            line = parse_line(raw)
            command = parse_command(line.command, line.data)
            if line.command in ("interaction.log_call", "interaction.log_meeting"):
                assert isinstance(command, LogInteraction) and command.occurred_at is not None
                at = command.occurred_at
                assert at.weekday() != 6 and 8 <= at.hour < 19, raw

    def test_the_doc_quotes_the_models_tables(self) -> None:
        doc = DOC.read_text()
        for name, table in tables().items():
            assert table in doc, f"docs/demo-model.md: table {name} differs from the model"


class TestDefault:
    def test_the_default_config_yields_over_200_000_lines(
        self, default: tuple[list[LatentCustomer], list[Seen]]
    ) -> None:
        _, seen = default
        assert len(seen) >= 200_000
        assert {INTERACTIONS[s.command] for s in seen if s.command in INTERACTIONS} == set(CHANNELS)


class TestLatentEffects:
    def test_phone_loyalists_call_more_than_digital_natives(
        self, default: tuple[list[LatentCustomer], list[Seen]]
    ) -> None:
        people, seen = default
        counts = per_customer(seen)
        phone = rate(counts, segment(people, "phone_loyalists"), "call")
        digital = rate(counts, segment(people, "digital_natives"), "call")
        assert phone > 5 * digital
        assert rate(counts, segment(people, "digital_natives"), "web") > 5 * rate(
            counts, segment(people, "phone_loyalists"), "web"
        )

    @pytest.mark.parametrize("name", ["phone_loyalists", "bargain_hunters"])
    def test_older_customers_call_more_and_browse_less_within_a_segment(
        self, default: tuple[list[LatentCustomer], list[Seen]], name: str
    ) -> None:
        people, seen = default
        counts = per_customer(seen)
        by_age = sorted(segment(people, name), key=lambda c: c.age(NOW.date()) or 0)
        younger, older = by_age[: len(by_age) // 2], by_age[len(by_age) // 2 :]
        assert rate(counts, older, "call") > 1.15 * rate(counts, younger, "call")
        assert rate(counts, older, "web") < 0.9 * rate(counts, younger, "web")

    @pytest.mark.parametrize("name", ["phone_loyalists", "business_accounts"])
    def test_high_income_customers_meet_us_more_within_a_segment(
        self, default: tuple[list[LatentCustomer], list[Seen]], name: str
    ) -> None:
        people, seen = default
        counts = per_customer(seen)
        group = segment(people, name)
        high = [c for c in group if c.income_band == "high"]
        low = [c for c in group if c.income_band == "low"]
        assert rate(counts, high, "meeting") > 1.5 * rate(counts, low, "meeting")

    def test_december_is_busier_than_august_per_active_customer(
        self, default: tuple[list[LatentCustomer], list[Seen]]
    ) -> None:
        people, seen = default
        volume = Counter(s.data.occurred_at[5:7] for s in seen if s.command in INTERACTIONS)
        exposure: Counter[str] = Counter()  # customer-days per month of the year
        day = datetime(NOW.year - 3, 1, 1, tzinfo=UTC)
        joined = sorted(c.joined for c in people)
        while day < NOW:
            exposure[f"{day.month:02d}"] += bisect(joined, day)
            day += timedelta(days=1)
        december = volume["12"] / exposure["12"]
        august = volume["08"] / exposure["08"]
        assert december > 1.5 * august

    def test_satisfaction_shows_in_scores_and_churn(
        self, default: tuple[list[LatentCustomer], list[Seen]]
    ) -> None:
        people, seen = default
        satisfaction = {str(c.customer_id): c.satisfaction for c in people}
        scores = [
            (satisfaction[s.data.customer_id or ""], int(s.data.answers[0]["answer"]))
            for s in seen
            if s.data.questionnaire == "nps" and s.data.customer_id in satisfaction
        ]
        happy = mean(score for sat, score in scores if sat > 0.7)
        unhappy = mean(score for sat, score in scores if sat < 0.4)
        assert happy > unhappy + 3
        converted = [c for c in people if c.stages and c.stages[-1].stage != "prospect"]
        churned = [c.satisfaction for c in converted if c.stages[-1].stage == "former_customer"]
        staying = [c.satisfaction for c in converted if c.stages[-1].stage == "customer"]
        assert mean(churned) < mean(staying) - 0.05
