"""Campaigns through the command bus and the `campaigns` view, on both backends: launches
filtered by consent, merges and the frequency cap, typed errors that append nothing, and an
oracle for the report (rates, conversions, revenue, uplift, as of any date)."""

from __future__ import annotations

import hashlib
import json
import random
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

import pytest
from typer.testing import CliRunner

from domain.errors import DomainError
from handlers.decision import CommandContext
from infra.cli.campaigns import campaign_app
from infra.clock import FixedClock
from infra.engine import Engine, open_engine
from infra.projector import open_runner
from projections.campaigns import CampaignReport, UnknownCampaign, campaign_report, campaigns_list

NOW = datetime(2026, 6, 1, 12, tzinfo=UTC)
BASE = NOW - timedelta(days=60)
KINDS = ("delivered", "opened", "clicked", "replied", "converted", "unsubscribed")


def day(n: float) -> datetime:
    return BASE + timedelta(days=n)


def do(engine: Engine, command: str, /, **data: Any) -> Any:
    ctx = CommandContext(actor="employee:marketing", channel="test")
    body = {
        k: str(v) if isinstance(v, UUID) else v.isoformat() if isinstance(v, datetime) else v
        for k, v in data.items()
    }
    return engine.bus.execute_json(command, body, ctx)


def refused(engine: Engine, code: str, command: str, /, **data: Any) -> None:
    """The command fails with this error code and appends nothing."""
    head = engine.store.head()
    with pytest.raises(DomainError) as caught:
        do(engine, command, **data)
    assert caught.value.code == code, caught.value
    assert engine.store.head() == head


@pytest.fixture
def engine(store_url: str) -> Iterator[Engine]:
    with open_engine(store_url, env={}, clock=FixedClock(NOW)) as e:
        do(
            e,
            "product.define",
            sku="C-BEANS",
            name="beans",
            category="coffee",
            list_price={"amount": "10.00", "currency": "EUR"},
            occurred_at=day(0),
        )
        yield e


def customer(engine: Engine, *consents: str, at: float = 0, cid: UUID | None = None) -> UUID:
    cid = cid or uuid4()
    do(engine, "customer.register", customer_id=cid, name="C", occurred_at=day(at))
    for channel in consents:
        do(
            engine,
            "customer.grant_consent",
            customer_id=cid,
            consent_channel=channel,
            purpose="marketing",
            occurred_at=day(at),
        )
    return cid


def define(engine: Engine, name: str, channel: str = "email", **kw: Any) -> UUID:
    result = do(
        engine,
        "campaign.define",
        name=name,
        audience="heavy callers",
        channel=channel,
        content_ref=f"tpl:{name}",
        occurred_at=day(1),
        **kw,
    )
    return result.streams[0].id  # type: ignore[no-any-return]


def launch(engine: Engine, campaign: UUID, members: list[UUID], at: float) -> Any:
    do(
        engine,
        "campaign.launch",
        campaign_id=campaign,
        members=[str(m) for m in members],
        occurred_at=day(at),
    )
    return engine.store.load(campaign)[-1].payload


def report(engine: Engine, name: str, as_of: datetime | None = None) -> CampaignReport:
    with open_runner(engine) as runner:
        runner.catch_up()
        return campaign_report(runner.db, name, now=NOW, as_of=as_of)


