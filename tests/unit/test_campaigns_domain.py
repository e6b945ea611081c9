"""decide/evolve of campaigns: define, launch (exclusions, merges, cap, holdout), responses,
retirement; the holdout split's determinism and share. Pure, no I/O."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta
from uuid import UUID, uuid4

import pytest

from domain.campaigns import commands as cmd
from domain.campaigns import decide
from domain.campaigns import errors as err
from domain.campaigns import events as ev
from domain.campaigns.state import (
    CampaignState,
    campaign_id_of,
    channel_stream_of,
    fold,
    fold_channel,
)
from domain.customers.state import CustomerState
from domain.events import DomainEvent

T = datetime(2026, 5, 1, 9, tzinfo=UTC)


def applied(state: CampaignState, events: list[DomainEvent], at: datetime) -> CampaignState:
    triples = [(state.version + i, at, e) for i, e in enumerate(events, start=1)]
    return fold(state.campaign_id, triples, state)


def defined(name: str = "spring", *, at: datetime = T, **kw: object) -> CampaignState:
    state = CampaignState(campaign_id=campaign_id_of(name))
    c = cmd.DefineCampaign(
        name=name,
        audience="heavy callers",
        channel="email",
        content_ref="tpl:spring",
        **kw,  # type: ignore[arg-type]
    )
    return applied(state, decide.define(state, c, at=at), at)


def person(*consents: str, **kw: object) -> CustomerState:
    return CustomerState(
        customer_id=kw.pop("customer_id", uuid4()),  # type: ignore[arg-type]
        kind="person",
        consents=frozenset((c, "marketing") for c in consents),
        **kw,  # type: ignore[arg-type]
    )


def launched(
    state: CampaignState,
    profiles: dict[UUID, CustomerState],
    members: list[UUID] | None = None,
    *,
    at: datetime = T + timedelta(days=1),
    earlier: dict[UUID, int] | None = None,
    send_id: UUID | None = None,
) -> ev.CampaignLaunched:
    c = cmd.LaunchCampaign(campaign_id=state.campaign_id, members=members or list(profiles))
    events, logged = decide.launch(
        state, c, send_id=send_id or uuid4(), profiles=profiles, earlier=earlier or {}, at=at
    )
    assert len(events) == 1 and isinstance(events[0], ev.CampaignLaunched)
    assert len(logged) == 1 and isinstance(logged[0], ev.ChannelSendLogged)
    return events[0]


def reasons(event: ev.CampaignLaunched) -> dict[UUID, str]:
    return {x.customer_id: x.reason for x in event.excluded}


class TestDefine:
    def test_defines_with_its_settings(self) -> None:
        cap = ev.FrequencyCap(max_sends=1, per_days=7)
        s = defined(holdout_share=0.2, frequency_cap=cap, attribution_days=14)
        assert s.defined and s.name == "spring" and s.channel == "email"
        assert s.holdout_share == 0.2 and s.frequency_cap == cap and s.attribution_days == 14
        assert s.defined_at == T and s.campaign_id == campaign_id_of("spring")

    def test_a_name_is_defined_once(self) -> None:
        s = defined()
        again = cmd.DefineCampaign(name="spring", audience="a", channel="sms", content_ref="x")
        with pytest.raises(err.CampaignAlreadyDefined):
            decide.define(s, again, at=T)

    @pytest.mark.parametrize("share", [-0.01, 0.51, 1.0])
    def test_holdout_share_out_of_range(self, share: float) -> None:
        with pytest.raises(err.HoldoutShareOutOfRange):
            defined(holdout_share=share)

    @pytest.mark.parametrize("share", [0.0, 0.5])
    def test_holdout_share_bounds_are_allowed(self, share: float) -> None:
        assert defined(holdout_share=share).holdout_share == share

    def test_unknown_channel(self) -> None:
        state = CampaignState(campaign_id=uuid4())
        c = cmd.DefineCampaign(name="x", audience="a", channel="fax", content_ref="r")
        with pytest.raises(err.UnknownChannel):
            decide.define(state, c, at=T)

    def test_schedule_must_not_end_before_it_starts(self) -> None:
        with pytest.raises(err.InvalidSchedule):
            defined(start=T + timedelta(days=2), end=T + timedelta(days=1))


class TestLaunch:
    def test_splits_members_into_sent_holdout_and_excluded(self) -> None:
        ok, no_consent, sms_only = person("email"), person(), person("sms")
        forgotten = person("email", forgotten=True)
        unknown = uuid4()
        profiles = {p.customer_id: p for p in (ok, no_consent, sms_only, forgotten)}
        e = launched(defined(), profiles, [*profiles, unknown, ok.customer_id])
        assert e.members == [*profiles, unknown]  # duplicates dropped, order kept
        assert e.sent == [ok.customer_id] and e.holdout == []
        assert reasons(e) == {
            no_consent.customer_id: "no_consent",
            sms_only.customer_id: "no_consent",
            forgotten.customer_id: "forgotten",
            unknown: "unknown",
        }
        assert e.channel == "email"

    def test_a_merged_member_counts_once_as_its_survivor(self) -> None:
        survivor = person("email")
        a = person("email", merged_into=survivor.customer_id)
        b = person(merged_into=a.customer_id)  # a chain: b -> a -> survivor
        profiles = {p.customer_id: p for p in (survivor, a, b)}
        e = launched(defined(), profiles, [a.customer_id, b.customer_id, survivor.customer_id])
        assert e.sent == [survivor.customer_id]
        assert {(x.customer_id, x.reason, x.survivor_id) for x in e.excluded} == {
            (a.customer_id, "merged", survivor.customer_id),
            (b.customer_id, "merged", survivor.customer_id),
        }

    def test_a_merged_member_whose_survivor_has_no_consent(self) -> None:
        survivor = person()
        a = person("email", merged_into=survivor.customer_id)
        e = launched(defined(), {p.customer_id: p for p in (survivor, a)}, [a.customer_id])
        assert e.sent == []
        assert reasons(e) == {a.customer_id: "merged", survivor.customer_id: "no_consent"}

    def test_frequency_cap_counts_earlier_messages_and_those_of_absorbed_ids(self) -> None:
        state = defined(frequency_cap=ev.FrequencyCap(max_sends=2, per_days=7))
        fresh, once, twice = person("email"), person("email"), person("email")
        absorbed_id = uuid4()
        via_merge = person("email", absorbed=frozenset({absorbed_id}))
        profiles = {p.customer_id: p for p in (fresh, once, twice, via_merge)}
        earlier = {once.customer_id: 1, twice.customer_id: 2, absorbed_id: 2}
        e = launched(state, profiles, earlier=earlier)
        assert sorted(e.sent) == sorted([fresh.customer_id, once.customer_id])
        assert reasons(e) == {
            twice.customer_id: "frequency_cap",
            via_merge.customer_id: "frequency_cap",
        }

    def test_without_a_cap_earlier_messages_do_not_matter(self) -> None:
        p = person("email")
        e = launched(defined(), {p.customer_id: p}, earlier={p.customer_id: 50})
        assert e.sent == [p.customer_id]

    def test_holdout_is_chosen_among_eligible_customers_by_the_hash(self) -> None:
        state = defined(holdout_share=0.5)
        people = [person("email") for _ in range(200)] + [person() for _ in range(50)]
        profiles = {p.customer_id: p for p in people}
        e = launched(state, profiles)
        eligible = [p.customer_id for p in people[:200]]
        assert sorted(e.sent + e.holdout) == sorted(eligible)
        assert e.holdout == [c for c in eligible if decide.in_holdout(state.campaign_id, c, 0.5)]
        assert 60 < len(e.holdout) < 140

    def test_a_repeated_send_id_decides_nothing(self) -> None:
        state = defined()
        p = person("email")
        send = uuid4()
        first = launched(state, {p.customer_id: p}, send_id=send)
        state = applied(state, [first], T + timedelta(days=1))
        c = cmd.LaunchCampaign(campaign_id=state.campaign_id, members=[p.customer_id])
        again = decide.launch(
            state,
            c,
            send_id=send,
            profiles={p.customer_id: p},
            earlier={},
            at=T + timedelta(days=2),
        )
        assert again == ([], [])
        retired = applied(state, [ev.CampaignRetired(reason="done")], T + timedelta(days=3))
        retry = decide.launch(  # a retry after the campaign retired: still the same answer
            retired,
            c,
            send_id=send,
            profiles={p.customer_id: p},
            earlier={},
            at=T + timedelta(days=4),
        )
        assert retry == ([], [])

    def test_unknown_retired_outside_schedule_and_before_last(self) -> None:
        p = {uuid4(): person("email")}
        with pytest.raises(err.CampaignNotFound):
            launched(CampaignState(campaign_id=uuid4()), p)
        state = defined(start=T + timedelta(days=1), end=T + timedelta(days=10))
        with pytest.raises(err.OutsideSchedule):
            launched(state, p, at=T + timedelta(hours=1))
        with pytest.raises(err.OutsideSchedule):
            launched(state, p, at=T + timedelta(days=11))
        e = launched(state, p, at=T + timedelta(days=5))
        state = applied(state, [e], T + timedelta(days=5))
        with pytest.raises(err.LaunchBeforeLast):
            launched(state, p, at=T + timedelta(days=4))
        retired = applied(
            state, decide.retire(state, cmd.RetireCampaign(campaign_id=state.campaign_id), at=T), T
        )
        with pytest.raises(err.CampaignIsRetired):
            launched(retired, p, at=T + timedelta(days=6))


class TestSendsInWindow:
    def test_counts_messages_of_every_campaign_of_the_channel_in_the_window(self) -> None:
        a, b = defined("a"), defined("b")
        x, y = person("email"), person("email")
        profiles = {p.customer_id: p for p in (x, y)}
        days = [T + timedelta(days=d) for d in (1, 5, 9)]
        ea = launched(a, profiles, at=days[0])
        a = applied(a, [ea], days[0])
        eb = launched(b, {x.customer_id: x}, at=days[1])
        b = applied(b, [eb], days[1])
        ea2 = launched(a, {y.customer_id: y}, at=days[2])
        a = applied(a, [ea2], days[2])
        channel_id = channel_stream_of("email")
        log = fold_channel(
            channel_id,
            [
                (1, days[0], ev.ChannelSendLogged(campaign_id=a.campaign_id, send_id=ea.send_id)),
                (2, days[1], ev.ChannelSendLogged(campaign_id=b.campaign_id, send_id=eb.send_id)),
                (3, days[2], ev.ChannelSendLogged(campaign_id=a.campaign_id, send_id=ea2.send_id)),
            ],
        )
        assert log.version == 3
        campaigns = {a.campaign_id: a, b.campaign_id: b}
        at = T + timedelta(days=10)
        assert decide.sends_in_window(log, campaigns, at=at, per_days=30) == {
            x.customer_id: 2,
            y.customer_id: 2,
        }
        # (at - 7 days, at] = (day 3, day 10]: day 1 is out
        assert decide.sends_in_window(log, campaigns, at=at, per_days=7) == {
            x.customer_id: 1,
            y.customer_id: 1,
        }
        # the window is half-open: a send exactly N days before is out
        assert decide.sends_in_window(log, campaigns, at=days[2], per_days=4) == {y.customer_id: 1}


class TestResponses:
    def sent_state(self) -> tuple[CampaignState, CustomerState, CustomerState]:
        state = defined(holdout_share=0.5)
        people = [person("email") for _ in range(40)]
        e = launched(state, {p.customer_id: p for p in people})
        state = applied(state, [e], T + timedelta(days=1))
        sent = next(p for p in people if p.customer_id in e.sent)
        held = next(p for p in people if p.customer_id in e.holdout)
        return state, sent, held

    def test_a_response_of_a_customer_sent_to(self) -> None:
        state, sent, _ = self.sent_state()
        order = uuid4()
        c = cmd.RecordResponse(
            campaign_id=state.campaign_id,
            customer_id=sent.customer_id,
            kind="converted",
            order_id=order,
        )
        (e,) = decide.record_response(state, c, at=T + timedelta(days=2))
        assert isinstance(e, ev.ResponseRecorded)
        assert (e.customer_id, e.kind, e.order_id) == (sent.customer_id, "converted", order)
        assert e.send_id == state.sends[0].send_id

    def test_not_sent_to_held_out_or_unknown(self) -> None:
        state, _, held = self.sent_state()
        for who in (held.customer_id, uuid4()):
            c = cmd.RecordResponse(campaign_id=state.campaign_id, customer_id=who, kind="opened")
            with pytest.raises(err.NotSentTo):
                decide.record_response(state, c, at=T + timedelta(days=2))

    def test_an_alias_of_the_customer_sent_to(self) -> None:
        state, sent, _ = self.sent_state()
        survivor = uuid4()
        c = cmd.RecordResponse(campaign_id=state.campaign_id, customer_id=survivor, kind="clicked")
        (e,) = decide.record_response(
            state, c, at=T + timedelta(days=2), aliases=[sent.customer_id]
        )
        assert e.customer_id == sent.customer_id  # type: ignore[attr-defined]

    def test_before_the_send(self) -> None:
        state, sent, _ = self.sent_state()
        c = cmd.RecordResponse(
            campaign_id=state.campaign_id, customer_id=sent.customer_id, kind="opened"
        )
        with pytest.raises(err.ResponseBeforeSend):
            decide.record_response(state, c, at=T)

    def test_unknown_campaign(self) -> None:
        c = cmd.RecordResponse(campaign_id=uuid4(), customer_id=uuid4(), kind="opened")
        with pytest.raises(err.CampaignNotFound):
            decide.record_response(CampaignState(campaign_id=c.campaign_id), c, at=T)


class TestRetire:
    def test_retire_once(self) -> None:
        state = defined()
        c = cmd.RetireCampaign(campaign_id=state.campaign_id, reason="done")
        events = decide.retire(state, c, at=T)
        assert events == [ev.CampaignRetired(reason="done")]
        assert decide.retire(applied(state, events, T), c, at=T) == []
        with pytest.raises(err.CampaignNotFound):
            decide.retire(CampaignState(campaign_id=uuid4()), c, at=T)


class TestHoldoutSplit:
    IDS = [UUID(int=i * 7919 + 13) for i in range(10_000)]

    @pytest.mark.parametrize("share", [0.05, 0.1, 0.25, 0.5])
    def test_share_within_tolerance(self, share: float) -> None:
        campaign = campaign_id_of("split")
        held = sum(decide.in_holdout(campaign, c, share) for c in self.IDS)
        # binomial: 4 standard deviations of 10,000 draws
        sd = (len(self.IDS) * share * (1 - share)) ** 0.5
        assert abs(held - share * len(self.IDS)) < 4 * sd

    def test_deterministic_and_independent_of_order(self) -> None:
        campaign = campaign_id_of("split")
        first = [c for c in self.IDS if decide.in_holdout(campaign, c, 0.1)]
        again = [c for c in reversed(self.IDS) if decide.in_holdout(campaign, c, 0.1)]
        assert first == again[::-1]

    def test_matches_the_documented_hash(self) -> None:
        campaign = campaign_id_of("split")
        for c in self.IDS[:500]:
            digest = hashlib.sha256(campaign.bytes + c.bytes).digest()
            expected = int.from_bytes(digest[:8], "big") / 2**64 < 0.3
            assert decide.in_holdout(campaign, c, 0.3) is expected

    def test_nested_shares_and_per_campaign(self) -> None:
        a, b = campaign_id_of("a"), campaign_id_of("b")
        small = {c for c in self.IDS if decide.in_holdout(a, c, 0.1)}
        large = {c for c in self.IDS if decide.in_holdout(a, c, 0.3)}
        assert small < large
        other = {c for c in self.IDS if decide.in_holdout(b, c, 0.1)}
        assert other != small
        assert not any(decide.in_holdout(a, c, 0.0) for c in self.IDS)
