"""`retention`: where customers come from, who orders again, who drifts away, what they are
worth, as facts at business time and a report over them as of any date.

Each fact row carries its business time, so the report takes the events with
`occurred_at <= T` (DESIGN, "Time") with a `WHERE ... <= T` per table:
- `retention_customers`: acquisition (registration time and source), the survivor now;
- `retention_contacts`: a customer's earliest interaction (time, channel). Interactions arrive
  late, so the row keeps the earliest known: the first contact as of T is that row when it is
  at or before T, and there was none otherwise;
- `retention_merges`: merges and unmerges at business time (a merged customer's history
  belongs to its survivor);
- `retention_orders`, `retention_refunds`: each order's customer, time, total, net after
  returns and cancellation now; each refund at its own time (the net as of T);
- `retention_terms`: subscription terms (start, end, monthly revenue), each closed by a plan
  change or a cancellation that became known at `closed_at`.

A batch folds its events in memory and writes each table once (COPY on PostgreSQL, one
`executemany` per kind of update).
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from itertools import pairwise
from typing import Any
from uuid import UUID

import msgspec
from dateutil.relativedelta import relativedelta

from domain.customers import events as cev
from domain.envelope import Envelope
from domain.interactions.events import CHANNEL_OF
from domain.money import CENT, Money
from domain.orders import events as oev
from domain.subscriptions import events as sev
from domain.subscriptions.state import PlanTerm, SubscriptionState, monthly_revenue
from projections.ports import ProjectionDB
from projections.projection import Index, Projection, Tables, _resolve

_EVENTS = (
    cev.CustomerRegistered,
    cev.CustomerMergedInto,
    cev.CustomerUnmerged,
    oev.OrderPlaced,
    oev.OrderReturned,
    oev.OrderCancelled,
    sev.SubscriptionStarted,
    sev.PlanChanged,
    sev.SubscriptionCancelled,
    *CHANNEL_OF,
)
CUSTOMER_COLUMNS = ("customer_id", "acquired_at", "source", "merged_into", "position")
ORDER_COLUMNS = (
    "order_id",
    "customer_id",
    "placed_at",
    "currency",
    "total",
    "refunded",
    "net",
    "cancelled_at",
    "position",
)
TERM_COLUMNS = (
    "position",
    "subscription_id",
    "customer_id",
    "plan",
    "from_at",
    "monthly",
    "currency",
    "closed_at",
    "to_at",
)
_UPSERT_CONTACT = (
    "INSERT INTO {retention_contacts} AS c (customer_id, first_at, channel, position) "
    "VALUES (?, ?, ?, ?) ON CONFLICT (customer_id) DO UPDATE SET first_at = excluded.first_at, "
    "channel = excluded.channel, position = excluded.position "
    "WHERE excluded.first_at < c.first_at"
)


def monthly(price: Money, period: sev.Period, at: datetime) -> Money:
    """The domain's monthly revenue of a plan at this price (a yearly price counts 1/12)."""
    term = PlanTerm(plan="", price=price, period=period, from_at=at)
    return monthly_revenue(SubscriptionState(subscription_id=UUID(int=0), terms=(term,)), at)


class Retention(Projection):
    name = "retention"
    version = 1
    reads_personal = False
    handles = frozenset(str(cls.__struct_config__.tag) for cls in _EVENTS)
    tables = {
        "retention_customers": (
            "customer_id {uuid} PRIMARY KEY, acquired_at {ts} NOT NULL, source {text} NOT NULL, "
            "merged_into {uuid}, position {int} NOT NULL"
        ),
        "retention_contacts": (
            "customer_id {uuid} PRIMARY KEY, first_at {ts} NOT NULL, channel {text} NOT NULL, "
            "position {int} NOT NULL"
        ),
        "retention_merges": (
            "position {int} PRIMARY KEY, merged_id {uuid} NOT NULL, survivor_id {uuid}, "
            "at {ts} NOT NULL"
        ),
        "retention_orders": (
            "order_id {uuid} PRIMARY KEY, customer_id {uuid} NOT NULL, placed_at {ts} NOT NULL, "
            "currency {text} NOT NULL, total {text} NOT NULL, refunded {text} NOT NULL, "
            "net {text} NOT NULL, cancelled_at {ts}, position {int} NOT NULL"
        ),
        "retention_refunds": (
            "position {int} PRIMARY KEY, order_id {uuid} NOT NULL, at {ts} NOT NULL, "
            "amount {text} NOT NULL"
        ),
        "retention_terms": (
            "position {int} PRIMARY KEY, subscription_id {uuid} NOT NULL, customer_id {uuid}, "
            "plan {text} NOT NULL, from_at {ts} NOT NULL, monthly {text} NOT NULL, "
            "currency {text} NOT NULL, closed_at {ts}, to_at {ts}"
        ),
    }
    indexes = (
        Index("customer", "retention_orders", "customer_id"),
        Index("placed", "retention_orders", "placed_at"),
        Index("order", "retention_refunds", "order_id"),
        Index("subscription", "retention_terms", "subscription_id"),
    )

    def apply(self, t: Tables, events: list[Envelope[Any]], now: datetime) -> None:
        batch = _Batch()
        for e in events:
            batch.add(e)
        batch.write(t)