def test_define_launch_respond_through_the_bus(engine: Engine) -> None:
    ada, bob, cem = customer(engine, "email"), customer(engine, "email"), customer(engine, "sms")
    campaign = define(engine, "spring", attribution_days=14)
    sent = launch(engine, campaign, [ada, bob, cem], at=10)
    assert sent.sent == [ada, bob] and sent.holdout == []
    assert [(x.customer_id, x.reason) for x in sent.excluded] == [(cem, "no_consent")]
    channel_events = [e for e in engine.store.read() if e.type == "campaign.channel_send_logged"]
    assert [e.payload.send_id for e in channel_events] == [sent.send_id]

    do(
        engine,
        "campaign.record_response",
        campaign_id=campaign,
        customer_id=ada,
        kind="delivered",
        occurred_at=day(10.1),
    )
    do(
        engine,
        "campaign.record_response",
        campaign_id=campaign,
        customer_id=ada,
        kind="opened",
        occurred_at=day(11),
    )
    do(
        engine,
        "campaign.record_response",
        campaign_id=campaign,
        customer_id=bob,
        kind="delivered",
        occurred_at=day(10.2),
    )
    response = engine.store.load(campaign)[-1]
    assert response.type == "campaign.response_recorded" and response.customer_id == bob
    assert response.payload.send_id == sent.send_id

    r = report(engine, "spring")
    assert (r.members, r.audience_size, r.sent, r.holdout, r.messages) == (3, 3, 2, 0, 2)
    assert r.excluded == {"no_consent": 1}
    rates = {x.kind: (x.customers, x.rate) for x in r.responses}
    assert rates["delivered"] == (2, 1.0) and rates["opened"] == (1, 0.5)
    assert rates["clicked"] == (0, 0.0)
    assert report(engine, str(campaign)).name == "spring"  # by id too
    listed = {c.name: c for c in _list(engine)}
    assert listed["spring"].status == "launched" and listed["spring"].sent == 2

    do(engine, "campaign.retire", campaign_id=campaign, occurred_at=day(20))
    assert {c.name: c for c in _list(engine)}["spring"].status == "retired"
    with pytest.raises(UnknownCampaign):
        report(engine, "no such campaign")


def _list(engine: Engine) -> list[Any]:
    with open_runner(engine) as runner:
        runner.catch_up()
        return campaigns_list(runner.db)


def test_a_withdrawn_consent_removes_the_customer_from_the_next_send(engine: Engine) -> None:
    ada, bob = customer(engine, "email"), customer(engine, "email")
    campaign = define(engine, "monthly")
    assert launch(engine, campaign, [ada, bob], at=10).sent == [ada, bob]
    do(
        engine,
        "customer.withdraw_consent",
        customer_id=ada,
        consent_channel="email",
        purpose="marketing",
        occurred_at=day(15),
    )
    second = launch(engine, campaign, [ada, bob], at=20)
    assert second.sent == [bob]
    assert [(x.customer_id, x.reason) for x in second.excluded] == [(ada, "no_consent")]
    r = report(engine, "monthly")
    assert [s.sent for s in r.sends] == [2, 1] and r.messages == 3 and r.sent == 2


def test_a_merged_customer_counts_once(engine: Engine) -> None:
    survivor, merged, other = customer(engine, "email"), customer(engine, "email"), customer(engine)
    do(engine, "customer.merge", survivor_id=survivor, merged_id=merged, occurred_at=day(5))
    campaign = define(engine, "merge")
    e = launch(engine, campaign, [merged, survivor, other, merged], at=10)
    assert e.members == [merged, survivor, other]
    assert e.sent == [survivor]
    assert {(x.customer_id, x.reason, x.survivor_id) for x in e.excluded} == {
        (merged, "merged", survivor),
        (other, "no_consent", None),
    }
    # only-the-merged-id: its survivor is messaged in its place
    campaign2 = define(engine, "merge2")
    assert launch(engine, campaign2, [merged], at=10).sent == [survivor]
    r = report(engine, "merge")
    assert (r.members, r.audience_size, r.sent) == (3, 2, 1)
    assert r.excluded == {"merged": 1, "no_consent": 1}
    # a response from the merged id is recorded under the id that was messaged
    do(
        engine,
        "campaign.record_response",
        campaign_id=campaign2,
        customer_id=merged,
        kind="opened",
        occurred_at=day(11),
    )
    assert engine.store.load(campaign2)[-1].payload.customer_id == survivor


def test_frequency_cap_across_campaigns_of_a_channel(engine: Engine) -> None:
    x, y, z = (customer(engine, "email", "sms") for _ in range(3))
    capped = define(engine, "capped", frequency_cap={"max_sends": 1, "per_days": 7})
    other = define(engine, "other")
    texts = define(engine, "texts", channel="sms")
    assert launch(engine, other, [x, y], at=10).sent == [x, y]
    assert launch(engine, texts, [z], at=11).sent == [z]  # another channel: not counted
    first = launch(engine, capped, [x, y, z], at=12)
    assert first.sent == [z]
    assert {(c.customer_id, c.reason) for c in first.excluded} == {
        (x, "frequency_cap"),
        (y, "frequency_cap"),
    }
    # (day 11, day 18]: the send of day 10 is out of the window, the one of day 12 in it
    second = launch(engine, capped, [x, y, z], at=18)
    assert second.sent == [x, y]
    assert [(c.customer_id, c.reason) for c in second.excluded] == [(z, "frequency_cap")]


