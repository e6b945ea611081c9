"""`audiences`: live membership of every audience, exact as events arrive and as time passes.

- `audience_defs`: the registry (name, version, rule AST and text, retired).
- `audience_histories`: each customer's own facts (profile changes, consents, orders with
  their returns and cancellations, plans, NPS answers, merge links) as one JSON document;
  `audience_events`: its events (payloads without their personal fields), one row per
  customer and page, written once. The birth date IS kept (age needs it):
  so this view opens the personal fields of the two events that carry it (registration and
  profile update; every other event comes with placeholders) and blanks it on
  `customer.forgotten`; a forgotten customer is in no audience.
- `audience_members`: who is in each audience now (rule version, since, the values and event
  positions behind the answer); `audience_changes`: every entry and exit, with the clock time
  it was seen, the log position that caused it (None when time alone did), values, positions.
- `audience_facts`, `audience_people`: the same facts typed, one row per event, field and
  derived fact, and whose group each customer counts in; the compiled path
  (`projections/audience_sql.py`, docs/audiences.md) aggregates them in SQL.

A page folds its events into the touched customers' facts (read once per page for customers
not cached), then evaluates every live audience for the customers whose answer may change
(a merged customer's facts count under the survivor, once), at the projector's `now`, in
dependency order (`member(x)` reads x's answer just computed). Each evaluated customer gets one
timer at the earliest time its answer can change with no new event (a window edge, a
birthday, a fact with a later business time): `on_timers` evaluates those customers then.
A new or changed definition is compiled to one SQL query per audience over the typed facts
(members, entries and exits, and each customer's timer moved to the new rule's edge if that is
earlier); a rule the compiler cannot express evaluates every customer in Python (the slow path).

Merges are applied as the log knows them now, for every T: the duplicate's whole history is
the survivor's (a merge corrects a duplicate; it does not start at its business time).

`backtest` counts a rule never defined at each time of a range, one compiled query per time;
for a rule the compiler cannot express it evaluates the same histories, each read once, jumping from one evaluation to its `next_change` (the answer cannot change
before it); a customer exists from its first fact's business time.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterable, Sequence
from datetime import date, datetime, timedelta
from decimal import Decimal
from functools import cache
from itertools import accumulate
from typing import Any
from uuid import UUID

import msgspec
from dateutil.relativedelta import relativedelta

from domain.audiences import events as aev
from domain.audiences.ast import RULE_DECODER, Rule, references
from domain.audiences.evaluate import (
    ConsentFact,
    CustomerHistory,
    Evaluation,
    EventFact,
    NpsFact,
    OrderFact,
    PlanFact,
    evaluator,
    field_getter,
)
from domain.audiences.state import Definition, dependency_order
from domain.customers import events as cev
from domain.envelope import Envelope
from domain.events import EVENTS
from domain.orders import events as oev
from domain.subscriptions import events as sev
from domain.surveys import events as suv
from projections.audience_sql import NotCompilable, answers, compile_rule, stored_fields
from projections.ports import ProjectionDB
from projections.projection import Index, Projection, Tables, Timer, _resolve

PROFILE = ("gender", "income_band", "kind", "stage", "source", "birth_date")
SKIPPED = ("audience.", "reminder.", "campaign.")  # nothing a rule reads about a customer


class ProfileFact(msgspec.Struct, frozen=True, array_like=True, gc=False):
    at: datetime
    position: int
    name: str
    value: str | None


class OrderRecord(msgspec.Struct, array_like=True, gc=False):
    """An order as placed, with the refunds and the cancellation that change its net worth."""

    at: datetime
    position: int
    total: Decimal
    refunds: list[tuple[datetime, Decimal]] = []
    cancelled_at: datetime | None = None


class _Core(msgspec.Struct, kw_only=True, gc=False):
    """A customer's facts but its events: small, rewritten whole when they change."""

    profile: list[ProfileFact] = []
    consents: list[ConsentFact] = []
    orders: dict[str, OrderRecord] = {}
    plans: list[PlanFact] = []
    nps: list[NpsFact] = []
    merged_into: UUID | None = None
    absorbed: list[UUID] = []
    forgotten: bool = False


class Facts(_Core, kw_only=True, gc=False):
    """One customer's own facts (not those of customers merged into it). Its events are kept
    apart (`audience_events`, one row per customer and page, written once); `born` is the
    business time of the earliest of them (not stored in the document)."""

    events: list[EventFact] = []
    born: datetime | None = None


class _StoredEvent(msgspec.Struct, frozen=True, array_like=True, gc=False):
    occurred_at: datetime
    position: int
    tag: str
    payload: msgspec.Raw


_enc = msgspec.json.Encoder(decimal_format="number")
_core_dec = msgspec.json.Decoder(_Core)
_events_dec = msgspec.json.Decoder(list[_StoredEvent])
_CORE_FIELDS = _Core.__struct_fields__
_values_dec = msgspec.json.Decoder(dict[str, Any])
_positions_dec = msgspec.json.Decoder(list[int])


@cache
def _payload_decoder(tag: str) -> msgspec.json.Decoder[Any]:
    spec = EVENTS.get(tag)
    assert spec is not None, tag
    return msgspec.json.Decoder(spec.cls)


def decode_facts(data: str | bytes) -> Facts:
    core = _core_dec.decode(data)
    return Facts(**{k: getattr(core, k) for k in _CORE_FIELDS})


def encode_core(f: Facts) -> str:
    return _enc.encode(_Core(**{k: getattr(f, k) for k in _CORE_FIELDS})).decode()


def decode_events(data: str | bytes) -> list[EventFact]:
    return [
        EventFact(e.occurred_at, e.position, e.tag, _payload_decoder(e.tag).decode(e.payload))
        for e in _events_dec.decode(data)
    ]


