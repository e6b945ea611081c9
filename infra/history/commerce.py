"""Commerce in the demo history: the catalogue, deals, webshop orders and subscriptions, drawn
from the latent model (docs/demo-model.md, "Commerce").

Customers buy only while in stage `customer`: their conversion (source `first_order`) is their
first order (a won deal or a webshop order), churn (`former_customer`) ends their plan and their
buying, a win-back brings both back. What and how much they buy follows their segment, income
band, price sensitivity, satisfaction and activity; deals win by lead source, satisfaction and
price fit. Customer i draws from `random.Random(f"{seed}/commerce/{i}")`, so the rest of the
history is the same with or without commerce; the catalogue from `f"{seed}/catalogue"`.

Every stream (deal, order, subscription) is built whole, in time order, and cut at `now`.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from datetime import UTC, datetime
from itertools import accumulate
from typing import Any, NamedTuple

import msgspec

from infra.history import catalogue as cat
from infra.history import generate as g
from infra.history import model as m
from infra.history import names
from infra.history.catalogue import BY_SKU, Catalogue, Product, money, price_segment
from infra.history.model import DAY, MONTH, HistoryConfig, LatentCustomer

_encode = msgspec.json.Encoder().encode
Event = tuple[float, str, dict[str, Any]]
Line = tuple[str, int, int, int]  # sku, quantity, unit price (cents), discount (percent)


class Habits(NamedTuple):
    """How a segment buys. Rates are per month in stage `customer` at season 1, activity 1."""

    orders: float  # webshop orders
    machine_first: float  # P(a first webshop order is a machine)
    deal_share: float  # P(a qualified customer is worked on in a deal)
    upsell: float  # further deals per month as a customer
    subscribe: float  # P(a customer starts a plan)
    payments: dict[str, float]
    late: float  # P(an invoice is paid after its due date)
    unpaid: float  # P(an invoice is never paid)


def _pay(card: float, transfer: float, invoice: float, instalments: float) -> dict[str, float]:
    return {"card": card, "transfer": transfer, "invoice": invoice, "instalments": instalments}


HABITS: dict[str, Habits] = {
    "digital_natives": Habits(
        0.30, 0.45, 0.05, 0.005, 0.25, _pay(0.6, 0.15, 0.1, 0.15), 0.12, 0.02
    ),
    "phone_loyalists": Habits(0.25, 0.5, 0.2, 0.02, 0.15, _pay(0.2, 0.3, 0.45, 0.05), 0.05, 0.01),
    "bargain_hunters": Habits(0.40, 0.35, 0.1, 0.01, 0.2, _pay(0.4, 0.2, 0.15, 0.25), 0.25, 0.05),
    "premium_advisory": Habits(0.25, 0.6, 0.7, 0.06, 0.3, _pay(0.45, 0.2, 0.3, 0.05), 0.05, 0.01),
    "dormant": Habits(0.08, 0.3, 0.05, 0.0, 0.05, _pay(0.5, 0.3, 0.2, 0.0), 0.2, 0.04),
    "business_accounts": Habits(0.35, 0.2, 0.9, 0.12, 0.35, _pay(0.05, 0.15, 0.8, 0.0), 0.15, 0.01),
}
# A machine owner reorders its coffee: extra orders per month (x season), from 14 days after
# the machine on; the coffee fits the latest machine.
REFILL = 0.5
REFILL_AFTER = 14 * DAY
WIN_BACK_ORDER_DAYS = 3.0  # mean days from a win-back to its first order
# What a webshop order is, by whether the customer owns a machine then; gifts x3 in December.
KINDS_OWNER = {"coffee": 0.45, "accessory": 0.25, "gift": 0.12, "service": 0.10, "machine": 0.08}
KINDS_NEW = {"machine": 0.30, "coffee": 0.30, "accessory": 0.20, "gift": 0.15, "service": 0.05}
KINDS_BUSINESS = {"coffee": 0.6, "accessory": 0.15, "service": 0.15, "machine": 0.1}
GIFT_DECEMBER = 3.0
OCCASION_SHARE = 0.7  # of gift orders
OCCASIONS = {"birthday": 0.6, "anniversary": 0.25, "wedding": 0.1, "other": 0.05}
CHRISTMAS = 0.8  # of December occasions
# Which product of a category: weight = preference[income band][price segment]
# x (1 - aversion[price segment] x price sensitivity).
PREFERENCE = {
    "low": {"budget": 1.0, "mid": 0.4, "premium": 0.1},
    "middle": {"budget": 1.0, "mid": 1.0, "premium": 0.4},
    "high": {"budget": 0.7, "mid": 1.0, "premium": 1.5},
}
AVERSION = {"budget": 0.0, "mid": 0.4, "premium": 0.7}
SKUS_PER_ORDER = {1: 0.6, 2: 0.3, 3: 0.1}
QUANTITY = {1: 0.4, 2: 0.3, 3: 0.15, 4: 0.15}
# Payment
INSTALMENTS = {3: 0.4, 6: 0.35, 12: 0.25}
INSTALMENT_MIN = 10_000  # cents: below, an instalment order pays by card
DEFAULTED = 0.05  # of instalment orders stop paying after some instalments
TRANSFER_UNPAID = 0.06  # prepayment never arrives: cancelled after 10-14 days
INVOICE_CANCEL = 0.04  # invoice orders cancelled before shipping
INVOICE_DAYS = {"person": 14, "organisation": 30}  # due date after the invoice
LATE_MEAN_DAYS = 20.0  # a late payment: mean days after the due date
CANCEL_REASONS = ("changed my mind", "ordered by mistake", "found it cheaper elsewhere")
RETURN_REASONS = {
    "machines": ("defective", "not as expected", "too loud"),
    "coffee": ("wrong product", "taste not as expected"),
    "accessories": ("damaged in transit", "not as expected", "wrong item"),
}
RETURN_WINDOW_DAYS = (1, 14)
# Deals: lead source -> (prior share, channel of the first interest, base win probability).
DEAL_SOURCES = {
    "referral": (0.20, "meeting", 0.60),
    "partner": (0.15, "email", 0.50),
    "inbound_call": (0.15, "call", 0.45),
    "fair": (0.15, "meeting", 0.40),
    "web_form": (0.20, "web", 0.30),
    "cold_call": (0.15, "call", 0.15),
}
PRICE_FIT = {"budget": 0.0, "mid": 0.3, "premium": 0.6}
WIN_BOUNDS = (0.02, 0.95)
LOSS_STAGE = (0.35, 0.3, 0.2, 0.15)  # the last stage a lost deal reached
STEP_DAYS = {"sales": 5.0, "key_accounts": 9.0}  # mean days between deal steps
BACK_MOVE = 0.15  # of deals in the last stage go back a stage (a second quote)
REASSIGN = 0.12
NEGOTIATED = 0.6  # of deals in the last stage get a discount
DISCOUNTS = (3, 5, 8, 10, 12, 15)  # percent
QUOTE_VALID_DAYS = 30
COMPETITORS = ("BeanCo", "Kaffeewerk", "CremaTec", "BrewMaster")
LEFT_MEAN_DAYS = 10.0  # a deal open at churn is lost this long after it
# Subscriptions: plan by income band (Basic, Plus, Premium yearly), monthly hazards.
PLAN_PREFERENCE = {"low": (0.7, 0.25, 0.05), "middle": (0.4, 0.45, 0.15), "high": (0.15, 0.45, 0.4)}
SUBSCRIBE_MEAN_DAYS = 45.0  # after the conversion
PLAN_CHANGE = 0.04  # up with probability = satisfaction
PLAN_CANCEL = 0.01  # x 2 (1 - satisfaction), while staying a customer
RESTART = 0.5  # P(a won-back former subscriber starts a plan again)

FACTS = frozenset(("order.place", "deal.win", "order.ship", "order.deliver", "order.return"))
_DAY_PATTERN = g.PATTERNS["email"]  # deliveries: mostly daytime
_OFFICE = g.PATTERNS["call"]
_HOME = g.PATTERNS["web"]
_GIFTS = ("A-GIFT-1", "A-GIFT-2", "A-CUPS-6", "A-CUPS-2", "A-TRAVEL-1", "C-BEAN-P", "A-SCALE-1")


def _of(category: str, *, business: bool | None = False) -> tuple[Product, ...]:
    return tuple(
        p
        for p in cat.PRODUCTS
        if p.category == category and (business is None or p.business == business)
    )


_MACHINES = _of("machines")
_BEAN_MACHINES = tuple(p for p in _MACHINES if p.fits == "beans")
_COFFEE = _of("coffee")
_ACCESSORIES = tuple(p for p in _of("accessories") if not p.sku.startswith("A-GIFT"))
_GRINDERS = (BY_SKU["A-GRIND-1"], BY_SKU["A-GRIND-2"])


def _cum(weights: dict[Any, float]) -> tuple[tuple[Any, ...], tuple[float, ...]]:
    return tuple(weights), tuple(accumulate(weights.values()))


_SKUS_PER_ORDER = _cum(SKUS_PER_ORDER)
_QUANTITY = _cum(QUANTITY)
_INSTALMENTS = _cum(INSTALMENTS)
_OCCASIONS = _cum(OCCASIONS)


def _per_second(monthly_hazard: float) -> float:
    return -math.log(1 - min(monthly_hazard, 0.95)) / MONTH


def net(cents: int, quantity: int, percent: int) -> int:
    """A line's net in cents, rounded half to even as the domain rounds money."""
    q, r = divmod(cents * quantity * (100 - percent), 100)
    return q + (1 if r > 50 or (r == 50 and q % 2) else 0)


