"""Service in the demo history (docs/demo-model.md, "Service"): deterministic, valid for the
domain's invariants, and showing the documented effects, measured from the emitted lines and
the population (the truth), never against hard-coded counts.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from statistics import mean
from typing import Any

import msgspec
import pytest

from domain.commands import Command
from domain.tickets.sla import DEFAULT_POLICIES
from handlers import customers, orders, service  # noqa: F401  (they register the commands)
from handlers.decision import CommandContext
from handlers.deps import new_id
from handlers.parsing import parse_command, parse_line
from infra.history import HistoryConfig, LatentCustomer, history, population
from infra.history import service as sv

NOW = datetime(2026, 5, 1, 12, tzinfo=UTC)
SMALL = HistoryConfig(now=NOW, customers=200, years=1.5, seed=11)
DEFAULT = HistoryConfig(now=NOW)
DOC = Path(__file__).parents[2] / "docs" / "demo-model.md"
SERVICE = (b'{"command":"equipment.', b'{"command":"ticket.', b'{"command":"survey.')
DAY = 86_400.0
WINDOW = sv.EFFECT_DAYS * DAY


class Seen(msgspec.Struct):
    command: str
    data: dict[str, Any]
    command_id: str
    actor: str | None = None


_seen = msgspec.json.Decoder(Seen)


def epoch(stamp: str) -> float:
    return datetime.fromisoformat(stamp).timestamp()


@dataclass
class Machine:
    customer: str
    model: str
    installed: float
    every_days: int = 0
    failures: list[float] = field(default_factory=list)
    maintenances: list[float] = field(default_factory=list)
    readings: list[tuple[float, float]] = field(default_factory=list)
    retired: float | None = None


@dataclass
class Ticket:
    customer: str
    severity: str
    opened: float
    steps: list[tuple[float, str, dict[str, Any]]] = field(default_factory=list)


@dataclass
class Survey:
    customer: str
    kind: str
    trigger: str
    sent: float
    agent: str | None
    score: int | None = None


@dataclass
class Service:
    """What the service lines say, checked for the domain's invariants as it goes."""

    machines: dict[str, Machine] = field(default_factory=dict)
    tickets: dict[str, Ticket] = field(default_factory=dict)
    surveys: dict[str, Survey] = field(default_factory=dict)
    returns: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    commands: Counter[str] = field(default_factory=Counter)

    @classmethod
    def of(cls, lines: Iterable[bytes]) -> Service:
        out, registered, merged = cls(), set(), set()
        buyer: dict[str, str] = {}
        for raw in lines:
            s = _seen.decode(raw)
            d = s.data
            if s.command == "customer.register":
                registered.add(d["customer_id"])
            elif s.command == "customer.merge":
                merged.add(d["merged_id"])
            elif s.command == "customer.unmerge":
                merged.discard(d["merged_id"])
            elif s.command in {"order.place", "deal.open"}:
                buyer[d.get("order_id") or d["deal_id"]] = d["customer_id"]
            elif s.command == "deal.win":
                buyer[d["order_id"]] = buyer[d["deal_id"]]
            elif s.command == "order.return":
                out.returns[buyer[d["order_id"]]].append(epoch(d["occurred_at"]))
            elif raw.startswith(SERVICE):
                if "customer_id" in d:  # a live customer, registered before
                    assert d["customer_id"] in registered and d["customer_id"] not in merged, s
                out.add(s)
        return out

    def add(self, s: Seen) -> None:
        d, command, t = s.data, s.command, epoch(s.data["occurred_at"])
        self.commands[command] += 1
        if command == "equipment.register":
            assert d["equipment_id"] not in self.machines
            assert d["installed_at"] == d["occurred_at"]
            self.machines[d["equipment_id"]] = Machine(d["customer_id"], d["model"], t)
        elif command.startswith("equipment."):
            machine = self.machines[d["equipment_id"]]
            assert machine.retired is None, "nothing after retirement"
            if command == "equipment.set_maintenance_plan":
                machine.every_days = d["every_days"]
            elif command == "equipment.record_usage":
                machine.readings.append((t, d["reading"]))
            elif command == "equipment.record_maintenance":
                assert s.actor in sv.TECHNICIANS
                machine.maintenances.append(t)
            elif command == "equipment.report_breakdown":
                machine.failures.append(t)
                ticket_id = str(new_id(CommandContext(command_id=s.command_id), "ticket"))
                self.tickets[ticket_id] = Ticket(machine.customer, "high", t)
            elif command == "equipment.retire":
                machine.retired = t
        elif command == "ticket.open":
            assert d["ticket_id"] not in self.tickets
            self.tickets[d["ticket_id"]] = Ticket(d["customer_id"], d["severity"], t)
        elif command.startswith("ticket."):
            self.tickets[d["ticket_id"]].steps.append((t, command, d))
        elif command == "survey.send":
            survey = Survey(d["customer_id"], d["kind"], d["trigger"], t, d.get("agent"))
            self.surveys[d["survey_id"]] = survey
        elif command == "survey.answer":
            survey = self.surveys[d["survey_id"]]
            assert survey.score is None and survey.sent <= t
            survey.score = d["score"]

    def first(self, ticket: Ticket, command: str) -> float | None:
        return next((t for t, c, _ in ticket.steps if c == command), None)


