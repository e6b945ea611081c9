"""Service in the demo history: equipment, tickets and surveys, drawn from the latent model
(docs/demo-model.md, "Service").

Every machine a customer keeps (delivered, not returned) is registered as equipment with a
maintenance plan; it is used at the customer's daily rate (its counter read about monthly),
maintained by a technician unless the customer skips it, and breaks down with a hazard that
grows with wear and with overdue maintenance (M-CAPS-0, the retired capsule machine with the
leaking water tank, far more often). A breakdown opens its incident ticket; returns and late
deliveries bring complaints, customers send requests. Agents of different speed answer and
resolve them, some past their SLA. Surveys (NPS after some deliveries and twice a year, CSAT
after a ticket) are answered by segment; the score follows the latent satisfaction, lowered by
breakdowns, SLA breaches and returns in the 90 days before.

Customer i draws from `random.Random(f"{seed}/service/{i}")`, from what commerce recorded for
it, so the rest of the history is the same with or without service. Every stream (equipment,
ticket, survey) is built whole, in time order, and cut at `now`.
"""

from __future__ import annotations

import math
import random
from bisect import bisect
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, NamedTuple, cast

import msgspec

from domain.tickets.events import Severity
from domain.tickets.sla import DEFAULT_POLICIES
from handlers.decision import CommandContext
from handlers.deps import new_id
from infra.history import generate as g
from infra.history import model as m
from infra.history import names
from infra.history.catalogue import BY_SKU
from infra.history.model import DAY, MONTH, HistoryConfig, LatentCustomer

_encode = msgspec.json.Encoder().encode
YEAR = 365.25 * DAY
HOUR = 3600.0
# (business time, command, data, actor or None, command id or None: drawn at emit)
Event = tuple[float, str, dict[str, Any], str | None, str | None]


class Model(NamedTuple):
    """A machine as equipment. `counter`: it counts cups, so usage is read and planned by."""

    counter: bool
    life_cups: float | None
    life_years: float
    every_days: int
    every_cups: float | None
    failures: float  # breakdowns per year when new and maintained
    codes: dict[str, float]  # failure code -> weight


MODELS: dict[str, Model] = {
    "M-FILTER-1": Model(False, None, 5, 180, None, 0.08, {"E-HEATER": 0.6, "E-SWITCH": 0.4}),
    "M-PAD-1": Model(False, None, 5, 180, None, 0.10, {"E-PUMP": 0.5, "E-HEATER": 0.5}),
    "M-CAPS-0": Model(True, 4000, 4, 120, 800, 1.2, {"W-LEAK": 0.8, "E-PUMP": 0.2}),
    "M-CAPS-1": Model(True, 6000, 5, 120, 1000, 0.10, {"E-PUMP": 0.6, "E-HEATER": 0.4}),
    "M-CAPS-2": Model(True, 8000, 6, 120, 1200, 0.09, {"E-PUMP": 0.6, "E-HEATER": 0.4}),
    "M-ESP-1": Model(
        True, 10_000, 8, 90, 1000, 0.12, {"E-PUMP": 0.4, "E-GASKET": 0.4, "E-HEATER": 0.2}
    ),
    "M-BTC-1": Model(
        True, 15_000, 7, 90, 1500, 0.15, {"E-GRINDER": 0.4, "E-BREWUNIT": 0.4, "E-PUMP": 0.2}
    ),
    "M-BTC-2": Model(
        True, 20_000, 8, 90, 2000, 0.12, {"E-GRINDER": 0.4, "E-BREWUNIT": 0.4, "E-PUMP": 0.2}
    ),
    "M-OFFICE-1": Model(
        True,
        150_000,
        6,
        60,
        8000,
        0.30,
        {"E-GRINDER": 0.3, "E-BREWUNIT": 0.3, "E-MILK": 0.2, "E-PUMP": 0.2},
    ),
}
FAILURES = {
    "E-HEATER": "The water does not get hot.",
    "E-SWITCH": "The machine does not switch on.",
    "E-PUMP": "The pump hums but no water comes through.",
    "W-LEAK": "Water leaks from the tank onto the counter.",
    "E-GASKET": "Water drips from the brew head.",
    "E-GRINDER": "The grinder jams.",
    "E-BREWUNIT": "The brewing unit is stuck.",
    "E-MILK": "The milk system is blocked.",
}
# Hazard per day = failures / 365 x (1 + WEAR_EFFECT x wear) x (OVERDUE_EFFECT while overdue),
# wear = the larger of cups / expected cups and age / expected years (1 at the end of life).
WEAR_EFFECT = 2.0
OVERDUE_EFFECT = 2.5
WARRANTY_YEARS = 2
EXTENDED_WARRANTY = {"S-WARRANTY-2": 2, "S-WARRANTY-3": 3}  # years added when bought with it
INSTALL_DAYS = 3.0  # installed 0-3 days after delivery (working hours)


