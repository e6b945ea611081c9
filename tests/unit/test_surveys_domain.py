"""decide/evolve of surveys: sending, answering (late too), score ranges, NPS and CSAT (pure)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from uuid import uuid4

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from domain.events import EVENTS, DomainEvent
from domain.surveys import commands as cmd
from domain.surveys import decide
from domain.surveys import errors as err
from domain.surveys import events as ev
from domain.surveys.state import SurveyState, csat, csat_mean, fold, nps, nps_category

T0 = datetime(2026, 5, 1, 9, tzinfo=UTC)
HOUR = timedelta(hours=1)


def apply(state: SurveyState, events: list[DomainEvent], at: datetime) -> SurveyState:
    return fold(
        state.survey_id, [(state.version + i, at, e) for i, e in enumerate(events, 1)], state
    )


def a_send(**kw: object) -> cmd.SendSurvey:
    fields: dict[str, object] = {"customer_id": uuid4(), "kind": "nps", "trigger": "periodic"}
    fields.update(kw)
    return cmd.SendSurvey(**fields)  # type: ignore[arg-type]


def sent(**kw: object) -> SurveyState:
    state = SurveyState(survey_id=uuid4())
    return apply(state, decide.send(state, a_send(**kw), customer_live=True, at=T0), T0)


def answered(state: SurveyState, score: int, at: datetime = T0 + HOUR) -> SurveyState:
    c = cmd.AnswerSurvey(survey_id=state.survey_id, score=score, comment="lovely")
    return apply(state, decide.answer(state, c, at=at), at)


class TestSend:
    def test_the_event_carries_what_the_survey_is_about(self) -> None:
        order, ticket = uuid4(), uuid4()
        c = a_send(kind="csat", trigger="after_ticket", order_id=order, ticket_id=ticket, sku="tea")
        c = msgspec.structs.replace(c, agent="ana")
        state = SurveyState(survey_id=uuid4())
        events = decide.send(state, c, customer_live=True, at=T0)
        assert events == [
            ev.SurveySent(
                customer_id=c.customer_id,
                kind="csat",
                trigger="after_ticket",
                order_id=order,
                ticket_id=ticket,
                sku="tea",
                agent="ana",
            )
        ]
        s = apply(state, events, T0)
        assert (s.sent, s.answered, s.kind, s.trigger, s.sent_at, s.version) == (
            True,
            False,
            "csat",
            "after_ticket",
            T0,
            1,
        )
        assert (s.order_id, s.ticket_id, s.sku, s.agent) == (order, ticket, "tea", "ana")

    def test_twice_is_an_error(self) -> None:
        with pytest.raises(err.SurveyAlreadySent) as info:
            decide.send(sent(), a_send(), customer_live=True, at=T0)
        assert info.value.code == "survey_already_sent"

    def test_the_customer_must_be_live(self) -> None:
        c = a_send()
        with pytest.raises(err.CustomerNotLive) as info:
            decide.send(SurveyState(survey_id=uuid4()), c, customer_live=False, at=T0)
        assert info.value.customer_id == c.customer_id and info.value.code == "customer_not_live"

    def test_kind_and_trigger_are_checked_on_the_wire(self) -> None:
        raw = b'{"customer_id": "6f1c2e8a-0b8e-4c1e-9a51-3f2b8c7d6e5f", "kind": "ces", "trigger": "periodic"}'
        with pytest.raises(msgspec.ValidationError):
            msgspec.json.decode(raw, type=cmd.SendSurvey)
        assert cmd.SendSurvey.command_name() == "survey.send"


class TestAnswer:
    def test_the_answer_copies_the_survey_so_views_need_only_it(self) -> None:
        order = uuid4()
        s = sent(kind="nps", trigger="after_delivery", order_id=order, sku="pot")
        c = cmd.AnswerSurvey(survey_id=s.survey_id, score=9, comment="great")
        events = decide.answer(s, c, at=T0 + HOUR)
        assert events == [
            ev.SurveyAnswered(
                kind="nps",
                score=9,
                trigger="after_delivery",
                order_id=order,
                sku="pot",
                comment="great",
            )
        ]
        s = apply(s, events, T0 + HOUR)
        assert (s.answered, s.score, s.comment, s.answered_at, s.version) == (
            True,
            9,
            "great",
            T0 + HOUR,
            2,
        )

    def test_the_comment_is_personal(self) -> None:
        spec = EVENTS.get("survey.answered")
        assert spec is not None and spec.personal == ("comment",)
        sent_spec = EVENTS.get("survey.sent")
        assert sent_spec is not None and sent_spec.personal == ()

    def test_a_late_answer_is_accepted_at_its_business_time(self) -> None:
        s = answered(sent(), 7, at=T0 - HOUR)
        assert s.answered_at == T0 - HOUR and s.last_occurred_at == T0 - HOUR

    def test_an_unsent_survey_is_not_found(self) -> None:
        c = cmd.AnswerSurvey(survey_id=uuid4(), score=5)
        with pytest.raises(err.SurveyNotFound) as info:
            decide.answer(SurveyState(survey_id=c.survey_id), c, at=T0)
        assert info.value.code == "survey_not_found"

    def test_twice_is_an_error(self) -> None:
        with pytest.raises(err.AlreadyAnswered) as info:
            answered(answered(sent(), 8), 8)
        assert info.value.code == "already_answered"

    @pytest.mark.parametrize(
        ("kind", "score", "ok"),
        [
            ("nps", 0, True),
            ("nps", 10, True),
            ("nps", -1, False),
            ("nps", 11, False),
            ("csat", 1, True),
            ("csat", 5, True),
            ("csat", 0, False),
            ("csat", 6, False),
        ],
    )
    def test_the_score_range_depends_on_the_kind(self, kind: str, score: int, ok: bool) -> None:
        s = sent(kind=kind)
        if ok:
            assert answered(s, score).score == score
            return
        with pytest.raises(err.ScoreOutOfRange) as info:
            answered(s, score)
        assert (info.value.kind, info.value.score, info.value.code) == (
            kind,
            score,
            "score_out_of_range",
        )


class TestNps:
    @pytest.mark.parametrize(
        ("score", "category"),
        [(0, "detractor"), (6, "detractor"), (7, "passive"), (8, "passive"), (9, "promoter")],
    )
    def test_categories(self, score: int, category: str) -> None:
        assert nps_category(score) == category

    def test_percent_promoters_minus_percent_detractors(self) -> None:
        assert nps([]) is None
        assert nps([10, 9, 8, 7, 6, 0, 10, 10, 3, 9]) == pytest.approx(20.0)
        assert nps([10]) == 100.0 and nps([0]) == -100.0 and nps([7, 8]) == 0.0

    def test_an_out_of_range_score_is_refused(self) -> None:
        with pytest.raises(err.ScoreOutOfRange):
            nps([5, 11])
        with pytest.raises(err.ScoreOutOfRange):
            nps_category(True)  # type: ignore[arg-type]

    @given(st.lists(st.integers(0, 10), min_size=1))
    def test_nps_is_always_within_minus_and_plus_100(self, scores: list[int]) -> None:
        value = nps(scores)
        assert value is not None and -100.0 <= value <= 100.0


class TestCsat:
    def test_share_of_four_and_five_and_the_mean(self) -> None:
        assert csat([]) is None and csat_mean([]) is None
        assert csat([5, 4, 3, 1]) == pytest.approx(50.0)
        assert csat_mean([5, 4, 3, 1]) == pytest.approx(3.25)
        assert csat(iter([4, 4, 5])) == 100.0

    def test_an_out_of_range_score_is_refused(self) -> None:
        with pytest.raises(err.ScoreOutOfRange):
            csat([0])
        with pytest.raises(err.ScoreOutOfRange):
            csat_mean([6])

    @given(st.lists(st.integers(1, 5), min_size=1))
    def test_csat_is_a_percent_and_the_mean_a_score(self, scores: list[int]) -> None:
        share, mean = csat(scores), csat_mean(scores)
        assert share is not None and 0.0 <= share <= 100.0
        assert mean is not None and 1.0 <= mean <= 5.0