def test_typed_errors_append_nothing(engine: Engine) -> None:
    ada = customer(engine, "email")
    held = define(engine, "held", holdout_share=0.5)
    base = {"audience": "a", "channel": "email", "content_ref": "r"}
    refused(engine, "campaign_already_defined", "campaign.define", name="held", **base)
    refused(
        engine, "holdout_share_out_of_range", "campaign.define", name="x", holdout_share=0.6, **base
    )
    refused(
        engine,
        "unknown_channel",
        "campaign.define",
        name="x",
        audience="a",
        channel="fax",
        content_ref="r",
    )
    refused(
        engine, "campaign_not_found", "campaign.launch", campaign_id=uuid4(), members=[str(ada)]
    )
    refused(engine, "campaign_not_found", "campaign.retire", campaign_id=uuid4())
    refused(
        engine,
        "event_before_last",
        "campaign.launch",
        campaign_id=held,
        members=[str(ada)],
        occurred_at=day(0).isoformat(),
    )
    e = launch(engine, held, [ada], at=10)
    stranger = customer(engine, "email")
    refused(
        engine,
        "not_sent_to",
        "campaign.record_response",
        campaign_id=held,
        customer_id=stranger,
        kind="opened",
    )
    if e.holdout:  # the held-out customer was not messaged either
        refused(
            engine,
            "not_sent_to",
            "campaign.record_response",
            campaign_id=held,
            customer_id=ada,
            kind="opened",
        )
    else:
        refused(
            engine,
            "response_before_send",
            "campaign.record_response",
            campaign_id=held,
            customer_id=ada,
            kind="opened",
            occurred_at=day(9).isoformat(),
        )
    do(engine, "campaign.retire", campaign_id=held, occurred_at=day(20))
    refused(
        engine,
        "campaign_retired",
        "campaign.launch",
        campaign_id=held,
        members=[str(ada)],
        occurred_at=day(21).isoformat(),
    )
    scheduled = define(engine, "scheduled", start=day(30).isoformat(), end=day(40).isoformat())
    refused(
        engine,
        "outside_schedule",
        "campaign.launch",
        campaign_id=scheduled,
        members=[str(ada)],
        occurred_at=day(25).isoformat(),
    )


# -- the oracle ---------------------------------------------------------------------------


@dataclass
class Order:
    customer: UUID
    placed: datetime
    total: Decimal
    cancelled: datetime | None = None
    returned: datetime | None = None
    refund: Decimal = Decimal(0)


@dataclass
class History:
    """What the test did: its own record, from which the oracle computes the report."""

    campaign: UUID = field(default_factory=uuid4)
    launch_at: datetime = BASE + timedelta(days=10)
    eligible: list[UUID] = field(default_factory=list)
    merges: dict[UUID, tuple[UUID, datetime]] = field(default_factory=dict)
    orders: list[Order] = field(default_factory=list)
    responses: list[tuple[UUID, str, datetime]] = field(default_factory=list)


def held_out(campaign: UUID, customer_id: UUID, share: float) -> bool:
    digest = hashlib.sha256(campaign.bytes + customer_id.bytes).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 < share


SHARE, DAYS = 0.3, 14