class _Batch:
    """One page of events folded in memory: new rows, and updates of rows stored before."""

    def __init__(self) -> None:
        self.customers: dict[UUID, dict[str, Any]] = {}
        self.merged_into: list[tuple[UUID | None, UUID]] = []  # of customers stored before
        self.merges: list[Sequence[object]] = []
        self.contacts: dict[UUID, tuple[datetime, int, str]] = {}
        self.orders: dict[UUID, dict[str, Any]] = {}
        self.refunds: list[Sequence[object]] = []
        self.refunded: dict[UUID, Decimal] = defaultdict(Decimal)  # of orders stored before
        self.cancelled: list[tuple[datetime, UUID]] = []  # of orders stored before
        self.terms: list[dict[str, Any]] = []
        self.open: dict[UUID, dict[str, Any]] = {}  # subscription -> its open term of this page
        self.closes: list[tuple[datetime, datetime, UUID]] = []  # of terms stored before

    def add(self, e: Envelope[Any]) -> None:
        p, at, sid = e.payload, e.occurred_at, e.stream_id
        channel = CHANNEL_OF.get(p.__class__)
        if channel is not None:
            if e.customer_id is not None:
                seen = self.contacts.get(e.customer_id)
                if seen is None or (at, e.position) < seen[:2]:
                    self.contacts[e.customer_id] = (at, e.position, e.channel or channel)
            return
        match p:
            case cev.CustomerRegistered():
                self.customers[sid] = {
                    "customer_id": sid,
                    "acquired_at": at,
                    "source": p.source,
                    "merged_into": None,
                    "position": e.position,
                }
            case cev.CustomerMergedInto() | cev.CustomerUnmerged():
                survivor = p.survivor_id if isinstance(p, cev.CustomerMergedInto) else None
                self.merges.append((e.position, sid, survivor, at))
                if sid in self.customers:
                    self.customers[sid]["merged_into"] = survivor
                else:
                    self.merged_into.append((survivor, sid))
            case oev.OrderPlaced():
                self.orders[sid] = {
                    "order_id": sid,
                    "customer_id": p.customer_id,
                    "placed_at": at,
                    "currency": p.total.currency,
                    "total": p.total.amount,
                    "refunded": Decimal(0),
                    "cancelled_at": None,
                    "position": e.position,
                }
            case oev.OrderReturned():
                self.refunds.append((e.position, sid, at, str(p.refund.amount)))
                if sid in self.orders:
                    self.orders[sid]["refunded"] += p.refund.amount
                else:
                    self.refunded[sid] += p.refund.amount
            case oev.OrderCancelled():
                if sid in self.orders:
                    self.orders[sid]["cancelled_at"] = at
                else:
                    self.cancelled.append((at, sid))
            case sev.SubscriptionStarted():
                self._open(e, p.customer_id, p.plan, p.price, p.period)
            case sev.PlanChanged():
                customer = self._close(sid, at, at) or e.customer_id
                self._open(e, customer, p.new_plan, p.new_price, p.new_period)
            case sev.SubscriptionCancelled():
                self._close(sid, at, p.effective_at)

    def _open(
        self,
        e: Envelope[Any],
        customer: UUID | None,
        plan: str,
        price: Money,
        period: sev.Period,
    ) -> None:
        term = {
            "position": e.position,
            "subscription_id": e.stream_id,
            "customer_id": customer,
            "plan": plan,
            "from_at": e.occurred_at,
            "monthly": str(monthly(price, period, e.occurred_at).amount),
            "currency": price.currency,
            "closed_at": None,
            "to_at": None,
        }
        self.terms.append(term)
        self.open[e.stream_id] = term

    def _close(self, subscription: UUID, at: datetime, end: datetime) -> UUID | None:
        """Close the running term; its customer when it is one of this page."""
        term = self.open.pop(subscription, None)
        if term is None:
            self.closes.append((at, end, subscription))
            return None
        term["closed_at"], term["to_at"] = at, end
        customer: UUID | None = term["customer_id"]
        return customer

    def write(self, t: Tables) -> None:
        t.insert_many(
            "retention_customers",
            CUSTOMER_COLUMNS,
            [[r[c] for c in CUSTOMER_COLUMNS] for r in self.customers.values()],
        )
        t.executemany(
            "UPDATE {retention_customers} SET merged_into = ? WHERE customer_id = ?",
            self.merged_into,
        )
        t.insert_many(
            "retention_merges", ("position", "merged_id", "survivor_id", "at"), self.merges
        )
        t.executemany(
            _UPSERT_CONTACT,
            [(cid, at, channel, pos) for cid, (at, pos, channel) in self.contacts.items()],
        )
        for r in self.orders.values():
            r["net"] = str(r["total"] - r["refunded"])
            r["total"], r["refunded"] = str(r["total"]), str(r["refunded"])
        t.insert_many(
            "retention_orders",
            ORDER_COLUMNS,
            [[r[c] for c in ORDER_COLUMNS] for r in self.orders.values()],
        )
        t.insert_many("retention_refunds", ("position", "order_id", "at", "amount"), self.refunds)
        if self.refunded:
            stored = t.fetch_in(
                "SELECT order_id, total, refunded FROM {retention_orders} WHERE {in}",
                "order_id",
                list(self.refunded),
            )
            updates = []
            for order_id, total, refunded in stored:
                oid = t.dialect.uuid(order_id)
                assert oid is not None
                now_refunded = Decimal(refunded) + self.refunded[oid]
                updates.append((str(now_refunded), str(Decimal(total) - now_refunded), oid))
            t.executemany(
                "UPDATE {retention_orders} SET refunded = ?, net = ? WHERE order_id = ?", updates
            )
        t.executemany(
            "UPDATE {retention_orders} SET cancelled_at = ? WHERE order_id = ?", self.cancelled
        )
        t.executemany(
            "UPDATE {retention_terms} SET closed_at = ?, to_at = ? "
            "WHERE subscription_id = ? AND closed_at IS NULL",
            self.closes,
        )
        t.insert_many(
            "retention_terms", TERM_COLUMNS, [[r[c] for c in TERM_COLUMNS] for r in self.terms]
        )