def read_facts(
    rows: Iterable[tuple[Any, ...]], event_rows: Iterable[tuple[Any, ...]], uuid: Any
) -> dict[UUID, Facts]:
    """Facts from rows of `audience_histories` and `audience_events` (in position order)."""
    out = {uuid(c): decode_facts(data) for c, data in rows}
    for c, data in event_rows:
        f = out.get(uuid(c))
        if f is not None:
            f.events.extend(decode_events(data))
    for f in out.values():
        f.born = min((e.occurred_at for e in f.events), default=None)
    return out


_TAGS: dict[type, str] = {s.cls: s.tag for s in EVENTS}


def _public(e: Envelope[Any]) -> Any:
    """The payload with its personal fields as placeholders (they are not kept here)."""
    spec = EVENTS.get(e.type)
    if spec is None or not spec.personal:
        return e.payload
    return msgspec.structs.replace(e.payload, **spec.placeholders)


def fold_event(f: Facts, e: Envelope[Any]) -> None:
    """Add one event of the customer to its facts (log order)."""
    p, at, pos = e.payload, e.occurred_at, e.position or 0
    if not f.forgotten:
        f.events.append(EventFact(at, pos, _TAGS[type(p)], _public(e)))
    match p:
        case cev.CustomerRegistered():
            birth = None if "birth_date" in e.forgotten or p.birth_date is None else p.birth_date
            values = {
                "gender": p.gender,
                "income_band": p.income_band,
                "kind": p.kind,
                "stage": p.stage,
                "source": p.source,
                "birth_date": birth.isoformat() if birth is not None and not f.forgotten else None,
            }
            f.profile.extend(ProfileFact(at, pos, k, v) for k, v in values.items())
        case cev.ProfileUpdated():
            for k in ("gender", "income_band"):
                if getattr(p, k) is not None:
                    f.profile.append(ProfileFact(at, pos, k, getattr(p, k)))
            if p.birth_date is not None and "birth_date" not in e.forgotten and not f.forgotten:
                f.profile.append(ProfileFact(at, pos, "birth_date", p.birth_date.isoformat()))
        case cev.StageChanged():
            f.profile.append(ProfileFact(at, pos, "stage", p.stage))
        case cev.ConsentGranted() | cev.ConsentWithdrawn():
            granted = isinstance(p, cev.ConsentGranted)
            f.consents.append(ConsentFact(at, pos, p.consent_channel, p.purpose, granted))
        case cev.CustomerMergedInto():
            f.merged_into = p.survivor_id
        case cev.CustomerUnmerged():
            f.merged_into = None
        case cev.CustomerAbsorbed():
            if p.merged_id not in f.absorbed:
                f.absorbed.append(p.merged_id)
        case cev.CustomerReleased():
            f.absorbed = [m for m in f.absorbed if m != p.merged_id]
        case cev.CustomerForgotten():
            f.forgotten = True
            f.profile = [x for x in f.profile if x.name != "birth_date"]
        case oev.OrderPlaced():
            f.orders[str(e.stream_id)] = OrderRecord(at, pos, p.total.amount)
        case oev.OrderReturned():
            order = f.orders.get(str(e.stream_id))
            if order is not None:
                order.refunds.append((at, p.refund.amount))
        case oev.OrderCancelled():
            order = f.orders.get(str(e.stream_id))
            if order is not None and order.cancelled_at is None:
                order.cancelled_at = at
        case sev.SubscriptionStarted():
            f.plans.append(PlanFact(at, pos, str(e.stream_id), p.plan))
        case sev.PlanChanged():
            f.plans.append(PlanFact(at, pos, str(e.stream_id), p.new_plan))
        case sev.SubscriptionCancelled():
            f.plans.append(PlanFact(p.effective_at, pos, str(e.stream_id), None))
        case suv.SurveyAnswered() if p.kind == "nps":
            f.nps.append(NpsFact(at, pos, p.score))


LINKS = (
    cev.CustomerMergedInto,
    cev.CustomerUnmerged,
    cev.CustomerAbsorbed,
    cev.CustomerReleased,
    cev.CustomerForgotten,
)
"""Events that change whose group a customer's facts count in."""
FACT_COLUMNS = ("customer_id", "position", "type", "field", "at", "num", "txt")


_ORDER_EVENTS = (oev.OrderPlaced, oev.OrderReturned, oev.OrderCancelled)


@cache
def _cells(tag: str) -> list[tuple[str, Any, bool]]:
    """(field, the evaluator's getter, kept in `num`) of the fields an event type keeps."""
    return [
        (name, field_getter(tag, name), s.column == "num") for name, s in stored_fields(tag).items()
    ]


TYPED_FACTS = {"postgresql"}
"""Dialects whose view keeps the typed fact rows (`audience_facts`, `audience_people`) that
the compiled define and backtest read. On SQLite, the embedded default, writing them tripled
the view's catch-up (1.2M rows and their index for the demo's 311k events) and its planner
took seconds on the compiled window joins; there a new definition and a backtest are
evaluated in Python from the customers' documents (`facts_complete` says the typed rows are
not there, so the compiled path steps aside by itself)."""