class Habit(NamedTuple):
    """How a segment uses its machines and answers surveys."""

    cups: float  # per machine and day, x (0.5 + 0.5 x activity)
    skips: float  # P(the customer skips maintenance)
    answers: float  # P(a survey is answered)


HABITS: dict[str, Habit] = {
    "digital_natives": Habit(2.0, 0.35, 0.30),
    "phone_loyalists": Habit(3.0, 0.15, 0.30),
    "bargain_hunters": Habit(2.5, 0.50, 0.50),
    "premium_advisory": Habit(3.5, 0.10, 0.35),
    "dormant": Habit(1.0, 0.50, 0.10),
    "business_accounts": Habit(40.0, 0.20, 0.25),
}
MAINTAINED = (0.95, 0.2)  # P(a due maintenance is done): diligent customer, skipper
MAINTENANCE_DELAY_DAYS = 10.0  # done up to this long after it is due
REPAIR_RETIRE = 0.5  # P(retired at a breakdown when worn out (wear >= 1) or the 3rd+ failure)
USAGE_BLOCK_DAYS = 30.0  # usage varies x U(0.7, 1.3) from block to block
READING_SKIPPED = 0.15  # a monthly reading not sent
READING_LATE = (0.15, 7.0, 21.0)  # share sent late, by U(7, 21) days; the others Exp(mean 2 d)
TECHNICIANS = ("employee:tobias.braun", "employee:nina.kraus", "employee:felix.lange")


class Agent(NamedTuple):
    share: float  # of tickets
    speed: float  # x the median response and resolution times


AGENTS: dict[str, Agent] = {
    "employee:mia.schneider": Agent(0.3, 0.6),
    "employee:paul.fischer": Agent(0.3, 1.0),
    "employee:emma.meyer": Agent(0.25, 1.0),
    "employee:lukas.wolf": Agent(0.15, 2.0),
}
TEAM_LEAD = "employee:sarah.klein"  # takes over escalated tickets
# Median hours from opening, at speed 1, log-normal (sigma below).
FIRST_RESPONSE_HOURS = {"critical": 0.5, "high": 2.0, "normal": 4.0, "low": 10.0}
RESOLUTION_HOURS = {"critical": 4.0, "high": 12.0, "normal": 36.0, "low": 72.0}
RESPONSE_SIGMA = 0.8
RESOLUTION_SIGMA = 0.7
ESCALATE = 0.5  # of tickets still unresolved at their resolution SLA: escalated then
REOPEN = {"complaint": 0.10, "request": 0.04, "incident": 0.06}
CLOSE_AFTER_DAYS = 3.0  # a resolved ticket is closed this long after, unless reopened
SEVERITY = {
    "complaint": {"low": 0.1, "normal": 0.6, "high": 0.25, "critical": 0.05},
    "request": {"low": 0.6, "normal": 0.4},
    "incident": {"high": 1.0},  # the breakdown's handler opens it as high
}
TICKET_CHANNELS = {"email": 0.45, "call": 0.35, "web": 0.15, "chat": 0.05}
# Complaints: after a return with P = a + b (1 - s); after a delivery later than LATE_DAYS
# after shipping with P = LATE_COMPLAINT x (1 - s). A returned machine "defective": severity high.
RETURN_COMPLAINT = (0.2, 0.4)
LATE_DAYS = 3.5
LATE_COMPLAINT = 0.4
REQUESTS = 0.03  # per month x activity, while a customer
REQUEST_TOPICS = {
    "billing": ("Question about my invoice", "Please change my payment method"),
    "product question": ("Which coffee fits my machine?", "Question about a product"),
    "account": ("Please update my address", "I cannot log in to my account"),
    "maintenance": ("Appointment for a maintenance visit", "How do I descale my machine?"),
}
# Surveys: NPS after AFTER_DELIVERY of the deliveries (2 days later) and in the periodic waves
# (PERIODIC_SHARE of the customers in stage `customer`), CSAT an hour after a ticket closes.
AFTER_DELIVERY = 0.2
PERIODIC = ((3, 15), (9, 15))  # (month, day), 09:00-11:00 UTC
PERIODIC_SHARE = 0.4
ANSWER_MEAN_DAYS = 1.0
COMMENT = 0.25
# Score = latent + effect of each exposure in the EFFECT_DAYS before the survey is sent, then
# rounded and clipped; NPS latent 10 s + N(0, 1.2), CSAT 1 + 4 s + N(0, 0.6).
EFFECT_DAYS = 90
EFFECTS = {"breakdown": (-2.0, -0.5), "sla_breach": (-1.5, -1.0), "return": (-1.0, -0.3)}
NPS_NOISE = 1.2
CSAT_NOISE = 0.6
RESPONSES = (
    "Thank you for letting us know. We are looking into it and will get back to you.",
    "Sorry for the trouble. A colleague is on it; we will keep you posted.",
    "Thanks for your message. Could you send us a photo and your order number?",
)
RESOLUTIONS = {
    "complaint": ("Refund confirmed and voucher sent.", "Replacement sent, apology given."),
    "request": ("Answered and done.", "Changed as requested."),
    "incident": ("Repaired on site by our technician.", "Part replaced, machine works again."),
}
RETIRED_RESOLUTION = "Machine beyond economic repair: retired, replacement offered."
REOPEN_REASONS = ("The problem is back.", "The refund has not arrived.", "Still not working.")
BAD_MACHINE = ("The machine broke down, again.", "Leaking machine, not happy.")