def _day(t: float) -> str:
    return g.stamp(t)[:10]


def timed_lines(
    config: HistoryConfig,
    people: Sequence[LatentCustomer],
    calendar: Sequence[g.Month],
    facts: dict[int, list[Event]] | None = None,
) -> list[tuple[float, bytes]]:
    """(business time, line) for the catalogue, the pipelines and every customer's commerce;
    `facts`, if given, receives each customer's emitted order events (by customer index) for
    the service that follows them (`infra.history.service`)."""
    catalogue = Catalogue(config)
    out: list[tuple[float, bytes]] = []
    ids = names.UuidSequence(catalogue.rng)
    for t, command, data in catalogue.events():
        data["occurred_at"] = g.stamp(t)
        line = {"command": command, "data": data, "command_id": ids.next()}
        out.append((t, _encode(line) + b"\n"))
    for c in people:
        shop = _Shop(c, config, catalogue, calendar, out)
        shop.run()
        if facts is not None and shop.facts:
            facts[c.index] = shop.facts
    return out


class _Span(NamedTuple):
    """A stretch in stage `customer`: from `start` to `stop` (a churn, or `now`)."""

    start: float
    stop: float
    win_back: bool
    churned: bool


class _Shop:
    """The commerce of one customer, with the customer's own commerce RNG."""

    def __init__(
        self,
        c: LatentCustomer,
        config: HistoryConfig,
        catalogue: Catalogue,
        calendar: Sequence[g.Month],
        out: list[tuple[float, bytes]],
    ) -> None:
        self.c, self.catalogue, self.calendar, self.out = c, catalogue, calendar, out
        self.rng = random.Random(f"{config.seed}/commerce/{c.index}")
        self.ids = names.UuidSequence(self.rng)
        self.end = config.now.timestamp()
        self.habits = HABITS[c.segment]
        self.org = c.kind == "organisation"
        self.cid = str(c.customer_id)
        fm = c.false_merge
        self.blocked = (
            (fm.merged_at.timestamp() - 60, fm.unmerged_at.timestamp() + 60) if fm else None
        )
        self.machines: list[tuple[float, str]] = []  # (bought at, machine type)
        self.facts: list[Event] = []  # order events emitted: what service follows up
        self.spans = self._spans()
        self.qualified = next((s.at.timestamp() for s in c.stages if s.stage == "prospect"), None)

    # -- plumbing -------------------------------------------------------------------------

    def _spans(self) -> list[_Span]:
        out, since, win_back = [], None, False
        for s in self.c.stages:
            if s.stage == "customer":
                since, win_back = s.at.timestamp(), s.source == "win_back"
            elif s.stage == "former_customer" and since is not None:
                out.append(_Span(since, s.at.timestamp(), win_back, True))
                since = None
        if since is not None:
            out.append(_Span(since, self.end, win_back, False))
        return out

    def emit(self, *streams: list[Event]) -> None:
        """Streams that belong together (a deal and its order), each in time order, cut at
        `now`; none of them if one touches the time the customer is wrongly merged away."""
        kept = []
        for events in streams:
            events.sort(key=lambda e: e[0])
            cut = next((i for i, e in enumerate(events) if e[0] >= self.end), len(events))
            kept.append(events[:cut])
        if self.blocked is not None:
            lo, hi = self.blocked
            if any(lo <= e[0] <= hi for events in kept for e in events):
                return
        for events in kept:
            for t, command, data in events:
                data["occurred_at"] = g.stamp(t)
                line = {"command": command, "data": data, "command_id": self.ids.next()}
                self.out.append((t, _encode(line) + b"\n"))
                if command in FACTS:
                    self.facts.append((t, command, data))

    def uuid(self) -> str:
        return str(m._uuid(self.rng))

    def pick(self, options: tuple[tuple[Any, ...], tuple[float, ...]]) -> Any:
        return g._weighted(self.rng, *options)

    def office(self, a: float, days: float = 2.0) -> float:
        """A working hour in [a, a + days), else `a`."""
        t = g.place(self.rng, _OFFICE, a, a + days * DAY)
        return a if t is None else t

    def poisson_times(self, monthly: float, a: float, b: float, pattern: g._Pattern) -> list[float]:
        """Times of a Poisson process in [a, b) with rate `monthly` x the month's season."""
        out: list[float] = []
        if monthly <= 0:
            return out
        for month in self.calendar:
            lo, hi = max(month.start, a), min(month.end, b)
            if lo >= hi:
                continue
            for _ in range(g.poisson(self.rng, monthly * month.season * (hi - lo) / MONTH)):
                if (t := g.place(self.rng, pattern, lo, hi)) is not None:
                    out.append(t)
        return sorted(out)

    def machine_at(self, t: float) -> str | None:
        owned = [kind for at, kind in self.machines if at <= t]
        return owned[-1] if owned else None

    # -- products -------------------------------------------------------------------------

    def choose(self, t: float, candidates: Sequence[Product]) -> Product | None:
        """One product on sale at `t`, by income band and price sensitivity."""
        c, catalogue = self.c, self.catalogue
        on_sale = [p for p in candidates if catalogue.on_sale(p.sku, t)]
        if not on_sale:
            return None
        preference = PREFERENCE[c.income_band]
        weights = []
        for p in on_sale:
            segment = price_segment(catalogue.price(p.sku, t))
            weights.append(preference[segment] * (1 - AVERSION[segment] * c.price_sensitivity))
        return self.rng.choices(on_sale, weights)[0]

    def some(self, t: float, candidates: Sequence[Product], k: int) -> list[Product]:
        out: list[Product] = []
        for _ in range(k):
            p = self.choose(t, [x for x in candidates if x not in out])
            if p is not None:
                out.append(p)
        return out

    def quantity(self) -> int:
        q = int(self.pick(_QUANTITY))
        return q * self.rng.randint(2, 4) if self.org else q

    def fitting(self, products: Sequence[Product], machine: str | None) -> list[Product]:
        if machine is None:
            return [p for p in products if p.fits is None]
        return [p for p in products if p.fits in (None, "machine", machine)]

    def coffee(self, t: float, machine: str | None) -> list[tuple[str, int]]:
        if machine == "office":
            lines = [("C-BEAN-B", self.rng.randint(1, 6))]
            extra = self.choose(t, [p for p in _COFFEE if p.fits == "beans"])
            if extra is not None and self.rng.random() < 0.5:
                lines.append((extra.sku, self.quantity()))
            return lines
        options = [p for p in _COFFEE if machine is None or p.fits == machine]
        k = min(len(options), int(self.pick(_SKUS_PER_ORDER)))
        return [(p.sku, self.quantity()) for p in self.some(t, options, k)]

    def machine_order(self, t: float) -> list[tuple[str, int]]:
        rng = self.rng
        candidates = _BEAN_MACHINES if self.org else _MACHINES
        machine = self.choose(t, candidates)
        if machine is None:
            return []
        kind = machine.fits or "beans"
        lines = [(machine.sku, 1)]
        if rng.random() < 0.7:
            options = [p for p in _COFFEE if p.fits == kind]
            k = min(len(options), rng.randint(1, 2))
            lines += [(p.sku, rng.randint(1, 2)) for p in self.some(t, options, k)]
        if rng.random() < 0.5:
            options = self.fitting(_ACCESSORIES, kind)
            lines += [(p.sku, 1) for p in self.some(t, options, rng.randint(1, 2))]
        price = self.catalogue.price(machine.sku, t)
        if price >= 20_000 and rng.random() < 0.35:
            lines.append(("S-WARRANTY-3" if price >= 40_000 else "S-WARRANTY-2", 1))
        elif price >= 5_000 and rng.random() < 0.15:
            lines.append(("S-WARRANTY-2", 1))
        if price >= 40_000 and rng.random() < 0.15:
            lines.append(("S-INSTALL", 1))
        return lines

    def basket(self, t: float, kind: str) -> list[tuple[str, int]]:
        rng, machine = self.rng, self.machine_at(t)
        if kind == "machine":
            return self.machine_order(t)
        if kind == "coffee":
            return self.coffee(t, machine)
        if kind == "accessory":
            options = self.fitting(_ACCESSORIES, machine)
            return [(p.sku, 1) for p in self.some(t, options, 1 if rng.random() < 0.7 else 2)]
        if kind == "service":
            if self.org:
                skus = ("S-OFFICE-CARE", "S-REPAIR", "S-CLEAN")
                return [(rng.choices(skus, (0.4, 0.3, 0.3))[0], 1)]
            if machine is None:
                return [("S-BARISTA", 1)]
            return [(rng.choices(("S-CLEAN", "S-REPAIR", "S-BARISTA"), (0.5, 0.3, 0.2))[0], 1)]
        gifts = [BY_SKU[s] for s in _GIFTS]  # kind == "gift"
        return [(p.sku, 1) for p in self.some(t, gifts, 1 if rng.random() < 0.75 else 2)]

    def priced(self, t: float, basket: list[tuple[str, int]], percent: int = 0) -> list[Line]:
        """Merged per sku, only what is on sale at `t`, at its list price then."""
        quantities: dict[str, int] = {}
        for sku, q in basket:
            if self.catalogue.on_sale(sku, t):
                quantities[sku] = quantities.get(sku, 0) + q
        return [(s, q, self.catalogue.price(s, t), percent) for s, q in quantities.items()]

    def bought(self, t: float, lines: list[Line]) -> None:
        for sku, *_ in lines:
            p = BY_SKU[sku]
            if p.category == "machines" and p.fits:
                self.machines.append((t, p.fits))
                self.machines.sort()

    # -- orders ---------------------------------------------------------------------------

    def payment(self, total: int) -> tuple[str, int | None]:
        h = self.habits
        method = self.rng.choices(tuple(h.payments), tuple(h.payments.values()))[0]
        if method != "instalments":
            return method, None
        if total < INSTALMENT_MIN:
            return "card", None
        return method, int(self.pick(_INSTALMENTS))

    def order(self, t: float, kind: str) -> None:
        """A webshop order of this kind at `t`, with its whole life."""
        lines = self.priced(t, self.basket(t, kind))
        if not lines:
            return
        total = sum(net(p, q, d) for _, q, p, d in lines)
        method, instalments = self.payment(total)
        order_id = self.uuid()
        data: dict[str, Any] = {
            "order_id": order_id,
            "customer_id": self.cid,
            "items": _items(lines),
            "payment_method": method,
        }
        if instalments:
            data["instalments"] = instalments
        if kind == "gift" and self.rng.random() < OCCASION_SHARE:
            data["occasion"] = self.occasion(t)
        events: list[Event] = [(t, "order.place", data)]
        events += self.life(t, order_id, lines, method=method, instalments=instalments)
        self.bought(t, lines)
        self.emit(events)

    def occasion(self, t: float) -> dict[str, str]:
        rng = self.rng
        december = datetime.fromtimestamp(t, UTC).month == 12
        kind = "christmas" if december and rng.random() < CHRISTMAS else self.pick(_OCCASIONS)
        person = names.first_name(rng, rng.choice(("female", "male")))
        return {"kind": kind, "for_person": person, "date": _day(t + rng.uniform(3, 21) * DAY)}

    def life(
        self,
        t: float,
        order_id: str,
        lines: list[Line],
        *,
        method: str,
        instalments: int | None,
    ) -> list[Event]:
        """Payment, invoice, shipping, delivery and returns of an order placed at `t`."""
        rng, ref = self.rng, {"order_id": order_id}
        total = sum(net(p, q, d) for _, q, p, d in lines)
        events: list[Event] = []
        ready = t
        if method == "card":
            events.append((t + rng.uniform(30, 300), "order.pay", _paid(ref, total, "card")))
        elif method == "transfer":
            if rng.random() < TRANSFER_UNPAID:
                reason = {"reason": "payment not received"}
                return [(self.office(t + rng.uniform(10, 14) * DAY), "order.cancel", ref | reason)]
            ready = t + 3600 + rng.expovariate(1 / (1.5 * DAY))
            events.append((ready, "order.pay", _paid(ref, total, "transfer")))
        elif method == "invoice" and rng.random() < INVOICE_CANCEL:
            reason = {"reason": rng.choice(CANCEL_REASONS)}
            return [(t + rng.uniform(3600, DAY), "order.cancel", ref | reason)]
        elif method == "instalments":
            assert instalments is not None
            events += self.instalments(t, ref, total, instalments)
        shipped = self.office(ready + 2 * 3600 + rng.uniform(0, 2) * DAY, 3)
        goods = any(BY_SKU[s].kind == "good" for s, *_ in lines)
        ship = ref | ({"tracking": f"1Z{rng.getrandbits(40):010X}"} if goods else {})
        events.append((shipped, "order.ship", ship))
        if method == "invoice":
            events += self.invoice(shipped + 60, ref, total)
        delivered = g.place(rng, _DAY_PATTERN, shipped + DAY, shipped + 4 * DAY)
        delivered = shipped + DAY if delivered is None else delivered
        events.append((delivered, "order.deliver", dict(ref)))
        returned = []
        for sku, quantity, *_ in lines:
            rate = BY_SKU[sku].returns
            units = sum(1 for _ in range(quantity) if rng.random() < rate) if rate else 0
            if units:
                returned.append({"sku": sku, "quantity": units})
        if returned:
            category = BY_SKU[returned[0]["sku"]].category
            reason = rng.choice(RETURN_REASONS[category])
            at = delivered + rng.uniform(*RETURN_WINDOW_DAYS) * DAY
            events.append((at, "order.return", ref | {"items": returned, "reason": reason}))
        return events

    def instalments(self, t: float, ref: dict[str, str], total: int, n: int) -> list[Event]:
        rng = self.rng
        each = total // n
        amounts = [total - each * (n - 1)] + [each] * (n - 1)
        stop = rng.randint(1, n - 1) if rng.random() < DEFAULTED else n
        return [
            (
                t + rng.uniform(60, 600) + k * MONTH,
                "order.pay",
                _paid(ref, amount, "instalments"),
            )
            for k, amount in enumerate(amounts[:stop])
        ]

    def invoice(self, t: float, ref: dict[str, str], total: int) -> list[Event]:
        """Issued at `t`; paid in time, late (the invoice turns overdue) or never."""
        rng, h = self.rng, self.habits
        days = INVOICE_DAYS[self.c.kind]
        due_end = (t // DAY + days + 1) * DAY  # the start of the day after the due date
        issue = {"number": f"INV-{g.stamp(t)[:4]}-{rng.getrandbits(32):08X}"}
        events: list[Event] = [
            (t, "order.issue_invoice", ref | issue | {"due_date": _day(t + days * DAY)})
        ]
        r = rng.random()
        if r < h.unpaid:
            return events
        if r < h.unpaid + h.late:
            paid = self.office(due_end + 3600 + rng.expovariate(1 / (LATE_MEAN_DAYS * DAY)), 1)
        else:
            paid = t + 3600 + rng.random() * (due_end - t - 2 * 3600)
        events.append((paid, "order.pay", _paid(ref, total, "transfer")))
        return events

    # -- deals ----------------------------------------------------------------------------

    def win_probability(self, source: str, segment: str) -> float:
        c = self.c
        p = DEAL_SOURCES[source][2] * (0.5 + c.satisfaction)
        p *= 1 - PRICE_FIT[segment] * c.price_sensitivity
        return min(WIN_BOUNDS[1], max(WIN_BOUNDS[0], p))

    def deal_basket(self, t: float, upsell: bool) -> list[tuple[str, int]]:
        rng = self.rng
        if self.org:
            if not upsell or rng.random() < 0.4:
                machines = rng.choices((1, 2, 3), (0.6, 0.3, 0.1))[0]
                lines = [("M-OFFICE-1", machines), ("C-BEAN-B", rng.randint(5, 20))]
                if rng.random() < 0.6:
                    lines.append(("S-OFFICE-CARE", machines))
                if rng.random() < 0.5:
                    lines.append(("S-INSTALL", 1))
                return lines
            lines = [("C-BEAN-B", rng.randint(10, 40))]
            if rng.random() < 0.5:
                lines.append(("C-BEAN-E", rng.randint(5, 20)))
            if rng.random() < 0.4:
                lines.append(("S-OFFICE-CARE", 1))
            return lines
        lines = []
        if not upsell or rng.random() < 0.5:
            machine = self.choose(t, _BEAN_MACHINES)
            if machine is not None:
                lines.append((machine.sku, 1))
                if rng.random() < 0.5:
                    big = self.catalogue.price(machine.sku, t) >= 40_000
                    lines.append(("S-WARRANTY-3" if big else "S-WARRANTY-2", 1))
            if rng.random() < 0.4:
                lines.append(("S-INSTALL", 1))
            if rng.random() < 0.5:
                lines.append(("C-BEAN-P", rng.randint(2, 4)))
        if rng.random() < 0.4 or not lines:
            grinder = self.choose(t, _GRINDERS)
            if grinder is not None:
                lines.append((grinder.sku, 1))
        if rng.random() < 0.3 or not lines:
            lines.append(("S-BARISTA", 1))
        return lines

    def deals(self) -> None:
        """An acquisition deal for some qualified customers (won at the conversion, lost if
        they never convert), then upsell deals while a customer."""
        rng, h = self.rng, self.habits
        first = self.spans[0] if self.spans and not self.spans[0].win_back else None
        self.deal_won_first = False
        if self.qualified is not None and rng.random() < h.deal_share:
            if first is not None:
                start = self.qualified + rng.uniform(0.05, 0.4) * (first.start - self.qualified)
                self.deal(start, False, won_at=first.start)
                self.deal_won_first = True
            else:
                self.deal(self.qualified + 3600 + rng.expovariate(1 / (3 * DAY)), False)
        for span in self.spans:
            n = g.poisson(rng, h.upsell * (span.stop - span.start) / MONTH)
            for t in sorted(rng.uniform(span.start, span.stop) for _ in range(n)):
                if (opened := self.office(t)) < span.stop:
                    self.deal(opened, True, churn=span.stop if span.churned else None)

    def deal(
        self,
        opened: float,
        upsell: bool,
        *,
        won_at: float | None = None,
        churn: float | None = None,
    ) -> None:
        """One deal from `opened`: won at `won_at` (a conversion), else won or lost by the
        win probability; an upsell deal still open at churn is lost after it."""
        rng, catalogue = self.rng, self.catalogue
        pipeline = "key_accounts" if self.org else "sales"
        basket = [
            (s, q) for s, q in self.deal_basket(opened, upsell) if catalogue.on_sale(s, opened)
        ]
        if not basket:
            return
        top = max(catalogue.price(s, opened) for s, _ in basket)
        forced = None if upsell else won_at is not None
        source, won = self.outcome(price_segment(top), forced)
        deal_id, owner = self.uuid(), rng.choice(cat.SALES_TEAM[pipeline])
        ref = {"deal_id": deal_id}
        lines = self.priced(opened, basket)
        full = sum(net(p, q, 0) for _, q, p, _ in lines)
        estimate = max(1000, round(full * rng.uniform(0.7, 1.3) / 1000) * 1000)
        steps, percent = self.steps(ref, pipeline, owner, lines, won)
        times, closed = self.times(len(steps), opened, pipeline, won_at)
        if won_at is None and churn is not None and closed >= churn:
            won, closed = False, churn + rng.expovariate(1 / (LEFT_MEAN_DAYS * DAY))
            times = [x for x in times if x < closed]
        opening = ref | {
            "pipeline": pipeline,
            "customer_id": self.cid,
            "lead_source": source,
            "channel": DEAL_SOURCES[source][1],
            "products": [s for s, *_ in lines],
            "value": money(estimate),
            "owner": owner,
        }
        deal: list[Event] = [(opened, "deal.open", opening)]
        for t, (command, data) in zip(times, steps, strict=False):
            if command == "deal.send_quote":
                number = f"Q-{g.stamp(t)[:4]}-{rng.getrandbits(24):06X}"
                data |= {"quote_number": number, "valid_until": _day(t + QUOTE_VALID_DAYS * DAY)}
            deal.append((t, command, data))
        if not won:
            left = churn is not None and closed > churn
            deal.append((closed, "deal.lose", ref | self.loss(left)))
            self.emit(deal)
            return
        lines = [(s, q, p, percent) for s, q, p, _ in lines]
        total = sum(net(p, q, d) for _, q, p, d in lines)
        method, instalments = self.payment(total)
        order_id = self.uuid()
        win = ref | {"order_id": order_id, "items": _items(lines), "payment_method": method}
        if instalments:
            win["instalments"] = instalments
        deal.append((closed, "deal.win", win))
        order = self.life(closed, order_id, lines, method=method, instalments=instalments)
        if closed < self.end:
            self.bought(closed, lines)
        self.emit(deal, order)

    def outcome(self, segment: str, forced: bool | None) -> tuple[str, bool]:
        """(lead source, won). An upsell deal (`forced` None) draws its source from the
        priors and wins by the win probability; an acquisition deal's outcome is the
        lifecycle's (won: it converts), and its source is drawn given that outcome, so that
        P(won | source) keeps the sources' order over all deals."""
        rng = self.rng
        priors = {s: v[0] for s, v in DEAL_SOURCES.items()}
        if forced is None:
            source = rng.choices(tuple(priors), tuple(priors.values()))[0]
            return source, rng.random() < self.win_probability(source, segment)
        won = forced
        weights = []
        for s, w in priors.items():
            p = self.win_probability(s, segment)
            weights.append(w * (p if won else 1 - p))
        return rng.choices(tuple(priors), weights)[0], won

    def steps(
        self, ref: dict[str, str], pipeline: str, owner: str, lines: list[Line], won: bool
    ) -> tuple[list[tuple[str, dict[str, Any]]], int]:
        """A deal's steps after opening, up to the last stage it reaches; and its discount."""
        rng = self.rng
        stages = [s for s, _ in cat.PIPELINES[pipeline]]
        reached = len(stages) - 1 if won else rng.choices(range(len(stages)), LOSS_STAGE)[0]
        full = money(sum(net(p, q, 0) for _, q, p, _ in lines))
        steps: list[tuple[str, dict[str, Any]]] = []
        percent = 0
        for k in range(1, reached + 1):
            steps.append(("deal.move", ref | {"to_stage": stages[k]}))
            if k == 2:
                steps.append(("deal.change_value", ref | {"value": full}))
                steps.append(("deal.send_quote", ref | {"amount": full}))
            if k == 3:
                if rng.random() < BACK_MOVE:
                    steps.append(("deal.move", ref | {"to_stage": stages[2]}))
                    steps.append(("deal.send_quote", ref | {"amount": full}))
                    steps.append(("deal.move", ref | {"to_stage": stages[3]}))
                if rng.random() < NEGOTIATED:
                    percent = rng.choice(DISCOUNTS)
                    value = sum(net(p, q, percent) for _, q, p, _ in lines)
                    steps.append(("deal.change_value", ref | {"value": money(value)}))
        if rng.random() < REASSIGN:
            others = [o for o in (*cat.SALES_TEAM[pipeline], cat.TRAINEE) if o != owner]
            at = rng.randint(0, len(steps))
            steps.insert(at, ("deal.assign", ref | {"owner": rng.choice(others)}))
        return steps, percent

    def times(
        self, n: int, opened: float, pipeline: str, won_at: float | None
    ) -> tuple[list[float], float]:
        """Times of `n` steps and of the close: squeezed before a given win (working hours
        where they fit), else one step after another (1 h + Exp(mean step days) apart)."""
        rng = self.rng
        if won_at is not None:
            times = []
            for _ in range(n):
                t = g.place(rng, _OFFICE, opened + 60, won_at - 60)
                times.append(rng.uniform(opened + 60, won_at - 60) if t is None else t)
            return sorted(times), won_at
        times, t, mean = [], opened, STEP_DAYS[pipeline] * DAY
        for _ in range(n + 1):
            t = self.office(t + 3600 + rng.expovariate(1 / mean))
            times.append(t)
        return times[:-1], times[-1]

    def loss(self, left: bool) -> dict[str, str]:
        rng = self.rng
        if left:
            return {"reason": "customer left"}
        reasons = {
            "price too high": 0.2 + 0.6 * self.c.price_sensitivity,
            "chose a competitor": 0.35,
            "no budget": 0.2,
            "bad timing": 0.15,
            "no response": 0.2,
        }
        reason = rng.choices(tuple(reasons), tuple(reasons.values()))[0]
        out = {"reason": reason}
        if reason == "chose a competitor" or (reason == "price too high" and rng.random() < 0.5):
            out["competitor"] = rng.choice(COMPETITORS)
        return out

    # -- webshop orders -------------------------------------------------------------------

    def orders(self) -> None:
        """The first order of each span, orders by the segment's rate, then coffee refills."""
        rng, h, c = self.rng, self.habits, self.c
        base: list[tuple[float, str | None]] = []
        for i, span in enumerate(self.spans):
            if span.win_back:
                first = span.start + 3600 + rng.expovariate(1 / (WIN_BACK_ORDER_DAYS * DAY))
            elif i == 0 and not self.deal_won_first:
                first = span.start
            else:
                first = math.inf
            if first < span.stop:
                kind = "machine" if rng.random() < h.machine_first else None
                base.append((first, kind))
            pattern = _OFFICE if self.org else _HOME
            times = self.poisson_times(h.orders * c.activity, span.start + 3600, span.stop, pattern)
            base += [(t, None) for t in times]
        base.sort(key=lambda x: x[0])
        for t, kind in base:
            self.order(t, kind or self.kind(t))
        if not self.machines:
            return
        for span in self.spans:
            start = max(span.start, self.machines[0][0] + REFILL_AFTER)
            for t in self.poisson_times(REFILL, start, span.stop, _OFFICE if self.org else _HOME):
                self.order(t, "coffee")

    def kind(self, t: float) -> str:
        if self.org:
            mix = KINDS_BUSINESS
        else:
            mix = dict(KINDS_OWNER if self.machine_at(t) else KINDS_NEW)
            if datetime.fromtimestamp(t, UTC).month == 12:
                mix["gift"] *= GIFT_DECEMBER
        return self.rng.choices(tuple(mix), tuple(mix.values()))[0]

    # -- subscriptions --------------------------------------------------------------------

    def subscriptions(self) -> None:
        rng = self.rng
        if not self.spans or self.spans[0].win_back or rng.random() >= self.habits.subscribe:
            return
        churned_out = False
        for i, span in enumerate(self.spans):
            if i == 0:
                start = span.start + 3600 + rng.expovariate(1 / (SUBSCRIBE_MEAN_DAYS * DAY))
            elif churned_out and rng.random() < RESTART:
                start = span.start + 3600 + rng.expovariate(1 / (7 * DAY))
            else:
                return
            if start >= span.stop:
                return
            churned_out = self.subscription(start, span)

    def subscription(self, start: float, span: _Span) -> bool:
        """A plan from `start`: changes, maybe a cancellation; True if it ended by churn."""
        rng, c, catalogue = self.rng, self.c, self.catalogue
        plan = rng.choices(range(len(cat.PLANS)), PLAN_PREFERENCE[c.income_band])[0]
        sub = {"subscription_id": self.uuid()}
        sku = cat.PLANS[plan]
        period = BY_SKU[sku].period or "month"
        first = {"customer_id": self.cid, "plan": sku, "price": money(catalogue.price(sku, start))}
        events: list[Event] = [(start, "subscription.start", sub | first | {"period": period})]
        change = _per_second(PLAN_CHANGE)
        cancel = _per_second(PLAN_CANCEL * 2 * (1 - c.satisfaction))
        t, term = start, start
        by_churn = False
        while True:
            t_change = t + rng.expovariate(change)
            t_cancel = t + rng.expovariate(cancel) if cancel > 0 else math.inf
            if min(t_change, t_cancel) >= span.stop:
                if span.churned:
                    reason = "not satisfied" if c.satisfaction < 0.4 else "contract ended"
                    events.append(self.cancel(max(span.stop - 60, t), term, period, sub, reason))
                    by_churn = True
                break
            if t_cancel < t_change:
                events.append(self.cancel(t_cancel, term, period, sub, "no longer needed"))
                break
            t = t_change
            if plan == 0:
                plan = 1
            elif plan == len(cat.PLANS) - 1:
                plan -= 1
            else:
                plan += 1 if rng.random() < c.satisfaction else -1
            sku = cat.PLANS[plan]
            period = BY_SKU[sku].period or "month"
            data = {"plan": sku, "price": money(catalogue.price(sku, t)), "period": period}
            events.append((t, "subscription.change_plan", sub | data))
            term = t
        self.emit(events)
        return by_churn

    def cancel(self, t: float, term: float, period: str, sub: dict[str, str], reason: str) -> Event:
        """Cancelled at `t`, effective at the end of the current term."""
        length = MONTH if period == "month" else 365.25 * DAY
        effective = term + (math.floor((t - term) / length) + 1) * length
        data = sub | {"reason": reason, "effective_at": g.stamp(effective)}
        return (t, "subscription.cancel", data)

    def run(self) -> None:
        if not self.spans and self.qualified is None:
            return
        self.deal_won_first = False
        self.deals()
        self.orders()
        self.subscriptions()


def _items(lines: list[Line]) -> list[dict[str, Any]]:
    out = []
    for sku, quantity, cents, percent in lines:
        item: dict[str, Any] = {"sku": sku, "quantity": quantity, "unit_price": money(cents)}
        if percent:
            item["discount"] = f"0.{percent:02d}"
        out.append(item)
    return out


def _paid(ref: dict[str, str], cents: int, method: str) -> dict[str, Any]:
    return ref | {"amount": money(cents), "method": method}


def _mix(weights: dict[Any, float]) -> str:
    return ", ".join(f"{k} {v:g}" for k, v in weights.items())


def tables() -> dict[str, str]:
    """The commerce numbers as the Markdown tables docs/demo-model.md quotes, by name."""
    habits = [
        [
            name,
            f"{h.orders:g}",
            f"{h.machine_first:g}",
            f"{h.deal_share:g}",
            f"{h.upsell:g}",
            f"{h.subscribe:g}",
            _mix(h.payments),
            f"{h.late:g}",
            f"{h.unpaid:g}",
        ]
        for name, h in HABITS.items()
    ]
    sources = [
        [name, f"{prior:g}", channel, f"{p:g}"]
        for name, (prior, channel, p) in DEAL_SOURCES.items()
    ]
    preference = [
        [
            band,
            *(f"{w[s]:g}" for s in ("budget", "mid", "premium")),
            "/".join(f"{x:g}" for x in PLAN_PREFERENCE[band]),
        ]
        for band, w in PREFERENCE.items()
    ]
    preference.append(
        ["aversion x price sensitivity", *(f"{AVERSION[s]:g}" for s in AVERSION), "-"]
    )
    kinds = [
        ["owns a machine", _mix(KINDS_OWNER)],
        ["no machine yet", _mix(KINDS_NEW)],
        ["organisation", _mix(KINDS_BUSINESS)],
    ]
    return {
        **cat.tables(),
        "habits": m._table(
            [
                "segment",
                "orders / month",
                "P(first order a machine)",
                "P(deal)",
                "upsell deals / month",
                "P(plan)",
                "payment mix",
                "P(invoice late)",
                "P(invoice unpaid)",
            ],
            habits,
        ),
        "sources": m._table(["lead source", "prior", "channel", "base win probability"], sources),
        "preference": m._table(
            ["income band", "budget", "mid", "premium", "plan Basic/Plus/Premium"], preference
        ),
        "kinds": m._table(["customer", "order kind mix"], kinds),
    }