def fold_rows(c: UUID, f: Facts, e: Envelope[Any], rows: list[tuple[Any, ...]]) -> None:
    """Fold one event into the customer's facts (`fold_event`) and add to `rows` the rows
    of `audience_facts` it makes: the event (field ''), one per kept field with a value, and
    one per profile, consent, plan, NPS, order, refund or cancellation fact the fold made."""
    profile, consents, plans, nps = len(f.profile), len(f.consents), len(f.plans), len(f.nps)
    p = e.payload
    order = oid = None
    if isinstance(p, _ORDER_EVENTS):
        oid = str(e.stream_id)
        order = f.orders.get(oid)
    refunds, cancelled = (len(order.refunds), order.cancelled_at) if order else (0, None)
    kept = not f.forgotten
    fold_event(f, e)
    at, pos = e.occurred_at, e.position or 0
    if kept:
        ev = f.events[-1]
        if f.born is None or at < f.born:
            f.born = at
        tag, payload = ev.tag, ev.payload
        rows.append((c, pos, tag, "", at, None, None))
        for name, get, num in _cells(tag):
            v = get(payload)
            if v is None:
                continue
            if num:
                rows.append((c, pos, tag, name, at, float(v), None))
            else:
                text = v.isoformat() if isinstance(v, date) else str(v)
                rows.append((c, pos, tag, name, at, None, text))
    if len(f.profile) > profile:
        rows.extend(
            (c, x.position, "~profile", x.name, x.at, None, x.value) for x in f.profile[profile:]
        )
    if len(f.consents) > consents:
        rows.extend(
            (c, x.position, "~consent", x.channel, x.at, 1.0 if x.granted else 0.0, x.purpose)
            for x in f.consents[consents:]
        )
    if len(f.plans) > plans:
        rows.extend(
            (c, x.position, "~plan", x.subscription, x.at, None, x.plan) for x in f.plans[plans:]
        )
    if len(f.nps) > nps:
        rows.extend(
            (c, x.position, "~nps", "score", x.at, float(x.score), None) for x in f.nps[nps:]
        )
    now = None if oid is None else f.orders.get(oid)
    if now is not None:
        if isinstance(p, oev.OrderPlaced):
            rows.append((c, now.position, "~order", oid, now.at, float(now.total), None))
        rows.extend((c, pos, "~refund", oid, t, float(x), None) for t, x in now.refunds[refunds:])
        if cancelled is None and now.cancelled_at is not None:
            rows.append((c, pos, "~cancel", oid, now.cancelled_at, None, None))


def history_at(group: Sequence[Facts], at: datetime) -> tuple[CustomerHistory, datetime | None]:
    """The evaluator's history of a customer (`group[0]`, with the customers merged into it)
    at business time `at`, and the earliest later time a fact the evaluator cannot see
    (a profile change, a refund or cancellation) changes it."""
    own = group[0]
    edge: datetime | None = None

    def later(t: datetime) -> None:
        nonlocal edge
        if edge is None or t < edge:
            edge = t

    profile: dict[str, ProfileFact] = {}
    for x in own.profile:
        if x.at > at:
            later(x.at)
        elif (cur := profile.get(x.name)) is None or (x.at, x.position) > (cur.at, cur.position):
            profile[x.name] = x
    h = CustomerHistory(**{k: v.value for k, v in profile.items() if k != "birth_date"})
    birth = profile.get("birth_date")
    h.birth_date = date.fromisoformat(birth.value) if birth and birth.value else None
    for f in group:
        h.consents.extend(f.consents)
        h.events.extend(f.events)
        h.plans.extend(f.plans)
        h.nps.extend(f.nps)
        for o in f.orders.values():
            net = o.total
            if o.cancelled_at is not None:
                if o.cancelled_at <= at:
                    net = Decimal(0)
                else:
                    later(o.cancelled_at)
            if net:
                for t, refund in o.refunds:
                    if t <= at:
                        net -= refund
                    else:
                        later(t)
            h.orders.append(OrderFact(o.at, o.position, net))
    return h, edge


def evaluate_all(
    defs: Sequence[Definition], group: Sequence[Facts], at: datetime
) -> tuple[dict[str, Evaluation], datetime | None]:
    """Every audience (in dependency order) for one customer at `at`; the next change."""
    history, edge = history_at(group, at)
    results: dict[str, Evaluation] = {}
    answers: dict[str, bool] = {}
    for d in defs:
        r = evaluator(d.rule).evaluate(history, at, answers)
        results[d.name] = r
        answers[d.name] = r.member
        if r.next_change is not None and (edge is None or r.next_change < edge):
            edge = r.next_change
    return results, edge


class _Member(msgspec.Struct, frozen=True, array_like=True, gc=False):
    version: int
    since: datetime
    values: str
    positions: str


def _key(audience: str, customer: UUID) -> str:
    return f"{audience}/{customer}"


MEMBER_COLUMNS = ("key", "audience", "customer_id", "version", "since", "vals", "positions")
CHANGE_COLUMNS = (
    "audience",
    "customer_id",
    "version",
    "kind",
    "at",
    "position",
    "vals",
    "positions",
)