def seeded(engine: Engine, seed: int) -> History:
    rng = random.Random(seed)

    def new_id() -> UUID:
        return UUID(int=rng.getrandbits(128), version=4)

    h = History()
    people = [
        customer(engine, *(["email"] if rng.random() < 0.75 else []), cid=new_id())
        for _ in range(48)
    ]
    consented = {p for p in people if engine.store.load(p)[-1].type == "customer.consent_granted"}
    for p in rng.sample(sorted(consented, key=str), 3):  # withdrawn before the launch
        do(
            engine,
            "customer.withdraw_consent",
            customer_id=p,
            consent_channel="email",
            purpose="marketing",
            occurred_at=day(5),
        )
        consented.discard(p)
    live = list(people)
    a, b = live.pop(), live.pop()  # a merged into b before the launch
    do(engine, "customer.merge", survivor_id=b, merged_id=a, occurred_at=day(6))
    h.merges[a] = (b, day(6))
    h.campaign = define(engine, "oracle", holdout_share=SHARE, attribution_days=DAYS)
    members = [*people, new_id()]
    rng.shuffle(members)
    launched = launch(engine, h.campaign, members, at=10)
    h.eligible = [p for p in [*live, b] if p in consented]
    sent = [p for p in h.eligible if not held_out(h.campaign, p, SHARE)]
    # a customer sent to is merged after the send into a new customer, who orders
    late, newcomer = sent[0], customer(engine, at=11, cid=new_id())
    do(engine, "customer.merge", survivor_id=newcomer, merged_id=late, occurred_at=day(12))
    h.merges[late] = (newcomer, day(12))
    for who in (*[p for p in live if p != late], b, newcomer):
        for _ in range(rng.randint(0, 3)):
            t = day(rng.uniform(11 if who == newcomer else 5, 30))
            qty = rng.randint(1, 4)
            order = Order(who, t, Decimal(10) * qty)
            oid = new_id()
            do(
                engine,
                "order.place",
                order_id=oid,
                customer_id=who,
                items=[
                    {
                        "sku": "C-BEANS",
                        "quantity": qty,
                        "unit_price": {"amount": "10.00", "currency": "EUR"},
                    }
                ],
                payment_method="card",
                occurred_at=t,
            )
            roll = rng.random()
            if roll < 0.15:
                order.cancelled = t + timedelta(days=1)
                do(
                    engine,
                    "order.cancel",
                    order_id=oid,
                    reason="changed mind",
                    occurred_at=order.cancelled,
                )
            elif roll < 0.35:
                do(engine, "order.ship", order_id=oid, occurred_at=t + timedelta(hours=5))
                order.returned, order.refund = t + timedelta(days=2), Decimal(10)
                do(
                    engine,
                    "order.return",
                    order_id=oid,
                    items=[{"sku": "C-BEANS", "quantity": 1}],
                    reason="too strong",
                    refund={"amount": "10.00", "currency": "EUR"},
                    occurred_at=order.returned,
                )
            h.orders.append(order)
    assert sorted(launched.sent + launched.holdout, key=str) == sorted(h.eligible, key=str)
    for who in sent:
        for kind in KINDS:
            if rng.random() < 0.5:
                t = day(10 + rng.uniform(0.01, 20))
                do(
                    engine,
                    "campaign.record_response",
                    campaign_id=h.campaign,
                    customer_id=who,
                    kind=kind,
                    occurred_at=t,
                )
                h.responses.append((who, kind, t))
    return h


def expected(h: History, as_of: datetime) -> dict[str, Any]:
    """The report recomputed from the test's own record."""
    if as_of < h.launch_at:
        return {"sends": 0}
    sent = [p for p in h.eligible if not held_out(h.campaign, p, SHARE)]
    held = [p for p in h.eligible if held_out(h.campaign, p, SHARE)]

    def final(c: UUID) -> UUID:
        while c in h.merges and h.merges[c][1] <= as_of:
            c = h.merges[c][0]
        return c

    group = {final(p): "sent" for p in sent} | {final(p): "holdout" for p in held}
    end = h.launch_at + timedelta(days=DAYS)
    converted: dict[str, set[UUID]] = defaultdict(set)
    revenue: dict[str, Decimal] = defaultdict(Decimal)
    for o in h.orders:
        if o.placed > as_of or (o.cancelled is not None and o.cancelled <= as_of):
            continue
        g = group.get(final(o.customer))
        if g is None or not h.launch_at < o.placed <= end:
            continue
        converted[g].add(final(o.customer))
        refund = o.refund if o.returned is not None and o.returned <= as_of else Decimal(0)
        revenue[g] += o.total - refund
    who_by_kind: dict[str, set[UUID]] = defaultdict(set)
    for who, kind, t in h.responses:
        if t <= as_of:
            who_by_kind[kind].add(who)
    rs = len(converted["sent"]) / len(sent)
    rh = len(converted["holdout"]) / len(held)
    return {
        "sends": 1,
        "sent": len(sent),
        "holdout": len(held),
        "responses": {k: (len(who_by_kind[k]), len(who_by_kind[k]) / len(sent)) for k in KINDS},
        "converted": (len(converted["sent"]), len(converted["holdout"])),
        "revenue": (revenue["sent"], revenue["holdout"]),
        "uplift": rs - rh,
        "relative": (rs - rh) / rh if rh else None,
    }


