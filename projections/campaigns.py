"""`campaigns`: campaign events, orders and merges as facts at business time, and the
report over them as of any date.

The report folds each campaign with the domain's `fold` and each order with the orders'
`fold`, up to `as_of`:
- the audience at send (members passed, customers they resolve to), sent, held out,
  excluded by reason, messages (a customer sent twice counts twice);
- responses per kind: customers with at least one, and the rate over the customers sent to;
- conversion: a customer converted when an order of theirs (or of a customer merged into
  them) was placed in `(t0, t0 + attribution_days]`, `t0` the first send that messaged or held
  them out, the order not cancelled as of `as_of`; revenue in the same window, net of the
  returns known as of `as_of`, per group and currency;
- uplift: conversion rate of the sent minus that of the holdout, and relative to it.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Sequence
from datetime import datetime, timedelta
from decimal import Decimal
from uuid import UUID

import msgspec

from domain.campaigns import events as cev
from domain.campaigns.state import CampaignState, campaign_id_of, fold
from domain.customers import events as custev
from domain.orders import events as oev
from domain.orders.state import fold as fold_order
from domain.orders.state import net_total
from projections.errors import ProjectionError
from projections.facts import Fact, FactTable, fold_streams, read_facts, survivors
from projections.ports import ProjectionDB

CAMPAIGN_EVENTS = (
    cev.CampaignDefined,
    cev.CampaignLaunched,
    cev.ResponseRecorded,
    cev.CampaignRetired,
)
ORDER_EVENTS = (oev.OrderPlaced, oev.OrderCancelled, oev.OrderReturned)
MERGES = (custev.CustomerMergedInto, custev.CustomerUnmerged)
CAMPAIGN_TAGS = tuple(str(t.__struct_config__.tag) for t in CAMPAIGN_EVENTS)
GROUPS = ("sent", "holdout")


class CampaignsView(FactTable):
    name = "campaigns"
    version = 1
    event_types = (*CAMPAIGN_EVENTS, *ORDER_EVENTS, *MERGES)
    reads_personal = False


class UnknownCampaign(ProjectionError):
    code = "unknown_campaign"

    def __init__(self, name_or_id: str) -> None:
        super().__init__(f"no campaign named {name_or_id!r} (by name or id) was defined")
        self.name_or_id = name_or_id


# -- the report -------------------------------------------------------------------------


class SendSummary(msgspec.Struct, frozen=True, kw_only=True):
    send_id: UUID
    at: datetime
    members: int
    sent: int
    holdout: int
    excluded: dict[str, int]


class ResponseRate(msgspec.Struct, frozen=True, kw_only=True):
    kind: str
    customers: int
    events: int
    rate: float | None


class Revenue(msgspec.Struct, frozen=True, kw_only=True):
    currency: str
    amount: Decimal


class GroupOutcome(msgspec.Struct, frozen=True, kw_only=True):
    """`sent` or `holdout`: customers, those who ordered in their window, the rate, and the
    revenue of those orders net of returns, per currency."""

    group: str
    customers: int
    converted: int
    rate: float | None
    revenue: list[Revenue]
    orders: int


class CampaignReport(msgspec.Struct, frozen=True, kw_only=True):
    as_of: datetime
    campaign_id: UUID
    name: str
    audience: str
    channel: str
    content_ref: str
    holdout_share: float
    attribution_days: int
    retired: bool
    sends: list[SendSummary]
    members: int
    audience_size: int
    sent: int
    holdout: int
    messages: int
    excluded: dict[str, int]
    responses: list[ResponseRate]
    outcomes: list[GroupOutcome]
    uplift: float | None
    relative_uplift: float | None


class CampaignSummary(msgspec.Struct, frozen=True, kw_only=True):
    campaign_id: UUID
    name: str
    audience: str
    channel: str
    status: str
    defined_at: datetime | None
    sends: int
    sent: int
    holdout: int
    last_send_at: datetime | None


def campaign_key(name_or_id: str) -> UUID:
    """An id as given, else the id derived from the name."""
    try:
        return UUID(name_or_id)
    except ValueError:
        return campaign_id_of(name_or_id)


def campaigns_list(db: ProjectionDB, *, as_of: datetime | None = None) -> list[CampaignSummary]:
    """Every campaign defined by `as_of` (default: all), by name."""
    facts = read_facts(db, "campaigns", as_of=as_of, types=CAMPAIGN_TAGS)
    out = []
    for s in fold_streams(facts, fold, CAMPAIGN_EVENTS).values():
        if not s.defined:
            continue
        status = "retired" if s.retired_at else ("launched" if s.sends else "defined")
        out.append(
            CampaignSummary(
                campaign_id=s.campaign_id,
                name=s.name or "",
                audience=s.audience or "",
                channel=s.channel or "",
                status=status,
                defined_at=s.defined_at,
                sends=len(s.sends),
                sent=len(s.first_sent),
                holdout=len(set(s.first_held) - set(s.first_sent)),
                last_send_at=s.last_launch_at,
            )
        )
    return sorted(out, key=lambda c: c.name)


def _rate(n: int, of: int) -> float | None:
    return n / of if of else None


class _Audience(msgspec.Struct, kw_only=True):
    sends: list[SendSummary]
    members: set[UUID]
    resolved: set[UUID]  # the customers the members stood for (a merged id by its survivor)
    excluded: dict[str, set[UUID]]
    messages: int


def _audience(state: CampaignState) -> _Audience:
    out = _Audience(sends=[], members=set(), resolved=set(), excluded=defaultdict(set), messages=0)
    for s in state.sends:
        counts: Counter[str] = Counter()
        for x in s.excluded:
            counts[x.reason] += 1
            out.excluded[x.reason].add(x.customer_id)
            if x.reason != "merged":
                out.resolved.add(x.customer_id)
        out.members.update(s.members)
        out.resolved.update(s.sent)
        out.resolved.update(s.holdout)
        out.messages += len(s.sent)
        out.sends.append(
            SendSummary(
                send_id=s.send_id,
                at=s.at,
                members=len(s.members),
                sent=len(s.sent),
                holdout=len(s.holdout),
                excluded={r: counts[r] for r in cev.EXCLUSION_REASONS if counts[r]},
            )
        )
    return out


def _responses(facts: Sequence[Fact], sent: int) -> list[ResponseRate]:
    responded: dict[str, set[UUID]] = defaultdict(set)
    events: Counter[str] = Counter()
    for f in facts:
        if isinstance(f.payload, cev.ResponseRecorded):
            responded[f.payload.kind].add(f.payload.customer_id)
            events[f.payload.kind] += 1
    return [
        ResponseRate(
            kind=k,
            customers=len(responded[k]),
            events=events[k],
            rate=_rate(len(responded[k]), sent),
        )
        for k in cev.RESPONSE_KINDS
    ]


def _outcomes(
    state: CampaignState, facts: Sequence[Fact], merged: dict[UUID, UUID]
) -> list[GroupOutcome]:
    """Conversion and revenue per group; customers keyed by who they are at the report's date
    (a customer merged since the send counts as its survivor, in the group it was in)."""

    def who(customer: UUID) -> UUID:
        return merged.get(customer, customer)

    start: dict[UUID, tuple[str, datetime]] = {}  # customer -> (group, first send)
    for group, firsts in zip(GROUPS, (state.first_sent, state.first_held), strict=True):
        for customer, t0 in firsts.items():
            if group == "holdout" and customer in state.first_sent:
                continue
            key, held = who(customer), start.get(who(customer))
            if held is None or (held[0] == group and t0 < held[1]):
                start[key] = (group, t0)  # sent first: a survivor sent once counts as sent
    window = timedelta(days=state.attribution_days)
    converted: dict[str, set[UUID]] = defaultdict(set)
    revenue: dict[str, dict[str, Decimal]] = defaultdict(lambda: defaultdict(Decimal))
    orders: Counter[str] = Counter()
    for o in fold_streams(facts, fold_order, ORDER_EVENTS).values():
        if o.customer_id is None or o.placed_at is None or o.status == "cancelled":
            continue
        found = start.get(who(o.customer_id))
        if found is None or not found[1] < o.placed_at <= found[1] + window:
            continue
        group = found[0]
        converted[group].add(who(o.customer_id))
        net = net_total(o)
        revenue[group][net.currency] += net.amount
        orders[group] += 1
    sizes = Counter(group for group, _ in start.values())
    return [
        GroupOutcome(
            group=g,
            customers=sizes[g],
            converted=len(converted[g]),
            rate=_rate(len(converted[g]), sizes[g]),
            revenue=[Revenue(currency=c, amount=a) for c, a in sorted(revenue[g].items())],
            orders=orders[g],
        )
        for g in GROUPS
    ]


def campaign_report(
    db: ProjectionDB, name_or_id: str, *, now: datetime, as_of: datetime | None = None
) -> CampaignReport:
    """The campaign as known at `as_of` (default: now): events dated after it count nowhere."""
    at = as_of or now
    key = campaign_key(name_or_id)
    facts = read_facts(db, "campaigns", as_of=at)
    mine = [f for f in facts if f.stream_id == key]
    state = fold_streams(mine, fold, CAMPAIGN_EVENTS).get(key)
    if state is None or not state.defined:
        raise UnknownCampaign(name_or_id)
    audience = _audience(state)
    outcomes = _outcomes(state, facts, survivors(facts))
    rs, rh = outcomes[0].rate, outcomes[1].rate
    uplift = rs - rh if rs is not None and rh is not None else None
    return CampaignReport(
        as_of=at,
        campaign_id=state.campaign_id,
        name=state.name or "",
        audience=state.audience or "",
        channel=state.channel or "",
        content_ref=state.content_ref or "",
        holdout_share=state.holdout_share,
        attribution_days=state.attribution_days,
        retired=state.retired_at is not None,
        sends=audience.sends,
        members=len(audience.members),
        audience_size=len(audience.resolved),
        sent=len(state.first_sent),
        holdout=len(set(state.first_held) - set(state.first_sent)),
        messages=audience.messages,
        excluded={r: len(v) for r in cev.EXCLUSION_REASONS if (v := audience.excluded[r])},
        responses=_responses(mine, len(state.first_sent)),
        outcomes=outcomes,
        uplift=uplift,
        relative_uplift=uplift / rh if uplift is not None and rh else None,
    )