class Audiences(Projection):
    clock_dependent = frozenset({"audience_members", "audience_changes"})
    working = frozenset({"audience_events"})
    name = "audiences"
    version = 1
    # the birth date (age), blanked on customer.forgotten; no other personal field
    reads_personal = frozenset({"customer.registered", "customer.profile_updated"})
    handles = frozenset(
        s.tag for s in EVENTS if not s.tag.startswith(SKIPPED) or s.tag.startswith("audience.")
    )
    tables = {
        "audience_defs": (
            "name {text} PRIMARY KEY, version {int} NOT NULL, text {text} NOT NULL, "
            "rule {text} NOT NULL, retired {bool} NOT NULL, position {int} NOT NULL"
        ),
        "audience_histories": "customer_id {uuid} PRIMARY KEY, data {text} NOT NULL",
        "audience_events": (
            "customer_id {uuid} NOT NULL, position {int} NOT NULL, data {text} NOT NULL, "
            "PRIMARY KEY (customer_id, position)"
        ),
        "audience_members": (
            "key {text} PRIMARY KEY, audience {text} NOT NULL, customer_id {uuid} NOT NULL, "
            "version {int} NOT NULL, since {ts} NOT NULL, vals {text} NOT NULL, "
            "positions {text} NOT NULL"
        ),
        "audience_changes": (
            "audience {text} NOT NULL, customer_id {uuid} NOT NULL, version {int} NOT NULL, "
            "kind {text} NOT NULL, at {ts} NOT NULL, position {int}, vals {text} NOT NULL, "
            "positions {text} NOT NULL"
        ),
        # the same facts typed, for the SQL path (projections/audience_sql.py)
        "audience_facts": (
            "customer_id {uuid} NOT NULL, position {int} NOT NULL, type {text} NOT NULL, "
            "field {text} NOT NULL, at {ts} NOT NULL, num {real}, txt {text}"
        ),
        "audience_people": "customer_id {uuid} PRIMARY KEY, owner {uuid}, born {ts}",
    }
    indexes = (
        Index("audience", "audience_members", "audience"),
        Index("customer", "audience_members", "customer_id"),
        Index("customer", "audience_changes", "customer_id, audience"),
        # the one index of the typed facts: scans by type, field and time, the joins of an
        # event's field rows (same type, field and time), an order's refunds (field = order);
        # no query needs another, and each costs the catch-up time
        Index("scan", "audience_facts", "type, field, at"),
    )

    def __init__(self, cache: int = 200_000) -> None:
        self.capacity = cache
        self._facts: dict[UUID, Facts] = {}
        self._members: dict[UUID, dict[str, _Member]] = {}
        self._defs: dict[str, Definition] | None = None
        self._all_loaded = False
        self._at: tuple[int, int] | None = None

    def committed(self, generation: int, position: int) -> None:
        self._at = (generation, position)

    def forget_cache(self) -> None:
        self._facts, self._members, self._defs, self._all_loaded, self._at = (
            {},
            {},
            None,
            False,
            None,
        )

    # -- apply ----------------------------------------------------------------------------

    def apply(self, t: Tables, events: list[Envelope[Any]], now: datetime) -> None:
        if self._at != (t.generation, t.position) or len(self._facts) > self.capacity:
            self.forget_cache()
            # nothing applied yet (a new view or a rebuild): what this process folds from here
            # on is every customer there is, so a new definition needs no read of them all
            self._all_loaded = t.position == 0
        self._at = None  # until this page commits
        defs = self._load_defs(t)
        by_customer: dict[UUID, list[Envelope[Any]]] = {}
        changed_defs: dict[str, tuple[Definition, int]] = {}
        for e in events:
            p = e.payload
            if isinstance(p, aev.AUDIENCE_EVENTS):
                changed_defs[p.name] = (self._define(defs, p), e.position or 0)
            elif e.customer_id is not None:
                by_customer.setdefault(e.customer_id, []).append(e)
        touched = list(by_customer)
        self._load_facts(t, touched)
        before = {c: self._root(c) for c in touched}
        self._fold(t, by_customer, before)
        if changed_defs:
            t.replace_rows(
                "audience_defs",
                "name",
                ("name", "version", "text", "rule", "retired", "position"),
                [
                    (d.name, d.version, d.text, _enc.encode(d.rule).decode(), d.retired, pos)
                    for d, pos in changed_defs.values()
                ],
            )
            roots = {*touched, *before.values(), *(self._root(c) for c in touched)}
            if self._define_compiled(t, changed_defs, roots, now, position=events[-1].position):
                return
            self._load_all(t)
            affected: Iterable[UUID] = list(self._facts)
        else:
            if not any(not d.retired for d in defs.values()):
                return  # no live audience: nothing to evaluate
            cause = {c: by_customer[c][-1].position for c in touched}
            affected = {*touched, *before.values(), *(self._root(c) for c in touched)}
            self._evaluate(t, affected, now, cause)
            return
        last = events[-1].position
        self._evaluate(t, affected, now, dict.fromkeys(self._facts, last))

    def _fold(
        self, t: Tables, by_customer: dict[UUID, list[Envelope[Any]]], before: dict[UUID, UUID]
    ) -> None:
        """Fold the page into the customers' facts; write their documents, events, typed fact
        rows and (for new customers, earlier events, merges) their `audience_people` rows."""
        touched = list(by_customer)
        new_events = []
        typed = t.dialect.name in TYPED_FACTS
        fact_rows: list[tuple[Any, ...]] = []
        forgotten: list[UUID] = []
        people: set[UUID] = set()
        linked = False
        for c, mine in by_customer.items():
            f = self._facts[c]
            known, born = len(f.events), f.born
            for e in mine:
                if isinstance(e.payload, LINKS):
                    linked = True
                    if isinstance(e.payload, cev.CustomerForgotten):
                        forgotten.append(c)
                        fact_rows = [r for r in fact_rows if (r[0], r[3]) != (c, "birth_date")]
                if typed:
                    fold_rows(c, f, e, fact_rows)
                else:
                    fold_event(f, e)
            if len(f.events) > known:
                added = f.events[known:]
                new_events.append((c, added[-1].position, _enc.encode(added).decode()))
            if f.born != born:
                people.add(c)
        self._load_facts(t, touched)  # survivors named by this page's merges
        t.replace_rows(
            "audience_histories",
            "customer_id",
            ("customer_id", "data"),
            [(c, encode_core(self._facts[c])) for c in touched],
        )
        t.insert_many("audience_events", ("customer_id", "position", "data"), new_events)
        if not typed:
            return
        if forgotten:  # the birth date goes with the customer
            t.execute_in(
                "DELETE FROM {audience_facts} WHERE type = '~profile' AND field = 'birth_date' "
                "AND {in}",
                "customer_id",
                forgotten,
            )
        t.insert_many("audience_facts", FACT_COLUMNS, fact_rows)
        if linked:  # whose group each customer counts in may have changed
            roots = {*before.values(), *(self._root(c) for c in touched)}
            people.update(touched, roots, *(self._group_ids(r) for r in roots))
        t.replace_rows(
            "audience_people",
            "customer_id",
            ("customer_id", "owner", "born"),
            [
                (c, self._owner(c), self._facts[c].born)
                for c in people
                if c in by_customer or (c in self._facts and self._facts[c].born is not None)
            ],
        )

    def on_timers(self, t: Tables, timers: list[Timer], now: datetime) -> None:
        self._load_defs(t)
        customers = [UUID(x.key) for x in timers]
        self._load_facts(t, customers)
        self._evaluate(t, customers, now, {})

    # -- state ----------------------------------------------------------------------------

    def _define(self, defs: dict[str, Definition], p: Any) -> Definition:
        if isinstance(p, aev.AudienceRetired):
            old = defs[p.name]
            d = Definition(
                name=p.name, version=p.version, text=old.text, rule=old.rule, retired=True
            )
        else:
            d = Definition(name=p.name, version=p.version, text=p.text, rule=p.rule)
        defs[p.name] = d
        return d

    def _load_defs(self, t: Tables) -> dict[str, Definition]:
        if self._defs is None:
            self._defs = {
                n: Definition(
                    name=n,
                    version=int(v),
                    text=x,
                    rule=RULE_DECODER.decode(r),
                    retired=bool(ret),
                )
                for n, v, x, r, ret in t.fetch(
                    "SELECT name, version, text, rule, retired FROM {audience_defs}"
                )
            }
        return self._defs

    def _load_facts(self, t: Tables, customers: Iterable[UUID]) -> None:
        """The facts of these customers, of the customers merged into them and of those they
        were merged into (one read per step of a chain), and their member rows."""
        todo = [c for c in dict.fromkeys(customers) if c not in self._facts]
        d = t.dialect
        while todo and not self._all_loaded:
            for c in todo:
                self._facts[c] = Facts()
                self._members[c] = {}
            self._facts.update(
                read_facts(
                    t.fetch_in(
                        "SELECT customer_id, data FROM {audience_histories} WHERE {in}",
                        "customer_id",
                        todo,
                    ),
                    t.fetch_in(
                        "SELECT customer_id, data FROM {audience_events} WHERE {in} "
                        "ORDER BY customer_id, position",
                        "customer_id",
                        todo,
                    ),
                    d.uuid,
                )
            )
            self._read_members(t, todo)
            linked = (x for c in todo for x in self._links(c))
            todo = [c for c in dict.fromkeys(linked) if c not in self._facts]
        for c in todo:  # everything was loaded: a customer never seen has no facts
            self._facts[c], self._members[c] = Facts(), {}
        for c in list(customers):
            for x in self._links(c):
                if x not in self._facts:
                    self._load_facts(t, [x])

    def _links(self, c: UUID) -> list[UUID]:
        f = self._facts[c]
        return [*f.absorbed, *([f.merged_into] if f.merged_into else [])]

    def _read_members(self, t: Tables, customers: list[UUID] | None) -> None:
        d = t.dialect
        sql = (
            "SELECT audience, customer_id, version, since, vals, positions FROM {audience_members}"
        )
        rows = (
            t.fetch(sql)
            if customers is None
            else t.fetch_in(sql + " WHERE {in}", "customer_id", customers)
        )
        for a, cid, v, since, vals, pos in rows:
            c = d.uuid(cid)
            assert c is not None
            self._members.setdefault(c, {})[a] = _Member(int(v), d.ts(since) or since, vals, pos)

    def _load_all(self, t: Tables) -> None:
        """Every customer's facts and member rows (a definition changed: the slow path)."""
        if self._all_loaded:
            return
        d = t.dialect
        found = read_facts(
            t.fetch("SELECT customer_id, data FROM {audience_histories}"),
            t.fetch(
                "SELECT customer_id, data FROM {audience_events} ORDER BY customer_id, position"
            ),
            d.uuid,
        )
        for c, f in found.items():
            self._facts.setdefault(c, f)
        self._members = {c: {} for c in self._facts}
        self._read_members(t, None)
        self._all_loaded = True

    def _root(self, c: UUID) -> UUID:
        seen = {c}
        while (nxt := self._facts[c].merged_into) is not None and nxt in self._facts:
            if nxt in seen:
                break
            seen.add(nxt)
            c = nxt
        return c

    def _group(self, c: UUID) -> list[Facts]:
        return [self._facts[x] for x in self._group_ids(c)]

    def _group_ids(self, c: UUID) -> list[UUID]:
        """`c` and the customers merged into it (through chains), `c` first."""
        out, todo, seen = [], [c], set()
        while todo:
            x = todo.pop()
            if x in seen or x not in self._facts:
                continue
            seen.add(x)
            f = self._facts[x]
            if x != c and f.merged_into is None:
                continue  # released meanwhile
            out.append(x)
            todo.extend(f.absorbed)
        return out

    def _owner(self, c: UUID) -> UUID | None:
        """The customer whose group `c`'s facts count in (itself if it is a survivor), or
        None when they count nowhere (forgotten, or a merge link broken): as `_evaluate`."""
        r = self._root(c)
        f = self._facts[r]
        if f.merged_into is not None or f.forgotten or not f.events:
            return None
        return r if c in self._group_ids(r) else None

    # -- a new or changed definition: compiled to SQL -----------------------------------------

    def _define_compiled(
        self,
        t: Tables,
        changed: dict[str, tuple[Definition, int]],
        skip: set[UUID],
        now: datetime,
        *,
        position: int | None,
    ) -> bool:
        """Members of each changed audience (and of those reading it through `member(...)`)
        at `now` from one query each over the typed facts, written set-based; False (nothing
        written) if a rule holds what the compiler does not express or the facts are not
        complete. The page's own customers (`skip`) are evaluated in Python, all audiences."""
        assert self._defs is not None
        order = dependency_order(self._defs)
        live = {d.name: d.rule for d in order}
        names = set(changed)
        for d in order:  # referred audiences come first
            if references(d.rule) & names:
                names.add(d.name)
        try:
            queries = {
                d.name: compile_rule(d.rule, live, now, t.dialect.name)
                for d in order
                if d.name in names
            }
        except NotCompilable:
            return False
        if not facts_complete(t.fetch):
            return False
        if skip:
            self._evaluate(t, skip, now, dict.fromkeys(skip, position))
        d = t.dialect
        due = {
            k: d.ts(at)
            for k, at in t.tx.fetch(
                _resolve(
                    "SELECT key, due_at FROM {timers} WHERE projection = ?",
                    {"timers": d.qualify("crm_timers")},
                    d,
                ),
                (t.owner,),
            )
        }
        edges: dict[UUID, datetime] = {}

        def edge(c: UUID, at: datetime | None) -> None:
            if at is not None and c not in skip and (c not in edges or at < edges[c]):
                edges[c] = at

        for c, born in t.fetch(
            "SELECT owner, min(born) FROM {audience_people} WHERE owner IS NOT NULL "
            "GROUP BY owner HAVING min(born) > ?",
            (now,),
        ):
            edge(d.uuid(c), d.ts(born))  # type: ignore[arg-type]
        for name in sorted(names):
            q = queries.get(name)
            found = {} if q is None else answers(q, t.fetch(q.sql, q.params), now, d.ts)
            results = {d.uuid(c): a for c, a in found.items()}
            for c, a in results.items():
                edge(c, a.next_change)  # type: ignore[arg-type]
            self._write_members(t, self._defs[name], results, skip, now=now, position=position)
        for c, at in edges.items():
            old = due.get(str(c))
            if old is None or at < old:
                t.schedule(str(c), at)
        return True

    def _write_members(
        self,
        t: Tables,
        d: Definition,
        results: dict[Any, Any],
        skip: set[UUID],
        *,
        now: datetime,
        position: int | None,
    ) -> None:
        """Entries, exits and changed rows of one audience against its rows now."""
        dialect = t.dialect
        old = {
            dialect.uuid(c): _Member(int(v), dialect.ts(since) or since, vals, pos)
            for c, v, since, vals, pos in t.fetch(
                "SELECT customer_id, version, since, vals, positions FROM {audience_members} "
                "WHERE audience = ?",
                (d.name,),
            )
        }
        upsert: list[tuple[Any, ...]] = []
        gone: list[str] = []
        changes: list[tuple[Any, ...]] = []
        live = not d.retired
        for c, a in results.items():
            if c in skip or not a.member or not live:
                continue
            values = _enc.encode(a.values).decode()
            positions = _enc.encode(a.positions).decode()
            o = old.pop(c, None)
            if o is not None and (o.version, o.values, o.positions) == (
                d.version,
                values,
                positions,
            ):
                continue
            since = now if o is None else o.since
            m = _Member(d.version, since, values, positions)
            upsert.append((_key(d.name, c), d.name, c, d.version, since, values, positions))
            if o is None:
                changes.append((d.name, c, d.version, "entered", now, position, values, positions))
            if c in self._members:
                self._members[c][d.name] = m
        for c, o in old.items():
            if c in skip:
                continue
            gone.append(_key(d.name, c))
            changes.append((d.name, c, o.version, "exited", now, position, o.values, o.positions))
            if c in self._members:
                self._members[c].pop(d.name, None)
        t.execute_in("DELETE FROM {audience_members} WHERE {in}", "key", gone)
        t.replace_rows("audience_members", "key", MEMBER_COLUMNS, upsert)
        t.insert_many("audience_changes", CHANGE_COLUMNS, changes)

    # -- evaluation -----------------------------------------------------------------------

    def _evaluate(
        self, t: Tables, customers: Iterable[UUID], now: datetime, cause: dict[UUID, int | None]
    ) -> None:
        assert self._defs is not None
        order = dependency_order(self._defs)
        live = {d.name for d in order}
        upsert: list[tuple[Any, ...]] = []
        gone: list[str] = []
        changes: list[tuple[Any, ...]] = []
        for c in customers:
            f = self._facts.get(c)
            if f is None:
                continue
            mine = self._members.setdefault(c, {})
            results: dict[str, Evaluation] = {}
            if f.merged_into is None and not f.forgotten and f.events:
                group = self._group(c)
                born = _born(group)
                if born > now:  # no fact yet at now: not a customer yet (as `members --as-of`)
                    results, edge = {}, born
                else:
                    results, edge = evaluate_all(order, group, now)
                if edge is not None:
                    t.schedule(str(c), edge)
                else:
                    t.cancel(str(c))
            else:
                t.cancel(str(c))
            pos = cause.get(c)
            for name in [*mine]:
                r = results.get(name)
                if name not in live or r is None or not r.member:
                    old = mine.pop(name)
                    gone.append(_key(name, c))
                    changes.append(
                        (name, c, old.version, "exited", now, pos, old.values, old.positions)
                    )
            for d in order:
                r = results.get(d.name)
                if r is None or not r.member:
                    continue
                values = _enc.encode(r.values).decode()
                positions = _enc.encode(r.positions).decode()
                old = mine.get(d.name)
                if old is not None and (old.version, old.values, old.positions) == (
                    d.version,
                    values,
                    positions,
                ):
                    continue
                since = now if old is None else old.since
                mine[d.name] = m = _Member(d.version, since, values, positions)
                upsert.append((_key(d.name, c), d.name, c, m.version, since, values, positions))
                if old is None:
                    changes.append((d.name, c, d.version, "entered", now, pos, values, positions))
        t.execute_in("DELETE FROM {audience_members} WHERE {in}", "key", gone)
        t.replace_rows("audience_members", "key", MEMBER_COLUMNS, upsert)
        t.insert_many("audience_changes", CHANGE_COLUMNS, changes)