def observed(r: CampaignReport) -> dict[str, Any]:
    if not r.sends:
        return {"sends": 0}
    sent, held = r.outcomes

    def eur(g: Any) -> Decimal:
        return sum((x.amount for x in g.revenue if x.currency == "EUR"), Decimal(0))

    return {
        "sends": len(r.sends),
        "sent": r.sent,
        "holdout": r.holdout,
        "responses": {x.kind: (x.customers, x.rate) for x in r.responses},
        "converted": (sent.converted, held.converted),
        "revenue": (eur(sent), eur(held)),
        "uplift": r.uplift,
        "relative": r.relative_uplift,
    }


@pytest.mark.parametrize("seed", [3, 11])
def test_report_matches_the_oracle_as_of_any_date(engine: Engine, seed: int) -> None:
    h = seeded(engine, seed)
    assert h.eligible and any(held_out(h.campaign, p, SHARE) for p in h.eligible)
    with open_runner(engine) as runner:
        runner.catch_up()
        for as_of in (None, day(9), day(10), day(13), day(17.5), day(24), day(26), day(45)):
            r = campaign_report(runner.db, "oracle", now=NOW, as_of=as_of)
            want = expected(h, as_of or NOW)
            got = observed(r)
            if want.get("uplift") is not None:
                assert got.pop("uplift") == pytest.approx(want.pop("uplift"))
                rel_w, rel_g = want.pop("relative"), got.pop("relative")
                assert rel_g == (pytest.approx(rel_w) if rel_w is not None else None)
            assert got == want, as_of
    full = expected(h, NOW)
    assert min(full["converted"]) > 0  # the history exercises conversion in both groups
    assert full["revenue"][1] > 0


def test_cli_define_launch_report_and_chart(
    store_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CRM_STORE_URL", store_url)
    monkeypatch.setenv("CRM_NOW", NOW.isoformat())
    with open_engine(store_url, env={}, clock=FixedClock(NOW)) as engine:
        people = [customer(engine, "email") for _ in range(4)] + [customer(engine)]
    members = tmp_path / "members.txt"
    members.write_text("# the audience\n" + "\n".join(map(str, people)) + "\n\n")
    cli = CliRunner()
    define = ["define", "cli", "--audience", "all", "--content", "tpl:1", "--cap-per-days", "1/7"]
    assert cli.invoke(campaign_app, [*define, "--at", day(1).isoformat()]).exit_code == 0
    again = cli.invoke(campaign_app, define)
    assert again.exit_code == 1 and "campaign_already_defined" in again.output
    bad = cli.invoke(campaign_app, [*define[:-1], "seven"])
    assert bad.exit_code == 2
    launched = cli.invoke(
        campaign_app, ["launch", "cli", "--members-file", str(members), "--at", day(10).isoformat()]
    )
    assert launched.exit_code == 0, launched.output
    said = " ".join(launched.output.split())  # rich wraps long lines
    assert "5 members, 4 sent, 0 held out, excluded: no_consent 1" in said
    chart = tmp_path / "campaign.png"
    shown = cli.invoke(campaign_app, ["report", "cli", "--format", "json", "--chart", str(chart)])
    assert shown.exit_code == 0, shown.output
    first = json.loads(shown.stdout.splitlines()[0])
    assert first == [
        {
            "members": 5,
            "audience": 5,
            "sent": 4,
            "holdout": 0,
            "messages": 4,
            "excluded: no_consent": 1,
        }
    ]
    assert chart.stat().st_size > 0
    listed = cli.invoke(campaign_app, ["list", "--format", "csv"])
    assert listed.exit_code == 0 and "cli," in listed.stdout