# -- the report -------------------------------------------------------------------------


class Acquired(msgspec.Struct, frozen=True, kw_only=True):
    """Customers acquired in a calendar month (UTC, `YYYY-MM`) from one source or channel."""

    key: str
    month: str
    customers: int


class Cohort(msgspec.Struct, frozen=True, kw_only=True):
    """Customers whose first order fell in `month`; `retained[k]` of them ordered in the k-th
    calendar month after it (k = 0 is the first month itself: everyone), up to the as-of
    month; `shares[k]` is `retained[k] / customers`."""

    month: str
    customers: int
    retained: list[int]
    shares: list[float]


class RepeatRate(msgspec.Struct, frozen=True, kw_only=True):
    buyers: int  # customers with at least one order
    repeat_buyers: int  # ... with at least two
    rate: float


class Inactive(msgspec.Struct, frozen=True, kw_only=True):
    customer_id: UUID
    last_order_at: datetime
    days_since: int


class WonBack(msgspec.Struct, frozen=True, kw_only=True):
    """A customer who ordered again after being churned; the latest such return."""

    customer_id: UUID
    times: int
    churned_at: datetime  # the last order before the gap plus `inactive_days`
    won_back_at: datetime  # the order that ended the gap


class CustomerValue(msgspec.Struct, frozen=True, kw_only=True):
    customer_id: UUID
    currency: str
    orders: int
    order_net: Decimal
    subscription_revenue: Decimal
    clv: Decimal
    cohort: str | None
    source: str | None


class GroupValue(msgspec.Struct, frozen=True, kw_only=True):
    """The customers of a cohort or source and their lifetime value in one currency."""

    key: str
    currency: str
    customers: int
    total: Decimal
    average: Decimal