# -- queries ----------------------------------------------------------------------------


class AudienceRow(msgspec.Struct, frozen=True, kw_only=True):
    name: str
    version: int
    rule: str
    size: int
    retired: bool


class MemberRow(msgspec.Struct, frozen=True, kw_only=True):
    customer_id: UUID
    version: int
    since: datetime | None
    values: dict[str, Any]
    positions: list[int]


class EventRef(msgspec.Struct, frozen=True, kw_only=True):
    position: int
    type: str
    occurred_at: datetime


class Explanation(msgspec.Struct, frozen=True, kw_only=True):
    """Why a customer is in or out of an audience at `at`: the rule, the values it looked at
    and the events behind them. `customer_id` is the customer counted (a merged customer's
    survivor)."""

    audience: str
    customer_id: UUID
    member: bool
    version: int
    rule: str
    at: datetime
    values: dict[str, Any]
    events: list[EventRef]
    next_change: datetime | None


def facts_complete(fetch: Any) -> bool:
    """Whether every customer's facts are in the typed tables (a store whose view was built
    before they existed has them empty until `crm projections rebuild audiences`)."""
    ((histories, people),) = fetch(
        "SELECT (SELECT count(*) FROM {audience_histories}), "
        "(SELECT count(*) FROM {audience_people})"
    )
    return int(histories) == int(people)