_OFFICE = g.PATTERNS["call"]
_DAYTIME = g.PATTERNS["email"]
_HOME = g.PATTERNS["web"]


class _Order(NamedTuple):
    order_id: str
    items: list[tuple[str, int]]
    shipped: float | None
    delivered: float | None
    returns: list[tuple[float, dict[str, int], str]]  # (at, sku -> units, reason)


class _Ticket(NamedTuple):
    ticket_id: str
    group: list[list[Event]]
    closed: float | None
    agent: str


def timed_lines(
    config: HistoryConfig, people: Sequence[LatentCustomer], facts: dict[int, list[Any]]
) -> list[tuple[float, bytes]]:
    """(business time, line) of every customer's equipment, tickets and surveys; `facts` are
    the commerce events each customer's orders emitted (by customer index)."""
    out: list[tuple[float, bytes]] = []
    waves = _waves(config)
    for c in people:
        _Desk(c, config, facts.get(c.index, []), waves, out).run()
    return out


def _waves(config: HistoryConfig) -> list[float]:
    """Starts of the periodic survey waves within the history."""
    out = []
    for year in range(config.start.year, config.now.year + 1):
        for month, day in PERIODIC:
            t = datetime(year, month, day, 9, tzinfo=UTC).timestamp()
            if config.start.timestamp() <= t < config.now.timestamp():
                out.append(t)
    return out


def _orders(facts: list[Any]) -> list[_Order]:
    """The customer's orders as commerce emitted them (already cut at `now`)."""
    items: dict[str, list[tuple[str, int]]] = {}
    shipped: dict[str, float] = {}
    delivered: dict[str, float] = {}
    returns: dict[str, list[tuple[float, dict[str, int], str]]] = {}
    for t, command, data in facts:
        order_id = data["order_id"]
        if command in {"order.place", "deal.win"}:
            items[order_id] = [(i["sku"], i["quantity"]) for i in data["items"]]
        elif command == "order.ship":
            shipped[order_id] = t
        elif command == "order.deliver":
            delivered[order_id] = t
        elif command == "order.return":
            units = {i["sku"]: i["quantity"] for i in data["items"]}
            returns.setdefault(order_id, []).append((t, units, data["reason"]))
    return [
        _Order(o, lines, shipped.get(o), delivered.get(o), returns.get(o, []))
        for o, lines in items.items()
    ]


def _cum(weights: dict[str, float]) -> tuple[tuple[str, ...], tuple[float, ...]]:
    total, cum = 0.0, []
    for w in weights.values():
        total += w
        cum.append(total)
    return tuple(weights), tuple(cum)


_AGENTS = _cum({a: x.share for a, x in AGENTS.items()})
_CHANNELS = _cum(TICKET_CHANNELS)
_SEVERITY = {k: _cum(v) for k, v in SEVERITY.items()}
_CODES = {sku: _cum(x.codes) for sku, x in MODELS.items()}
_TOPICS = tuple(REQUEST_TOPICS)


