"""Decisions on a survey: `decide(state, command, ..., at) -> events` (pure).

Surveys are not a lifecycle stream: an answer may be recorded after the fact with an earlier
business time, so `at` is not checked against the last event.
"""

from __future__ import annotations

from datetime import datetime

from domain.events import DomainEvent
from domain.surveys import commands as cmd
from domain.surveys import errors as err
from domain.surveys import events as ev
from domain.surveys.state import SurveyState, check_score


def send(
    state: SurveyState, c: cmd.SendSurvey, *, customer_live: bool, at: datetime
) -> list[DomainEvent]:
    if state.sent:
        raise err.SurveyAlreadySent(state.survey_id)
    if not customer_live:
        raise err.CustomerNotLive(c.customer_id)
    return [
        ev.SurveySent(
            customer_id=c.customer_id,
            kind=c.kind,
            trigger=c.trigger,
            order_id=c.order_id,
            ticket_id=c.ticket_id,
            sku=c.sku,
            agent=c.agent,
        )
    ]


def answer(state: SurveyState, c: cmd.AnswerSurvey, *, at: datetime) -> list[DomainEvent]:
    """The answer copies what the survey was about, so views read it alone."""
    if not state.sent or state.kind is None or state.trigger is None:
        raise err.SurveyNotFound(state.survey_id)
    if state.answered:
        raise err.AlreadyAnswered(state.survey_id)
    check_score(state.kind, c.score)
    return [
        ev.SurveyAnswered(
            kind=state.kind,
            score=c.score,
            trigger=state.trigger,
            order_id=state.order_id,
            ticket_id=state.ticket_id,
            sku=state.sku,
            agent=state.agent,
            comment=c.comment,
        )
    ]