def _sql(db: ProjectionDB, template: str) -> str:
    d = db.dialect
    names = {t: d.qualify(t) for t in Audiences.tables}
    return _resolve(template, names, d)


def _definitions(db: ProjectionDB) -> dict[str, Definition]:
    return {
        n: Definition(
            name=n, version=int(v), text=x, rule=RULE_DECODER.decode(r), retired=bool(ret)
        )
        for n, v, x, r, ret in db.fetch(
            _sql(db, "SELECT name, version, text, rule, retired FROM {audience_defs}")
        )
    }


def _live(db: ProjectionDB, name: str) -> dict[str, Definition]:
    from domain.audiences.errors import AudienceNotFound, AudienceRetired

    defs = _definitions(db)
    if name not in defs:
        raise AudienceNotFound(name)
    if defs[name].retired:
        raise AudienceRetired(name)
    return defs


def _all_facts(db: ProjectionDB) -> dict[UUID, Facts]:
    return read_facts(
        db.fetch(_sql(db, "SELECT customer_id, data FROM {audience_histories}")),
        db.fetch(
            _sql(
                db,
                "SELECT customer_id, data FROM {audience_events} ORDER BY customer_id, position",
            )
        ),
        db.dialect.uuid,
    )


def _facts_around(db: ProjectionDB, customer_id: UUID) -> dict[UUID, Facts]:
    """Every customer's core facts (small), with the events of only `customer_id`'s merge
    group (its survivor and the customers merged into that): enough to explain one."""
    d = db.dialect
    facts = read_facts(
        db.fetch(_sql(db, "SELECT customer_id, data FROM {audience_histories}")), (), d.uuid
    )
    if customer_id not in facts:
        return facts
    p = _projection_with(facts)
    group = [id(f) for f in p._group(p._root(customer_id))]
    wanted = [c for c, f in facts.items() if id(f) in group]
    if not wanted:
        return facts
    test, as_list = d.any_of("customer_id", len(wanted))
    rows = db.fetch(
        _sql(
            db,
            f"SELECT customer_id, data FROM {{audience_events}} WHERE {test} "
            "ORDER BY customer_id, position",
        ),
        [wanted] if as_list else wanted,
    )
    for c, data in rows:
        facts[d.uuid(c)].events.extend(decode_events(data))  # type: ignore[index]
    return facts


