"""decide/evolve of pipelines and deals: pure, no I/O."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from uuid import UUID, uuid4

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from domain.events import EVENTS, DomainEvent
from domain.money import Money
from domain.orders.events import OrderLine
from domain.orders.state import line_net
from domain.pipeline import commands as cmd
from domain.pipeline import decide
from domain.pipeline import errors as err
from domain.pipeline import events as ev
from domain.pipeline.state import (
    DealState,
    PipelineState,
    StageVisit,
    fold_deal,
    fold_pipeline,
    pipeline_stream_id,
    time_in_stages,
)
from tests.strategies import payloads

T = datetime(2026, 5, 1, 9, tzinfo=UTC)
DAY = timedelta(days=1)
STAGES = ["qualify", "propose", "negotiate"]
DEAL_EVENTS = [
    ev.PipelineDefined,
    ev.DealOpened,
    ev.DealStageChanged,
    ev.DealValueChanged,
    ev.QuoteSent,
    ev.DealAssigned,
    ev.DealWon,
    ev.DealLost,
]


def eur(x: str | int) -> Money:
    return Money(amount=Decimal(x), currency="EUR")


def stage(name: str, p: str) -> ev.PipelineStage:
    return ev.PipelineStage(name=name, probability=Decimal(p))


def define(*stages: ev.PipelineStage, name: str = "b2b") -> cmd.DefinePipeline:
    return cmd.DefinePipeline(name=name, stages=list(stages))


def a_pipeline() -> PipelineState:
    state = PipelineState(pipeline_id=pipeline_stream_id("b2b"))
    c = define(stage("qualify", "0.1"), stage("propose", "0.4"), stage("negotiate", "0.7"))
    return fold_pipeline(state.pipeline_id, [(1, T, e) for e in decide.define_pipeline(state, c)])


PIPELINE = a_pipeline()


def apply(state: DealState, events: list[DomainEvent], at: datetime) -> DealState:
    triples = [(state.version + i, at, e) for i, e in enumerate(events, 1)]
    return fold_deal(state.deal_id, triples, state)


def a_deal(at: datetime = T, **kw: object) -> DealState:
    state = DealState(deal_id=uuid4())
    c = cmd.OpenDeal(
        pipeline="b2b",
        customer_id=UUID(int=7),
        lead_source="fair",
        channel="meeting",
        products=["ROUTER", "PLAN-M"],
        value=eur(1000),
        **kw,  # type: ignore[arg-type]
    )
    return apply(state, decide.open_deal(state, PIPELINE, c, customer_live=True), at)


def moved(state: DealState, to: str, at: datetime) -> DealState:
    c = cmd.MoveDeal(deal_id=state.deal_id, to_stage=to)
    return apply(state, decide.move(state, PIPELINE, c, at), at)


def line(sku: str, qty: int, price: str, discount: str = "0", cur: str = "EUR") -> OrderLine:
    return OrderLine(
        sku=sku,
        quantity=qty,
        unit_price=Money(amount=Decimal(price), currency=cur),
        discount=Decimal(discount),
    )


def win(state: DealState, *items: OrderLine) -> cmd.WinDeal:
    return cmd.WinDeal(deal_id=state.deal_id, items=list(items), payment_method="invoice")


def won(state: DealState, at: datetime) -> DealState:
    order = uuid4()
    return apply(state, decide.win(state, win(state, line("A", 1, "10")), order, at), at)


def lost(state: DealState, at: datetime) -> DealState:
    c = cmd.LoseDeal(deal_id=state.deal_id, reason="price")
    return apply(state, decide.lose(state, c, at), at)


class TestDefinePipeline:
    def test_define_keeps_the_stages_in_order(self) -> None:
        assert PIPELINE.defined and PIPELINE.name == "b2b"
        assert [s.name for s in PIPELINE.stages] == STAGES
        assert PIPELINE.first_stage == "qualify"
        assert PIPELINE.probability_of("propose") == Decimal("0.4")
        assert PIPELINE.probability_of("nope") is None

    def test_probabilities_need_not_rise_and_may_be_0(self) -> None:
        c = define(stage("a", "0.5"), stage("b", "0.2"), stage("c", "0"))
        assert decide.define_pipeline(PipelineState(pipeline_id=uuid4()), c) == [
            ev.PipelineDefined(name="b2b", stages=tuple(c.stages))
        ]

    def test_redefining_replaces_the_stages_and_the_same_is_no_change(self) -> None:
        same = define(stage("qualify", "0.1"), stage("propose", "0.4"), stage("negotiate", "0.7"))
        assert decide.define_pipeline(PIPELINE, same) == []
        other = define(stage("qualify", "0.2"), stage("close", "0.9"))
        events = decide.define_pipeline(PIPELINE, other)
        state = fold_pipeline(PIPELINE.pipeline_id, [(2, T, e) for e in events], PIPELINE)
        assert [s.name for s in state.stages] == ["qualify", "close"] and state.version == 2

    def test_an_empty_pipeline_is_refused(self) -> None:
        with pytest.raises(err.EmptyPipeline) as info:
            decide.define_pipeline(PipelineState(pipeline_id=uuid4()), define())
        assert info.value.code == "empty_pipeline"

    def test_a_stage_appears_once(self) -> None:
        with pytest.raises(err.DuplicateStage) as info:
            decide.define_pipeline(
                PipelineState(pipeline_id=uuid4()), define(stage("a", "0.1"), stage("a", "0.2"))
            )
        assert (info.value.code, info.value.stage) == ("duplicate_stage", "a")

    @pytest.mark.parametrize(
        "stages",
        [
            [stage("a", "-0.01"), stage("b", "0.5")],
            [stage("a", "1.01"), stage("b", "0.5")],
            [stage("a", "0.5"), stage("b", "1")],
        ],
        ids=["below_0", "above_1", "last_is_certain"],
    )
    def test_probabilities_are_in_0_1_and_the_last_below_1(
        self, stages: list[ev.PipelineStage]
    ) -> None:
        with pytest.raises(err.InvalidProbability) as info:
            decide.define_pipeline(PipelineState(pipeline_id=uuid4()), define(*stages))
        assert info.value.code == "invalid_probability"

    def test_stream_id_is_derived_from_the_name(self) -> None:
        assert pipeline_stream_id("b2b") == pipeline_stream_id("b2b") != pipeline_stream_id("B2B")


class TestOpen:
    def test_a_deal_opens_in_the_first_stage(self) -> None:
        s = a_deal(owner="eve")
        assert (s.status, s.pipeline, s.stage, s.customer_id, s.value, s.owner) == (
            "open",
            "b2b",
            "qualify",
            UUID(int=7),
            eur(1000),
            "eve",
        )
        assert (s.lead_source, s.channel, s.products) == ("fair", "meeting", ("ROUTER", "PLAN-M"))
        assert s.stage_history == (StageVisit(stage="qualify", entered_at=T),)
        assert (s.opened_at, s.closed_at, s.last_occurred_at, s.version) == (T, None, T, 1)

    def _open(
        self, state: DealState, pipeline: PipelineState, live: bool = True, value: str = "1"
    ) -> list[DomainEvent]:
        c = cmd.OpenDeal(pipeline="b2b", customer_id=UUID(int=7), value=eur(value))
        return decide.open_deal(state, pipeline, c, customer_live=live)

    def test_twice_is_an_error(self) -> None:
        with pytest.raises(err.DealAlreadyOpen):
            self._open(a_deal(), PIPELINE)
        with pytest.raises(err.DealAlreadyOpen):
            self._open(won(a_deal(), T), PIPELINE)

    def test_the_pipeline_must_exist(self) -> None:
        with pytest.raises(err.PipelineNotFound) as info:
            self._open(DealState(deal_id=uuid4()), PipelineState(pipeline_id=uuid4()))
        assert info.value.name == "b2b"

    def test_the_customer_must_be_live(self) -> None:
        with pytest.raises(err.CustomerNotLive) as info:
            self._open(DealState(deal_id=uuid4()), PIPELINE, live=False)
        assert info.value.customer_id == UUID(int=7)

    def test_the_value_is_not_negative(self) -> None:
        with pytest.raises(err.NegativeValue):
            self._open(DealState(deal_id=uuid4()), PIPELINE, value="-0.01")


class TestMove:
    def test_forward_and_back_keep_the_stage_history(self) -> None:
        s = moved(
            moved(moved(a_deal(), "negotiate", T + DAY), "propose", T + 3 * DAY),
            "negotiate",
            T + 4 * DAY,
        )
        assert s.stage == "negotiate"
        assert [(v.stage, (v.entered_at - T).days) for v in s.stage_history] == [
            ("qualify", 0),
            ("negotiate", 1),
            ("propose", 3),
            ("negotiate", 4),
        ]
        assert time_in_stages(s, until=T + 10 * DAY) == {
            "qualify": DAY,
            "negotiate": 2 * DAY + 6 * DAY,
            "propose": DAY,
        }

    def test_moving_to_the_current_stage_records_nothing(self) -> None:
        s = a_deal()
        assert (
            decide.move(s, PIPELINE, cmd.MoveDeal(deal_id=s.deal_id, to_stage="qualify"), T) == []
        )

    def test_the_event_names_both_stages(self) -> None:
        s = a_deal()
        c = cmd.MoveDeal(deal_id=s.deal_id, to_stage="propose")
        assert decide.move(s, PIPELINE, c, T) == [
            ev.DealStageChanged(from_stage="qualify", to_stage="propose")
        ]

    def test_an_unknown_stage_is_named(self) -> None:
        s = a_deal()
        with pytest.raises(err.UnknownStage) as info:
            decide.move(s, PIPELINE, cmd.MoveDeal(deal_id=s.deal_id, to_stage="won"), T)
        assert (info.value.code, info.value.stage, info.value.pipeline) == (
            "unknown_stage",
            "won",
            "b2b",
        )

    def test_an_unknown_deal_is_named(self) -> None:
        c = cmd.MoveDeal(deal_id=uuid4(), to_stage="propose")
        with pytest.raises(err.DealNotFound):
            decide.move(DealState(deal_id=c.deal_id), PIPELINE, c, T)

    def test_the_pipeline_must_be_loaded(self) -> None:
        s = a_deal()
        with pytest.raises(err.PipelineNotFound):
            decide.move(
                s,
                PipelineState(pipeline_id=uuid4()),
                cmd.MoveDeal(deal_id=s.deal_id, to_stage="propose"),
                T,
            )


class TestValueQuoteOwner:
    def test_value_change_records_old_and_new(self) -> None:
        s = a_deal()
        c = cmd.ChangeDealValue(deal_id=s.deal_id, value=eur(1500))
        events = decide.change_value(s, c, T)
        assert events == [ev.DealValueChanged(old=eur(1000), new=eur(1500))]
        s = apply(s, events, T)
        assert s.value == eur(1500)
        assert decide.change_value(s, c, T) == []

    @pytest.mark.parametrize(
        ("value", "error"),
        [
            (Money(amount=Decimal(1), currency="USD"), err.ValueCurrencyMismatch),
            (eur(-1), err.NegativeValue),
        ],
    )
    def test_value_and_quote_stay_in_the_currency_and_positive(
        self, value: Money, error: type[Exception]
    ) -> None:
        s = a_deal()
        with pytest.raises(error):
            decide.change_value(s, cmd.ChangeDealValue(deal_id=s.deal_id, value=value), T)
        quote = cmd.SendQuote(
            deal_id=s.deal_id, quote_number="Q-1", amount=value, valid_until=date(2026, 6, 1)
        )
        with pytest.raises(error):
            decide.send_quote(s, quote, T)

    def test_a_quote_is_valid_at_least_on_the_day_it_is_sent(self) -> None:
        s = a_deal()
        ok = cmd.SendQuote(
            deal_id=s.deal_id, quote_number="Q-1", amount=eur(900), valid_until=T.date()
        )
        assert decide.send_quote(s, ok, T) == [
            ev.QuoteSent(quote_number="Q-1", amount=eur(900), valid_until=T.date())
        ]
        late = msgspec.structs.replace(ok, valid_until=T.date() - DAY)
        with pytest.raises(err.QuoteExpiresBeforeSent) as info:
            decide.send_quote(s, late, T)
        assert info.value.code == "quote_expires_before_sent"

    def test_assign_remembers_the_previous_owner(self) -> None:
        s = a_deal(owner="eve")
        c = cmd.AssignDeal(deal_id=s.deal_id, owner="bob")
        events = decide.assign(s, c, T)
        assert events == [ev.DealAssigned(owner="bob", previous="eve")]
        s = apply(s, events, T)
        assert s.owner == "bob"
        assert decide.assign(s, c, T) == []


class TestWin:
    def test_value_is_the_sum_of_discounted_lines_to_the_cent(self) -> None:
        s = a_deal()
        items = (line("ROUTER", 3, "19.99", "0.15"), line("PLAN-M", 12, "9.90"))
        order = uuid4()
        events = decide.win(s, win(s, *items), order, T + DAY)
        # 3 x 19.99 x 0.85 = 50.9745 -> 50.97; 12 x 9.90 = 118.80
        assert events == [ev.DealWon(order_id=order, value=eur("169.77"))]
        assert decide.items_value(list(items), "EUR") == line_net(items[0]) + line_net(items[1])
        s = apply(s, events, T + DAY)
        assert (s.status, s.order_id, s.value, s.closed_at) == (
            "won",
            order,
            eur("169.77"),
            T + DAY,
        )

    def test_lines_in_another_currency_are_refused(self) -> None:
        s = a_deal()
        with pytest.raises(err.ValueCurrencyMismatch) as info:
            decide.win(s, win(s, line("A", 1, "1"), line("B", 1, "1", cur="USD")), uuid4(), T)
        assert (info.value.code, info.value.deal_currency, info.value.given) == (
            "value_currency_mismatch",
            "EUR",
            "USD",
        )

    def test_a_win_needs_items(self) -> None:
        s = a_deal()
        with pytest.raises(err.WinWithoutItems):
            decide.win(s, win(s), uuid4(), T)

    @pytest.mark.parametrize(
        "item",
        [line("A", 0, "1"), line("A", 1, "1", "1"), line("A", 1, "1", "-0.1"), line("A", 1, "-1")],
        ids=["no_quantity", "full_discount", "negative_discount", "negative_price"],
    )
    def test_order_line_rules(self, item: OrderLine) -> None:
        s = a_deal()
        with pytest.raises(err.InvalidLineItem) as info:
            decide.win(s, win(s, item), uuid4(), T)
        assert info.value.code == "invalid_line_item"


class TestClosed:
    def test_lose_records_reason_and_competitor(self) -> None:
        s = a_deal()
        c = cmd.LoseDeal(deal_id=s.deal_id, reason="price", competitor="Acme")
        events = decide.lose(s, c, T + DAY)
        assert events == [ev.DealLost(reason="price", competitor="Acme")]
        s = apply(s, events, T + DAY)
        assert (s.status, s.lost_reason, s.competitor, s.closed_at) == (
            "lost",
            "price",
            "Acme",
            T + DAY,
        )
        assert time_in_stages(s, until=T + 100 * DAY) == {"qualify": DAY}

    @pytest.mark.parametrize("close", [won, lost], ids=["won", "lost"])
    def test_nothing_happens_to_a_closed_deal(self, close) -> None:  # type: ignore[no-untyped-def]
        s = close(a_deal(), T)
        d = s.deal_id
        attempts = [
            lambda: decide.move(s, PIPELINE, cmd.MoveDeal(deal_id=d, to_stage="qualify"), T),
            lambda: decide.change_value(s, cmd.ChangeDealValue(deal_id=d, value=eur(1)), T),
            lambda: decide.assign(s, cmd.AssignDeal(deal_id=d, owner="x"), T),
            lambda: decide.send_quote(
                s,
                cmd.SendQuote(deal_id=d, quote_number="Q", amount=eur(1), valid_until=T.date()),
                T,
            ),
            lambda: decide.win(s, win(s, line("A", 1, "1")), uuid4(), T),
            lambda: decide.lose(s, cmd.LoseDeal(deal_id=d, reason="again"), T),
        ]
        for attempt in attempts:
            with pytest.raises(err.DealClosed) as info:
                attempt()
            assert info.value.code == "deal_closed" and info.value.status == s.status


class TestBusinessTime:
    EARLIER = T - timedelta(seconds=1)

    @pytest.mark.parametrize(
        "decision",
        [
            lambda s, at: decide.move(
                s, PIPELINE, cmd.MoveDeal(deal_id=s.deal_id, to_stage="propose"), at
            ),
            lambda s, at: decide.change_value(
                s, cmd.ChangeDealValue(deal_id=s.deal_id, value=eur(5)), at
            ),
            lambda s, at: decide.send_quote(
                s,
                cmd.SendQuote(
                    deal_id=s.deal_id, quote_number="Q", amount=eur(5), valid_until=T.date()
                ),
                at,
            ),
            lambda s, at: decide.assign(s, cmd.AssignDeal(deal_id=s.deal_id, owner="bob"), at),
            lambda s, at: decide.win(s, win(s, line("A", 1, "1")), uuid4(), at),
            lambda s, at: decide.lose(s, cmd.LoseDeal(deal_id=s.deal_id, reason="x"), at),
        ],
        ids=["move", "change_value", "send_quote", "assign", "win", "lose"],
    )
    def test_an_event_before_the_last_is_refused_the_same_time_is_not(self, decision) -> None:  # type: ignore[no-untyped-def]
        s = a_deal()
        assert decision(s, T)
        with pytest.raises(err.EventBeforeLast) as info:
            decision(s, self.EARLIER)
        assert (info.value.code, info.value.at, info.value.last) == (
            "event_before_last",
            self.EARLIER,
            T,
        )

    def test_a_no_op_is_not_an_event_so_time_is_not_checked(self) -> None:
        s = a_deal()
        c = cmd.MoveDeal(deal_id=s.deal_id, to_stage="qualify")
        assert decide.move(s, PIPELINE, c, self.EARLIER) == []

    @settings(max_examples=200, deadline=None)
    @given(
        moves=st.lists(
            st.tuples(st.sampled_from(STAGES), st.integers(0, 10 * 24 * 3600)), max_size=15
        )
    )
    def test_folding_random_moves(self, moves: list[tuple[str, int]]) -> None:
        s, at, real, current = a_deal(), T, 0, "qualify"
        for to, gap in moves:
            at += timedelta(seconds=gap)
            s = moved(s, to, at)
            real += to != current
            current = to
        assert s.stage == current
        assert len(s.stage_history) == real + 1 == s.version
        entered = [v.entered_at for v in s.stage_history]
        assert entered == sorted(entered)
        total = sum(time_in_stages(s, until=at).values(), timedelta())
        assert total == at - T


class TestContract:
    def test_command_names(self) -> None:
        names = [
            c.command_name()
            for c in (
                cmd.DefinePipeline,
                cmd.OpenDeal,
                cmd.MoveDeal,
                cmd.ChangeDealValue,
                cmd.SendQuote,
                cmd.AssignDeal,
                cmd.WinDeal,
                cmd.LoseDeal,
            )
        ]
        assert names == [
            "pipeline.define",
            "deal.open",
            "deal.move",
            "deal.change_value",
            "deal.send_quote",
            "deal.assign",
            "deal.win",
            "deal.lose",
        ]

    @pytest.mark.parametrize("cls", DEAL_EVENTS, ids=lambda c: c.__struct_config__.tag)
    def test_events_are_registered_with_only_free_text_personal(
        self, cls: type[DomainEvent]
    ) -> None:
        """A lost deal's reason is free text (it may say anything about the customer)."""
        spec = EVENTS.spec_of(cls)
        assert spec.personal == (("reason",) if spec.tag == "deal.lost" else ())
        assert EVENTS.get(spec.tag) is spec

    @pytest.mark.parametrize("cls", DEAL_EVENTS, ids=lambda c: c.__struct_config__.tag)
    def test_events_round_trip_through_json(self, cls: type[DomainEvent]) -> None:
        decoder = msgspec.json.Decoder(cls)

        @settings(max_examples=25, deadline=None)
        @given(payloads(cls))
        def check(event: DomainEvent) -> None:
            assert decoder.decode(msgspec.json.encode(event)) == event

        check()

    def test_a_win_command_decodes_from_json(self) -> None:
        raw = (
            b'{"deal_id": "00000000-0000-0000-0000-000000000001", "payment_method": "card",'
            b' "items": [{"sku": "A", "quantity": 2, "unit_price":'
            b' {"amount": "9.90", "currency": "EUR"}, "discount": "0.1"}]}'
        )
        c = msgspec.json.decode(raw, type=cmd.WinDeal)
        assert c.items == [line("A", 2, "9.90", "0.1")] and c.order_id is None