class _Usage:
    """Cumulative cups from installation: `rate` per day, x U(0.7, 1.3) per 30-day block."""

    def __init__(self, rng: random.Random, installed: float, end: float, rate: float) -> None:
        self.installed, self.block = installed, USAGE_BLOCK_DAYS * DAY
        n = int((end - installed) / self.block) + 2
        self.rates = [rate * rng.uniform(0.7, 1.3) / DAY for _ in range(n)]
        self.cum = [0.0]
        for r in self.rates[:-1]:
            self.cum.append(self.cum[-1] + r * self.block)

    def at(self, t: float) -> float:
        k = min(max(0, int((t - self.installed) // self.block)), len(self.rates) - 1)
        return self.cum[k] + self.rates[k] * (t - self.installed - k * self.block)

    def when(self, cups: float) -> float:
        """When the counter reaches `cups` (inf past the blocks drawn)."""
        k = bisect(self.cum, cups) - 1
        if k >= len(self.rates) - 1 and self.rates[-1] * self.block < cups - self.cum[-1]:
            return math.inf
        return self.installed + k * self.block + (cups - self.cum[k]) / self.rates[k]


class _Life(NamedTuple):
    """A machine's model, installation and usage: its wear, plan and breakdown hazard."""

    model: Model
    installed: float
    usage: _Usage

    def wear(self, t: float) -> float:
        """The larger of age / expected years and cups / expected cups."""
        wear = (t - self.installed) / (self.model.life_years * YEAR)
        if self.model.life_cups:
            wear = max(wear, self.usage.at(t) / self.model.life_cups)
        return wear

    def due(self, base: float) -> float:
        """When the plan asks for maintenance after one at `base`."""
        by_days = base + self.model.every_days * DAY
        if self.model.every_cups is None:
            return by_days
        return min(by_days, self.usage.when(self.usage.at(base) + self.model.every_cups))

    def hazard(self, t: float, overdue: bool) -> float:
        """Breakdowns per second at `t`."""
        boost = (1 + WEAR_EFFECT * self.wear(t)) * (OVERDUE_EFFECT if overdue else 1)
        return self.model.failures / YEAR * boost

    def breakdown(self, rng: random.Random, a: float, b: float, overdue: bool) -> float | None:
        """The first breakdown in [a, b), by thinning (the hazard only grows until `b`)."""
        peak, t = self.hazard(b, overdue), a
        while True:
            t += rng.expovariate(peak)
            if t >= b:
                return None
            if rng.random() * peak < self.hazard(t, overdue):
                return t


class _Desk:
    """The service of one customer, with the customer's own service RNG."""

    def __init__(
        self,
        c: LatentCustomer,
        config: HistoryConfig,
        facts: list[Any],
        waves: list[float],
        out: list[tuple[float, bytes]],
    ) -> None:
        self.c, self.out, self.waves = c, out, waves
        self.rng = random.Random(f"{config.seed}/service/{c.index}")
        self.ids = names.UuidSequence(self.rng)
        self.end = config.now.timestamp()
        self.cid = str(c.customer_id)
        fm = c.false_merge
        self.blocked = (
            (fm.merged_at.timestamp() - 60, fm.unmerged_at.timestamp() + 60) if fm else None
        )
        self.orders = _orders(facts)
        self.habit = HABITS[c.segment]
        self.groups: list[list[list[Event]]] = []
        self.tickets: list[_Ticket] = []
        self.breakdowns: list[float] = []
        self.breaches: list[float] = []
        self.returned: list[float] = [t for o in self.orders for t, _, _ in o.returns]
        self.skipper = self.rng.random() < self.habit.skips

    # -- plumbing -------------------------------------------------------------------------

    def emit(self, group: list[list[Event]]) -> None:
        """Streams that belong together (equipment and its incident tickets, a ticket and its
        survey), each in time order, cut at `now`; none if one touches the time the customer
        is wrongly merged away."""
        kept = []
        for events in group:
            events.sort(key=lambda e: e[0])
            kept.append([e for e in events if e[0] < self.end])
        if self.blocked is not None:
            lo, hi = self.blocked
            if any(lo <= e[0] <= hi for events in kept for e in events):
                return
        for events in kept:
            for t, command, data, actor, command_id in events:
                data["occurred_at"] = g.stamp(t)
                line: dict[str, Any] = {
                    "command": command,
                    "data": data,
                    "command_id": command_id or self.ids.next(),
                }
                if actor:
                    line["actor"] = actor
                self.out.append((t, _encode(line) + b"\n"))

    def uuid(self) -> str:
        return str(m._uuid(self.rng))

    def pick(self, options: tuple[tuple[str, ...], tuple[float, ...]]) -> str:
        return g._weighted(self.rng, *options)

    def at_work(self, a: float, days: float) -> float:
        t = g.place(self.rng, _OFFICE, a, a + days * DAY)
        return a + HOUR if t is None else t

    def spans(self) -> list[tuple[float, float]]:
        """When the customer is in stage `customer`."""
        out, since = [], None
        for s in self.c.stages:
            if s.stage == "customer":
                since = s.at.timestamp()
            elif s.stage == "former_customer" and since is not None:
                out.append((since, s.at.timestamp()))
                since = None
        if since is not None:
            out.append((since, self.end))
        return out

    # -- equipment ------------------------------------------------------------------------

    def equipment(self) -> None:
        """Each machine unit delivered and not returned, in delivery order."""
        units = []
        for o in self.orders:
            if o.delivered is None:
                continue
            returned: dict[str, int] = {}
            for _, r, _ in o.returns:
                for sku, q in r.items():
                    returned[sku] = returned.get(sku, 0) + q
            extra = max((EXTENDED_WARRANTY.get(s, 0) for s, _ in o.items), default=0)
            for sku, q in o.items:
                if sku in MODELS:
                    units += [(o.delivered, sku, extra)] * (q - returned.get(sku, 0))
        units.sort()
        for delivered, sku, extra in units:
            self.machine(delivered, sku, extra)

    def machine(self, delivered: float, sku: str, extra_years: int) -> None:
        """One machine from its installation: maintenance when due (unless skipped),
        breakdowns by the hazard, each repaired (or the machine retired) at its ticket's
        resolution; its counter read about monthly."""
        rng, model, end = self.rng, MODELS[sku], self.end
        installed = self.at_work(delivered + HOUR, INSTALL_DAYS)
        ref = {"equipment_id": self.uuid()}
        serial = f"{sku[2:].replace('-', '')}-{rng.getrandbits(32):08X}"
        stream = self.register(installed, sku, serial, ref, extra_years)
        group = [stream]
        cups = self.habit.cups * (0.5 + 0.5 * self.c.activity)
        life = _Life(model, installed, _Usage(rng, installed, end, cups))
        diligence = MAINTAINED[1 if self.skipper else 0]
        t, failures, retired = installed + 60, 0, end
        overdue, decide, action = False, life.due(installed), math.inf
        while t < end:
            change = min(decide, action, end)
            broke = life.breakdown(rng, t, change, overdue)
            if broke is not None:
                failures += 1
                self.breakdowns.append(broke)
                retire = (life.wear(broke) >= 1 or failures >= 3) and rng.random() < REPAIR_RETIRE
                t = self.breakdown(broke, sku, ref, group, retire=retire)
                if retire:
                    retired = t
                    reason = {"reason": RETIRED_RESOLUTION}
                    stream.append((t, "equipment.retire", ref | reason, None, None))
                    break
                overdue, decide, action = False, life.due(t), math.inf
                continue
            t = change
            if t >= end:
                break
            if t == action:  # the technician's visit
                kind = {"kind": "service" if model.counter else "descaling"}
                actor = g._one(rng, TECHNICIANS)
                stream.append((t, "equipment.record_maintenance", ref | kind, actor, None))
                overdue, decide, action = False, life.due(t), math.inf
            elif rng.random() < diligence:  # due: an appointment within days
                action = self.at_work(t + rng.uniform(0, MAINTENANCE_DELAY_DAYS) * DAY, 2)
                decide = math.inf
            else:  # skipped: overdue until the next visit; asked again a plan later
                overdue, decide = True, life.due(t)
        if model.counter:
            stream += self.readings(installed, retired, life.usage, ref)
        self.groups.append(group)

    def register(
        self, installed: float, sku: str, serial: str, ref: dict[str, str], extra_years: int
    ) -> list[Event]:
        """The registration (warranty 2 years, more with an extended warranty bought with it)
        and the maintenance plan, a minute later."""
        model = MODELS[sku]
        warranty = datetime.fromtimestamp(installed, UTC) + timedelta(
            days=365.25 * (WARRANTY_YEARS + extra_years)
        )
        register: dict[str, Any] = {
            "customer_id": self.cid,
            "model": sku,
            "serial": serial,
            "installed_at": g.stamp(installed),
            "warranty_end": warranty.date().isoformat(),
            "expected_life_years": model.life_years,
        }
        if model.life_cups:
            register["expected_life_usage"] = model.life_cups
        plan: dict[str, Any] = ref | {"every_days": model.every_days}
        if model.every_cups:
            plan["every_usage"] = model.every_cups
        return [
            (installed, "equipment.register", ref | register, None, None),
            (installed + 60, "equipment.set_maintenance_plan", plan, None, None),
        ]

    def readings(
        self, installed: float, until: float, usage: _Usage, ref: dict[str, str]
    ) -> list[Event]:
        """About monthly; some skipped, some late (the value is the counter when sent)."""
        rng, out = self.rng, []
        late, lo, hi = READING_LATE
        k = 1
        while (t := installed + k * MONTH) < until:
            k += 1
            if rng.random() < READING_SKIPPED:
                continue
            t += (
                rng.uniform(lo, hi) * DAY if rng.random() < late else rng.expovariate(1 / (2 * DAY))
            )
            if t < until:
                reading = ref | {"reading": float(int(usage.at(t)))}
                out.append((t, "equipment.record_usage", reading, None, None))
        return out

    def breakdown(
        self, at: float, sku: str, ref: dict[str, str], group: list[list[Event]], *, retire: bool
    ) -> float:
        """The breakdown line (it opens the incident ticket) on the equipment stream, the first
        of `group`, and the ticket's life; returns when the technician repaired (or retired)
        the machine: ten minutes before the ticket's first resolution."""
        code = self.pick(_CODES[sku])
        command_id = self.ids.next()  # the handler derives the ticket's id from it
        ticket_id = str(new_id(CommandContext(command_id=command_id), "ticket"))
        data = ref | {"failure_code": code, "description": FAILURES[code]}
        group[0].append((at, "equipment.report_breakdown", data, None, command_id))
        _, resolved = self.ticket(
            at, "incident", "high", ticket_id=ticket_id, group=group, retired=retire
        )
        repaired = resolved - 600
        if not retire:
            repair = ref | {"kind": "repair", "notes": f"Repaired: {code}."}
            actor = g._one(self.rng, TECHNICIANS)
            group[0].append((repaired, "equipment.record_maintenance", repair, actor, None))
        return repaired

    # -- tickets --------------------------------------------------------------------------

    def lognormal(self, hours: float, speed: float, sigma: float) -> float:
        return self.rng.lognormvariate(math.log(hours * speed * HOUR), sigma)

    def ticket(
        self,
        opened: float,
        kind: str,
        severity: str,
        *,
        ticket_id: str | None = None,
        group: list[list[Event]] | None = None,
        opening: dict[str, Any] | None = None,
        retired: bool = False,
    ) -> tuple[str, float]:
        """A ticket's life from `opened` (its opening line is `opening`, or the breakdown's):
        assigned, answered, maybe escalated, resolved, maybe reopened, closed. Returns its id
        and when it was first resolved."""
        rng = self.rng
        ticket_id = ticket_id or self.uuid()
        ref = {"ticket_id": ticket_id}
        agent = self.pick(_AGENTS)
        speed = AGENTS[agent].speed
        policy = DEFAULT_POLICIES[cast(Severity, severity)]
        events: list[Event] = []
        if opening is not None:
            events.append((opened, "ticket.open", ref | opening, None, None))
        assigned = opened + rng.uniform(60, 1800)
        events.append((assigned, "ticket.assign", ref | {"agent": agent}, None, None))
        responded = max(
            assigned + 60,
            opened + self.lognormal(FIRST_RESPONSE_HOURS[severity], speed, RESPONSE_SIGMA),
        )
        message = {"agent": agent, "message": g._one(rng, RESPONSES)}
        events.append((responded, "ticket.respond", ref | message, agent, None))
        resolved = max(
            responded + 1800,
            opened + self.lognormal(RESOLUTION_HOURS[severity], speed, RESOLUTION_SIGMA),
        )
        if responded - opened >= policy.first_response.total_seconds():
            self.breaches.append(opened + policy.first_response.total_seconds())
        resolver = agent
        due = opened + policy.resolution.total_seconds()
        if resolved >= due:
            self.breaches.append(due)
            escalated = max(due, responded) + rng.uniform(60, HOUR)
            if rng.random() < ESCALATE and escalated < resolved - 60:
                resolver = TEAM_LEAD
                data = {"reason": "resolution overdue", "agent": TEAM_LEAD}
                events.append((escalated, "ticket.escalate", ref | data, agent, None))
        first = resolved
        text = RETIRED_RESOLUTION if retired else g._one(rng, RESOLUTIONS[kind])
        events.append((resolved, "ticket.resolve", ref | {"resolution": text}, resolver, None))
        closed = resolved + CLOSE_AFTER_DAYS * DAY
        if rng.random() < REOPEN[kind] and not retired:
            again = resolved + rng.uniform(HOUR, 2 * DAY)
            events.append(
                (again, "ticket.reopen", ref | {"reason": g._one(rng, REOPEN_REASONS)}, None, None)
            )
            answered = again + self.lognormal(FIRST_RESPONSE_HOURS[severity], speed, RESPONSE_SIGMA)
            message = {"agent": resolver, "message": g._one(rng, RESPONSES)}
            events.append((answered, "ticket.respond", ref | message, resolver, None))
            resolved = max(
                answered + 600,
                again + self.lognormal(RESOLUTION_HOURS[severity], speed, RESOLUTION_SIGMA),
            )
            if resolved - again >= policy.resolution.total_seconds():
                self.breaches.append(again + policy.resolution.total_seconds())
            text = g._one(rng, RESOLUTIONS[kind])
            events.append((resolved, "ticket.resolve", ref | {"resolution": text}, resolver, None))
            closed = resolved + CLOSE_AFTER_DAYS * DAY
        events.append((closed, "ticket.close", dict(ref), None, None))
        if group is None:
            group = []
            self.groups.append(group)
        group.append(events)
        self.tickets.append(_Ticket(ticket_id, group, closed, resolver))
        return ticket_id, first

    def complaints(self) -> None:
        """After returns and late deliveries, by the latent satisfaction."""
        rng, s = self.rng, self.c.satisfaction
        for o in self.orders:
            if (
                o.shipped is not None
                and o.delivered is not None
                and o.delivered - o.shipped > LATE_DAYS * DAY
            ) and rng.random() < LATE_COMPLAINT * (1 - s):
                days = round((o.delivered - o.shipped) / DAY)
                self.complaint(
                    o.delivered + rng.uniform(HOUR, 2 * DAY),
                    "delivery",
                    f"Order took {days} days to arrive",
                    o.order_id,
                    None,
                )
            for at, units, reason in o.returns:
                if rng.random() < RETURN_COMPLAINT[0] + RETURN_COMPLAINT[1] * (1 - s):
                    sku = next(iter(units))
                    severity = "high" if reason == "defective" and sku in MODELS else None
                    subject = f"Returned {BY_SKU[sku].name}: {reason}"
                    self.complaint(
                        at + rng.uniform(HOUR, 2 * DAY), "return", subject, o.order_id, severity
                    )

    def complaint(
        self, at: float, category: str, subject: str, order_id: str, severity: str | None
    ) -> None:
        severity = severity or self.pick(_SEVERITY["complaint"])
        opening = {
            "customer_id": self.cid,
            "kind": "complaint",
            "category": category,
            "severity": severity,
            "subject": subject,
            "order_id": order_id,
            "channel": self.pick(_CHANNELS),
        }
        self.ticket(at, "complaint", severity, opening=opening)

    def requests(self) -> None:
        """A Poisson process while a customer (x activity), in the customer's home hours."""
        rng = self.rng
        rate = REQUESTS * self.c.activity
        owner = any(
            o.delivered is not None and any(s in MODELS for s, _ in o.items) for o in self.orders
        )
        for a, b in self.spans():
            for _ in range(g.poisson(rng, rate * (b - a) / MONTH)):
                t = g.place(rng, _HOME, a + HOUR, b)
                if t is None:
                    continue
                topic = g._one(rng, _TOPICS)
                if topic == "maintenance" and not owner:
                    topic = "product question"
                severity = self.pick(_SEVERITY["request"])
                opening = {
                    "customer_id": self.cid,
                    "kind": "request",
                    "category": topic,
                    "severity": severity,
                    "subject": g._one(rng, REQUEST_TOPICS[topic]),
                    "channel": self.pick(_CHANNELS),
                }
                self.ticket(t, "request", severity, opening=opening)

    # -- surveys --------------------------------------------------------------------------

    def exposure(self, t: float) -> tuple[bool, bool, bool]:
        """(breakdown, SLA breach, return) in the EFFECT_DAYS before `t`."""
        lo = t - EFFECT_DAYS * DAY
        return (
            any(lo < x <= t for x in self.breakdowns),
            any(lo < x <= t for x in self.breaches),
            any(lo < x <= t for x in self.returned),
        )

    def score(self, t: float, kind: str) -> int:
        rng, s = self.rng, self.c.satisfaction
        nps = kind == "nps"
        x = 10 * s + rng.gauss(0, NPS_NOISE) if nps else 1 + 4 * s + rng.gauss(0, CSAT_NOISE)
        for exposed, effect in zip(self.exposure(t), EFFECTS.values(), strict=True):
            if exposed:
                x += effect[0 if nps else 1]
        low, high = (0, 10) if nps else (1, 5)
        return min(high, max(low, round(x)))

    def survey(self, at: float, kind: str, trigger: str, about: dict[str, str]) -> list[Event]:
        rng = self.rng
        survey_id = self.uuid()
        ref = {"survey_id": survey_id}
        send = ref | {"customer_id": self.cid, "kind": kind, "trigger": trigger} | about
        events: list[Event] = [(at, "survey.send", send, None, None)]
        if rng.random() < self.habit.answers:
            answered = at + 600 + rng.expovariate(1 / (ANSWER_MEAN_DAYS * DAY))
            score = self.score(at, kind)
            answer: dict[str, Any] = ref | {"score": score}
            if rng.random() < COMMENT:
                exposed = self.exposure(at)[0]
                good = score >= (7 if kind == "nps" else 4)
                pool = names.REASONS_GOOD if good else BAD_MACHINE if exposed else names.REASONS_BAD
                answer["comment"] = g._one(rng, pool)
            events.append((answered, "survey.answer", answer, None, None))
        return events

    def surveys(self) -> None:
        rng = self.rng
        for ticket in self.tickets:
            if ticket.closed is not None and ticket.closed < self.end:
                about = {"ticket_id": ticket.ticket_id, "agent": ticket.agent}
                ticket.group.append(
                    self.survey(ticket.closed + HOUR, "csat", "after_ticket", about)
                )
        for o in self.orders:
            if o.delivered is not None and rng.random() < AFTER_DELIVERY:
                t = g.place(rng, _DAYTIME, o.delivered + 2 * DAY, o.delivered + 3 * DAY)
                about = {"order_id": o.order_id, "sku": o.items[0][0]}
                self.groups.append(
                    [self.survey(t or o.delivered + 2 * DAY, "nps", "after_delivery", about)]
                )
        spans = self.spans()
        for wave in self.waves:
            if any(a <= wave < b for a, b in spans) and rng.random() < PERIODIC_SHARE:
                t = wave + rng.uniform(0, 2 * HOUR)
                self.groups.append([self.survey(t, "nps", "periodic", {})])

    def run(self) -> None:
        if not self.orders and not self.c.stages:
            return
        self.equipment()
        self.complaints()
        self.requests()
        self.surveys()
        for group in self.groups:
            self.emit(group)


def tables() -> dict[str, str]:
    """The service numbers as the Markdown tables docs/demo-model.md quotes, by name."""
    hours = lambda d: f"{d.total_seconds() / HOUR:g}"  # noqa: E731
    return {
        "equipment": m._table(
            [
                "model",
                "counter",
                "expected life",
                "maintenance every",
                "breakdowns / year",
                "failure codes",
            ],
            [
                [
                    sku,
                    "yes" if x.counter else "-",
                    (f"{x.life_cups:g} cups, " if x.life_cups else "") + f"{x.life_years:g} years",
                    f"{x.every_days} days" + (f" or {x.every_cups:g} cups" if x.every_cups else ""),
                    f"{x.failures:g}",
                    ", ".join(f"{k} {v:g}" for k, v in x.codes.items()),
                ]
                for sku, x in MODELS.items()
            ],
        ),
        "service_habits": m._table(
            ["segment", "cups / day", "P(skips maintenance)", "P(answers a survey)"],
            [[n, f"{h.cups:g}", f"{h.skips:g}", f"{h.answers:g}"] for n, h in HABITS.items()],
        ),
        "agents": m._table(
            ["agent", "share of tickets", "speed (x median times)"],
            [[a, f"{x.share:g}", f"{x.speed:g}"] for a, x in AGENTS.items()],
        ),
        "ticket_times": m._table(
            [
                "severity",
                "SLA first response h",
                "SLA resolution h",
                "median first response h",
                "median resolution h",
                "complaint",
                "request",
            ],
            [
                [
                    sev,
                    hours(p.first_response),
                    hours(p.resolution),
                    f"{FIRST_RESPONSE_HOURS[sev]:g}",
                    f"{RESOLUTION_HOURS[sev]:g}",
                    f"{SEVERITY['complaint'].get(sev, 0):g}",
                    f"{SEVERITY['request'].get(sev, 0):g}",
                ]
                for sev, p in DEFAULT_POLICIES.items()
            ],
        ),
        "score_effects": m._table(
            [f"in the {EFFECT_DAYS} days before the survey", "NPS", "CSAT"],
            [[k.replace("_", " "), f"{n:+g}", f"{c:+g}"] for k, (n, c) in EFFECTS.items()],
        ),
    }