def _needed(defs: dict[str, Definition], name: str) -> list[Definition]:
    """`name` and the audiences it refers to, in dependency order."""
    from domain.audiences.ast import references

    want, todo = set(), [name]
    while todo:
        x = todo.pop()
        if x not in want:
            want.add(x)
            todo.extend(references(defs[x].rule))
    return [d for d in dependency_order(defs) if d.name in want]


def _projection_with(facts: dict[UUID, Facts]) -> Audiences:
    p = Audiences()
    p._facts = facts
    return p


def members(
    db: ProjectionDB, name: str, *, now: datetime, as_of: datetime | None = None
) -> list[MemberRow]:
    """The audience's members, by customer id: the live rows, or (`as_of`) evaluated from the
    customers' histories at that business time (merges as the log knows them now)."""
    defs = _live(db, name)
    if as_of is None or as_of == now:
        rows = db.fetch(
            _sql(
                db,
                "SELECT customer_id, version, since, vals, positions FROM {audience_members} "
                "WHERE audience = ? ORDER BY customer_id",
            ),
            (name,),
        )
        d = db.dialect
        return sorted(
            (
                MemberRow(
                    customer_id=d.uuid(c),  # type: ignore[arg-type]
                    version=int(v),
                    since=d.ts(s),
                    values=_values_dec.decode(vals),
                    positions=_positions_dec.decode(pos),
                )
                for c, v, s, vals, pos in rows
            ),
            key=lambda m: m.customer_id,
        )
    order = _needed(defs, name)
    p = _projection_with(_all_facts(db))
    out = []
    for c, f in p._facts.items():
        if f.merged_into is not None or f.forgotten or not f.events:
            continue
        group = p._group(c)
        if _born(group) > as_of:
            continue  # no fact of the customer yet at as_of: not a customer then
        results, _ = evaluate_all(order, group, as_of)
        r = results[name]
        if r.member:
            out.append(
                MemberRow(
                    customer_id=c,
                    version=defs[name].version,
                    since=None,
                    values=r.values,
                    positions=r.positions,
                )
            )
    return sorted(out, key=lambda m: m.customer_id)