class RetentionReport(msgspec.Struct, frozen=True, kw_only=True):
    as_of: datetime
    inactive_days: int
    at_risk_days: int
    acquisition_by_source: list[Acquired]
    acquisition_by_channel: list[Acquired]
    cohorts: list[Cohort]
    repeat: RepeatRate
    at_risk: list[Inactive]
    churned: list[Inactive]
    won_back_count: int
    won_back: list[WonBack]
    customer_value: list[CustomerValue]
    value_by_cohort: list[GroupValue]
    value_by_source: list[GroupValue]


class _Order(msgspec.Struct):
    customer: UUID
    at: datetime
    position: int
    currency: str
    net: Decimal


class _Term(msgspec.Struct):
    subscription: UUID
    customer: UUID | None
    start: datetime
    monthly: Decimal
    currency: str
    end: datetime | None  # the end of service, when known as of the report's date


def month_of(at: datetime) -> str:
    u = at.astimezone(UTC)
    return f"{u.year:04d}-{u.month:02d}"


def _month_index(at: datetime) -> int:
    u = at.astimezone(UTC)
    return u.year * 12 + u.month - 1


def charged_months(start: datetime, end: datetime | None, at: datetime) -> int:
    """Months of service charged by `at`: one at `start + k months` (k = 0, 1, ...) for each
    such time at or before `at` and before the end of service."""
    n = 0
    while True:
        due = start + relativedelta(months=n)
        if due > at or (end is not None and due >= end):
            return n
        n += 1


def retention_report(
    db: ProjectionDB,
    *,
    now: datetime | None = None,
    as_of: datetime | None = None,
    inactive_days: int = 180,
    at_risk_days: int = 90,
) -> RetentionReport:
    """Retention as known at `as_of` (business time), or at `now` (the engine's clock).

    Only facts with `occurred_at <= as_of` count; a merged customer counts as its survivor
    (merges in force at that date), with the earliest registration of the family as its
    acquisition and its earliest interaction as its first channel. An order counts when
    placed and not cancelled by the date; refunds by the date reduce its net.
    - Churned: the last order is at least `inactive_days` old (no order in the half-open
      window `(T - inactive_days, T]`); at risk: at least `at_risk_days` old but not churned.
    - Won back: two consecutive orders at least `inactive_days` apart (churned by the rule
      when the second came).
    - Customer lifetime value (CLV), per customer and currency: the net spend to date (order
      totals minus refunds) plus subscription revenue to date (each term's monthly revenue,
      a yearly price counting 1/12, once per started month of service up to the date),
      rounded to the cent. Per cohort and source: the total over the group's customers and
      its average over all of them (spenders or not)."""
    at = as_of or now
    if at is None:
        raise ValueError("retention_report needs `as_of` or the clock's `now`")
    if at.tzinfo is None:  # naive means UTC, as for business time everywhere
        at = at.replace(tzinfo=UTC)
    if not 0 < at_risk_days <= inactive_days:
        raise ValueError("need 0 < at_risk_days <= inactive_days")
    facts = _Facts(db, at)
    root = facts.survivors()
    acquired = _earliest(root, facts.customers)
    first_contact = _earliest(root, facts.contacts)
    by_source: Counter[tuple[str, str]] = Counter()
    by_channel: Counter[tuple[str, str]] = Counter()
    for r, (acquired_at, _, source) in acquired.items():
        month = month_of(acquired_at)
        by_source[(source, month)] += 1
        contact = first_contact.get(r)
        by_channel[(contact[2] if contact else "none", month)] += 1

    orders: dict[UUID, list[_Order]] = defaultdict(list)
    for o in facts.orders:
        orders[root(o.customer)].append(o)
    for history in orders.values():
        history.sort(key=lambda o: (o.at, o.position))
    members: dict[str, list[UUID]] = defaultdict(list)
    for r, history in orders.items():
        members[month_of(history[0].at)].append(r)
    buyers = len(orders)
    repeaters = sum(1 for h in orders.values() if len(h) >= 2)
    at_risk, churned, won_back = _activity(orders, at, inactive_days, at_risk_days)

    subscriptions: dict[tuple[UUID, str], Decimal] = defaultdict(Decimal)
    for term in facts.terms:
        if term.customer is not None:
            months = charged_months(term.start, term.end, at)
            subscriptions[(root(term.customer), term.currency)] += term.monthly * months
    values = _values(orders, subscriptions, acquired)
    sources: dict[str, set[UUID]] = defaultdict(set)
    for r, (_, _, source) in acquired.items():
        sources[source].add(r)
    for v in values:
        if v.customer_id not in acquired:
            sources["unknown"].add(v.customer_id)
    return RetentionReport(
        as_of=at,
        inactive_days=inactive_days,
        at_risk_days=at_risk_days,
        acquisition_by_source=[
            Acquired(key=k, month=m, customers=n) for (k, m), n in sorted(by_source.items())
        ],
        acquisition_by_channel=[
            Acquired(key=k, month=m, customers=n) for (k, m), n in sorted(by_channel.items())
        ],
        cohorts=_cohorts(members, orders, at),
        repeat=RepeatRate(
            buyers=buyers, repeat_buyers=repeaters, rate=repeaters / buyers if buyers else 0.0
        ),
        at_risk=at_risk,
        churned=churned,
        won_back_count=len(won_back),
        won_back=won_back,
        customer_value=values,
        value_by_cohort=_group_values(members, values),
        value_by_source=_group_values(sources, values),
    )