@pytest.fixture(scope="module")
def small() -> list[bytes]:
    return list(history(SMALL))


@pytest.fixture(scope="module")
def small_service(small: list[bytes]) -> Service:
    return Service.of(small)


@pytest.fixture(scope="module")
def default() -> tuple[dict[str, LatentCustomer], Service]:
    people = {str(c.customer_id): c for c in population(DEFAULT)}
    return people, Service.of(history(DEFAULT))


class TestDeterminism:
    def test_the_same_config_gives_the_same_service_lines(self, small: list[bytes]) -> None:
        again = [x for x in history(SMALL) if x.startswith(SERVICE)]
        assert again == [x for x in small if x.startswith(SERVICE)]
        assert len(again) > 500

    def test_another_seed_gives_other_service_lines(self, small: list[bytes]) -> None:
        other = HistoryConfig(now=NOW, customers=200, years=1.5, seed=12)
        mine = [x for x in small if x.startswith(SERVICE)]
        assert [x for x in history(other) if x.startswith(SERVICE)] != mine

    def test_the_rest_of_the_history_is_the_same_without_service(
        self, small: list[bytes], monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setattr(sv, "timed_lines", lambda config, people, facts: [])
        assert list(history(SMALL)) == [x for x in small if not x.startswith(SERVICE)]


class TestLines:
    def test_every_service_line_parses_into_a_typed_command(self, small: list[bytes]) -> None:
        ids = set()
        for raw in small:
            if raw.startswith(SERVICE):
                line = parse_line(raw)
                assert isinstance(parse_command(line.command, line.data), Command)
                assert line.command_id not in ids
                ids.add(line.command_id)

    def test_every_service_command_appears(self, small_service: Service) -> None:
        assert {
            "equipment.register",
            "equipment.set_maintenance_plan",
            "equipment.record_usage",
            "equipment.record_maintenance",
            "equipment.report_breakdown",
            "ticket.open",
            "ticket.assign",
            "ticket.respond",
            "ticket.escalate",
            "ticket.resolve",
            "ticket.reopen",
            "ticket.close",
            "survey.send",
            "survey.answer",
        } <= set(small_service.commands)

    def test_readings_never_go_backwards_and_follow_the_installation(
        self, small_service: Service
    ) -> None:
        for machine in small_service.machines.values():
            values = [v for _, v in machine.readings]
            assert values == sorted(values)
            assert all(t > machine.installed for t, _ in machine.readings)

    def test_every_ticket_step_follows_the_domains_rules(self, small_service: Service) -> None:
        """Opened (by a line or by its breakdown) before any step, in time order; closed only
        when resolved, nothing after closing; reopened only when resolved; never escalated
        once resolved."""
        assert small_service.tickets
        for ticket in small_service.tickets.values():
            times = [t for t, _, _ in ticket.steps]
            assert times == sorted(times) and (not times or times[0] >= ticket.opened)
            resolved = closed = False
            for _, command, _ in ticket.steps:
                assert not closed
                if command == "ticket.resolve":
                    assert not resolved
                    resolved = True
                elif command == "ticket.reopen":
                    assert resolved
                    resolved = False
                elif command == "ticket.escalate":
                    assert not resolved
                elif command == "ticket.close":
                    assert resolved
                    closed = True

    def test_every_breakdown_opens_its_ticket(self, small_service: Service) -> None:
        """The ticket named by the id the handler derives from the breakdown's command is
        worked on (assigned) and never opened by a line of its own."""
        failures = sum(len(m.failures) for m in small_service.machines.values())
        assert failures > 0
        assert small_service.commands["ticket.open"] + failures == len(small_service.tickets)
        for ticket in small_service.tickets.values():
            assert small_service.first(ticket, "ticket.assign") is not None

    def test_scores_are_in_range(self, small_service: Service) -> None:
        scores = {"nps": Counter[int](), "csat": Counter[int]()}
        for s in small_service.surveys.values():
            if s.score is not None:
                scores[s.kind][s.score] += 1
        assert set(scores["nps"]) <= set(range(11)) and len(scores["nps"]) > 5
        assert set(scores["csat"]) <= set(range(1, 6)) and len(scores["csat"]) > 2

    def test_csat_follows_a_closed_ticket_and_names_its_agent(self, small_service: Service) -> None:
        agents = {*sv.AGENTS, sv.TEAM_LEAD}
        for s in small_service.surveys.values():
            assert (s.kind == "csat") == (s.trigger == "after_ticket")
            if s.kind == "csat":
                assert s.agent in agents

    def test_the_doc_quotes_the_service_tables(self) -> None:
        doc = DOC.read_text()
        for name, table in sv.tables().items():
            assert table in doc, f"docs/demo-model.md: service table {name} differs from the code"


def rate(machines: Iterable[Machine]) -> float:
    """Breakdowns per machine-year in service."""
    machines = list(machines)
    years = sum(((m.retired or NOW.timestamp()) - m.installed) / DAY / 365.25 for m in machines)
    return sum(len(m.failures) for m in machines) / years


class TestEffects:
    def test_the_old_capsule_machine_breaks_down_far_more(
        self, default: tuple[dict[str, LatentCustomer], Service]
    ) -> None:
        _, seen = default
        old = rate(m for m in seen.machines.values() if m.model == "M-CAPS-0")
        others = rate(m for m in seen.machines.values() if m.model != "M-CAPS-0")
        assert old > 4 * others

    def test_machines_past_their_maintenance_break_down_more(
        self, default: tuple[dict[str, LatentCustomer], Service]
    ) -> None:
        """Time split by whether the last maintenance (or installation) is more than the plan's
        days + 14 ago: breakdowns per year in each part."""
        _, seen = default
        end = NOW.timestamp()
        parts = {True: [0, 0.0], False: [0, 0.0]}
        for m in seen.machines.values():
            marks = sorted([(t, "m") for t in m.maintenances] + [(t, "f") for t in m.failures])
            last = cur = m.installed
            for t, kind in [*marks, (m.retired or end, "end")]:
                limit = last + (m.every_days + 14) * DAY
                parts[False][1] += max(0.0, min(t, limit) - cur)
                parts[True][1] += max(0.0, t - max(cur, limit))
                if kind == "f":
                    parts[t > limit][0] += 1
                last = t if kind == "m" else last
                cur = t
        overdue, kept = (parts[k][0] / parts[k][1] for k in (True, False))
        assert overdue > 1.5 * kept

    def test_the_slow_agent_breaches_the_sla_far_more_often(
        self, default: tuple[dict[str, LatentCustomer], Service]
    ) -> None:
        _, seen = default
        breached: dict[str, list[bool]] = defaultdict(list)
        for ticket in seen.tickets.values():
            assign = next(d for _, c, d in ticket.steps if c == "ticket.assign")
            responded = seen.first(ticket, "ticket.respond")
            due = DEFAULT_POLICIES[ticket.severity].first_response.total_seconds()  # type: ignore[index]
            if responded is not None:
                breached[assign["agent"]].append(responded - ticket.opened >= due)
        share = {agent: mean(b) for agent, b in breached.items()}
        assert share["employee:lukas.wolf"] > 2 * share["employee:paul.fischer"]
        assert share["employee:paul.fischer"] > 2 * share["employee:mia.schneider"]

    def test_a_recent_breakdown_lowers_nps(
        self, default: tuple[dict[str, LatentCustomer], Service]
    ) -> None:
        """Against the model's expectation 10 s (the truth), so segment mix does not speak."""
        people, seen = default
        broke: dict[str, list[float]] = defaultdict(list)
        for m in seen.machines.values():
            broke[m.customer] += m.failures
        gaps: dict[bool, list[float]] = {True: [], False: []}
        returned: dict[bool, list[float]] = {True: [], False: []}
        for s in seen.surveys.values():
            if s.kind == "nps" and s.score is not None:
                gap = s.score - 10 * people[s.customer].satisfaction
                gaps[any(s.sent - WINDOW < t <= s.sent for t in broke[s.customer])].append(gap)
                recent = any(s.sent - WINDOW < t <= s.sent for t in seen.returns[s.customer])
                returned[recent].append(gap)
        assert len(gaps[True]) >= 15
        assert mean(gaps[True]) < mean(gaps[False]) - 1.2
        assert mean(returned[True]) < mean(returned[False]) - 0.4

    def test_bargain_hunters_answer_more_surveys(
        self, default: tuple[dict[str, LatentCustomer], Service]
    ) -> None:
        people, seen = default
        answered: dict[str, list[bool]] = defaultdict(list)
        for s in seen.surveys.values():
            answered[people[s.customer].segment].append(s.score is not None)
        assert mean(answered["bargain_hunters"]) > 1.3 * mean(answered["phone_loyalists"])
        assert mean(answered["phone_loyalists"]) > 1.5 * mean(answered["dormant"])