def explain(db: ProjectionDB, name: str, customer_id: UUID, *, now: datetime) -> Explanation:
    """In or out at `now`, and why: the values of the rule's expressions and the events behind
    them (a merged customer is explained as its survivor)."""
    defs = _live(db, name)
    p = _projection_with(_facts_around(db, customer_id))
    c = customer_id if customer_id in p._facts else None
    if c is None:
        p._facts[customer_id] = Facts()
        c = customer_id
    c = p._root(c)
    f = p._facts[c]
    group = p._group(c)
    if f.forgotten or not f.events or _born(group) > now:
        results: dict[str, Evaluation] = {}
    else:
        results, _ = evaluate_all(_needed(defs, name), group, now)
    r = results.get(name) or Evaluation(member=False, values={}, positions=[], next_change=None)
    facts = {e.position: e for g in group for e in g.events}
    return Explanation(
        audience=name,
        customer_id=c,
        member=r.member,
        version=defs[name].version,
        rule=defs[name].text,
        at=now,
        values=r.values,
        events=[
            EventRef(position=x, type=facts[x].tag, occurred_at=facts[x].occurred_at)
            for x in r.positions
            if x in facts
        ],
        next_change=r.next_change,
    )


def audiences_list(db: ProjectionDB) -> list[AudienceRow]:
    sizes = dict(
        db.fetch(_sql(db, "SELECT audience, count(*) FROM {audience_members} GROUP BY audience"))
    )
    return [
        AudienceRow(
            name=d.name,
            version=d.version,
            rule=d.text,
            size=int(sizes.get(d.name, 0)),
            retired=d.retired,
        )
        for d in sorted(_definitions(db).values(), key=lambda d: d.name)
    ]


def changes(db: ProjectionDB, name: str, customer_id: UUID | None = None) -> list[tuple[Any, ...]]:
    """Entries and exits of an audience (of one customer if given), in the order seen."""
    sql = (
        "SELECT customer_id, version, kind, at, position FROM {audience_changes} WHERE audience = ?"
    )
    params: list[object] = [name]
    if customer_id is not None:
        sql += " AND customer_id = ?"
        params.append(customer_id)
    d = db.dialect
    return [
        (d.uuid(c), int(v), k, d.ts(at), None if pos is None else int(pos))
        for c, v, k, at, pos in db.fetch(_sql(db, sql), params)
    ]


def rule_of(db: ProjectionDB, name: str) -> Rule:
    return _live(db, name)[name].rule


# -- backtest ---------------------------------------------------------------------------


class BacktestPoint(msgspec.Struct, frozen=True, kw_only=True):
    at: datetime
    size: int


Step = timedelta | relativedelta
BACKTEST = "\x00backtest"  # the name the rule runs under: no audience can have it


def _born(group: Sequence[Facts]) -> datetime:
    """The business time of a customer's first fact (with those merged into it): before it
    the customer does not exist, whatever `not ...` rules would say of no history."""
    return min(e.occurred_at for g in group for e in g.events)


def backtest_times(start: datetime, end: datetime, every: Step) -> list[datetime]:
    """`start`, `start + every`, ... up to `end` (each counted from `start`, so a month step
    from the 31st keeps to month ends rather than drifting)."""
    if start.tzinfo is None or end.tzinfo is None:
        raise ValueError("backtest times need a time zone; give UTC")
    if start + every <= start:
        raise ValueError("the step must move forward")
    out, i = [], 0
    while (t := start + every * i) <= end:
        out.append(t)
        i += 1
    return out


def backtest_compiled(
    db: ProjectionDB, rule: Rule, live: dict[str, Rule], times: Sequence[datetime]
) -> list[int] | None:
    """The member count at each time, one compiled query per time; None if the rule holds
    what the compiler does not express or the typed facts are not complete."""

    def fetch(template: str, params: Sequence[object] = ()) -> list[tuple[Any, ...]]:
        return db.fetch(_sql(db, template), params)

    try:
        queries = [compile_rule(rule, live, t, db.dialect.name) for t in times]
    except NotCompilable:
        return None
    if not facts_complete(fetch):
        return None
    return [int(fetch(q.count_sql, q.count_params)[0][0]) for q in queries]


def backtest(
    db: ProjectionDB,
    rule: Rule | str,
    *,
    start: datetime,
    end: datetime,
    every: Step,
    compiled: bool = True,
) -> list[BacktestPoint]:
    """The size over time of a rule never defined, from the histories alone: at each T from
    `start` to `end` by `every`, how many customers it selects at business time T (only facts
    with occurred_at <= T; a customer with none yet does not exist; merged customers count
    once as their survivor, as the log knows the merge now; forgotten customers never).
    `member(x)` reads the defined audience x, evaluated at T too. Each customer's history is
    read once; between T and the evaluation's `next_change` the answer cannot change, so the
    times before it take the same answer without evaluating."""
    from domain.audiences.errors import UnknownAudience
    from domain.audiences.parse import parse_rule

    parsed = parse_rule(rule) if isinstance(rule, str) else rule
    evaluator(parsed)  # checks a decoded rule against the vocabulary
    defs = {n: d for n, d in _definitions(db).items() if not d.retired}
    for ref in sorted(references(parsed)):
        if ref not in defs:
            raise UnknownAudience(ref, "backtest")
    times = backtest_times(start, end, every)
    live = {n: d.rule for n, d in defs.items()}
    sizes = backtest_compiled(db, parsed, live, times) if compiled else None
    if sizes is not None:
        return [BacktestPoint(at=t, size=n) for t, n in zip(times, sizes, strict=True)]
    defs[BACKTEST] = Definition(name=BACKTEST, version=0, text="", rule=parsed)
    order = _needed(defs, BACKTEST)
    entered = [0] * (len(times) + 1)  # +1 at the first time of a run, -1 after its last
    p = _projection_with(_all_facts(db))
    for c, f in p._facts.items():
        if f.merged_into is not None or f.forgotten or not f.events:
            continue
        group = p._group(c)
        i = bisect_left(times, _born(group))
        while i < len(times):
            results, edge = evaluate_all(order, group, times[i])
            j = len(times) if edge is None else max(i + 1, bisect_left(times, edge))
            if results[BACKTEST].member:
                entered[i] += 1
                entered[j] -= 1
            i = j
    return [BacktestPoint(at=t, size=s) for t, s in zip(times, accumulate(entered), strict=False)]