def _earliest(
    root: Callable[[UUID], UUID], rows: Sequence[tuple[UUID, datetime, str, int]]
) -> dict[UUID, tuple[datetime, int, str]]:
    """Per survivor, the earliest (time, position, label) of its family's rows."""
    found: dict[UUID, tuple[datetime, int, str]] = {}
    for cid, at, label, position in rows:
        r, mine = root(cid), (at, position, label)
        if r not in found or mine < found[r]:
            found[r] = mine
    return found


def _cohorts(
    members: dict[str, list[UUID]], orders: dict[UUID, list[_Order]], at: datetime
) -> list[Cohort]:
    last = _month_index(at)
    cohorts = []
    for month, customers in sorted(members.items()):
        first = _month_index(orders[customers[0]][0].at)
        retained = [0] * (last - first + 1)
        for r in customers:
            for k in {_month_index(o.at) - first for o in orders[r]}:
                retained[k] += 1
        cohorts.append(
            Cohort(
                month=month,
                customers=len(customers),
                retained=retained,
                shares=[n / len(customers) for n in retained],
            )
        )
    return cohorts


def _activity(
    orders: dict[UUID, list[_Order]], at: datetime, inactive_days: int, at_risk_days: int
) -> tuple[list[Inactive], list[Inactive], list[WonBack]]:
    """(at risk, churned, won back) by the inactivity rule at `at`."""
    churn_gap, risk_gap = timedelta(days=inactive_days), timedelta(days=at_risk_days)
    at_risk, churned, won_back = [], [], []
    for r, history in orders.items():
        last = history[-1].at
        row = Inactive(customer_id=r, last_order_at=last, days_since=(at - last).days)
        if at - last >= churn_gap:
            churned.append(row)
        elif at - last >= risk_gap:
            at_risk.append(row)
        gaps = [(a.at, b.at) for a, b in pairwise(history) if b.at - a.at >= churn_gap]
        if gaps:
            before, back = gaps[-1]
            won_back.append(
                WonBack(
                    customer_id=r,
                    times=len(gaps),
                    churned_at=before + churn_gap,
                    won_back_at=back,
                )
            )
    return (
        sorted(at_risk, key=_by_last_order),
        sorted(churned, key=_by_last_order),
        sorted(won_back, key=lambda w: (w.won_back_at, str(w.customer_id))),
    )


def _values(
    orders: dict[UUID, list[_Order]],
    subscriptions: dict[tuple[UUID, str], Decimal],
    acquired: dict[UUID, tuple[datetime, int, str]],
) -> list[CustomerValue]:
    spend: dict[tuple[UUID, str], tuple[int, Decimal]] = {}
    for r, history in orders.items():
        for o in history:
            n, net = spend.get((r, o.currency), (0, Decimal(0)))
            spend[(r, o.currency)] = (n + 1, net + o.net)
    values = []
    for key in set(spend) | set(subscriptions):
        n, net = spend.get(key, (0, Decimal(0)))
        revenue = subscriptions.get(key, Decimal(0)).quantize(CENT)
        history = orders.get(key[0])
        source = acquired.get(key[0])
        values.append(
            CustomerValue(
                customer_id=key[0],
                currency=key[1],
                orders=n,
                order_net=net,
                subscription_revenue=revenue,
                clv=net + revenue,
                cohort=month_of(history[0].at) if history else None,
                source=source[2] if source else None,
            )
        )
    return sorted(values, key=lambda v: (-v.clv, str(v.customer_id), v.currency))


def _by_last_order(i: Inactive) -> tuple[datetime, str]:
    return i.last_order_at, str(i.customer_id)


def _group_values(
    groups: dict[str, list[UUID]] | dict[str, set[UUID]], values: Sequence[CustomerValue]
) -> list[GroupValue]:
    """Per group and currency spent in: the total CLV and its average over the group."""
    group_of: dict[UUID, list[str]] = defaultdict(list)
    for key, customers in groups.items():
        for c in customers:
            group_of[c].append(key)
    totals: dict[tuple[str, str], Decimal] = defaultdict(Decimal)
    for v in values:
        for key in group_of.get(v.customer_id, ()):
            totals[(key, v.currency)] += v.clv
    return [
        GroupValue(
            key=key,
            currency=currency,
            customers=len(groups[key]),
            total=total,
            average=(total / len(groups[key])).quantize(CENT),
        )
        for (key, currency), total in sorted(totals.items())
    ]


class _Facts:
    """The fact rows at or before `at`, read through the stable views."""

    def __init__(self, db: ProjectionDB, at: datetime) -> None:
        self.db = db
        d = db.dialect
        self._names = {t: d.qualify(t) for t in Retention.tables}
        uuid, ts = d.uuid, d.ts
        self.customers = [
            (uuid(c), ts(a), s, int(p))
            for c, a, s, p in self._fetch(
                "SELECT customer_id, acquired_at, source, position FROM {retention_customers} "
                "WHERE acquired_at <= ?",
                at,
            )
        ]
        self.contacts = [
            (uuid(c), ts(a), ch, int(p))
            for c, a, ch, p in self._fetch(
                "SELECT customer_id, first_at, channel, position FROM {retention_contacts} "
                "WHERE first_at <= ?",
                at,
            )
        ]
        self.merges = [
            (uuid(m), uuid(s))
            for m, s in self._fetch(
                "SELECT merged_id, survivor_id FROM {retention_merges} WHERE at <= ? "
                "ORDER BY position",
                at,
            )
        ]
        refunds: dict[UUID, Decimal] = defaultdict(Decimal)
        for o, amount in self._fetch(
            "SELECT order_id, amount FROM {retention_refunds} WHERE at <= ?", at
        ):
            refunds[uuid(o)] += Decimal(amount)  # type: ignore[index]
        self.orders = []
        for o, c, placed, currency, total, cancelled, p in self._fetch(
            "SELECT order_id, customer_id, placed_at, currency, total, cancelled_at, position "
            "FROM {retention_orders} WHERE placed_at <= ?",
            at,
        ):
            cancelled_at = ts(cancelled)
            if cancelled_at is not None and cancelled_at <= at:
                continue
            oid = uuid(o)
            net = Decimal(total) - refunds.get(oid, Decimal(0))  # type: ignore[arg-type]
            self.orders.append(_Order(uuid(c), ts(placed), int(p), currency, net))  # type: ignore[arg-type]
        self.terms = []
        customer_of: dict[UUID, UUID] = {}
        for s, c, start, amount, currency, closed, end in self._fetch(
            "SELECT subscription_id, customer_id, from_at, monthly, currency, closed_at, to_at "
            "FROM {retention_terms} WHERE from_at <= ? ORDER BY position",
            at,
        ):
            closed_at, sid, cid = ts(closed), uuid(s), uuid(c)
            assert sid is not None
            if cid is not None:
                customer_of.setdefault(sid, cid)
            known = closed_at is not None and closed_at <= at
            begin = ts(start)
            assert begin is not None
            self.terms.append(
                _Term(sid, cid, begin, Decimal(amount), currency, ts(end) if known else None)
            )
        for term in self.terms:
            term.customer = term.customer or customer_of.get(term.subscription)

    def _fetch(self, template: str, at: datetime) -> list[tuple[Any, ...]]:
        return self.db.fetch(_resolve(template, self._names, self.db.dialect), (at,))

    def survivors(self) -> Callable[[UUID], UUID]:
        """customer -> the customer it lives on in at the date (chains followed)."""
        into: dict[UUID, UUID] = {}
        for merged, survivor in self.merges:
            if survivor is None:
                into.pop(merged, None)
            else:
                into[merged] = survivor

        def root(customer: UUID) -> UUID:
            seen = {customer}
            while customer in into and into[customer] not in seen:
                customer = into[customer]
                seen.add(customer)
            return customer

        return root
