"""Commands on surveys. The score's range depends on the survey's kind, so the domain checks it
(ScoreOutOfRange), not the decoder."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated
from uuid import UUID

import msgspec

from domain.commands import Command
from domain.surveys.events import SurveyKind, SurveyTrigger

Label = Annotated[str, msgspec.Meta(min_length=1, max_length=100)]
Text = Annotated[str, msgspec.Meta(min_length=1, max_length=2000)]


class SurveyCommand(Command, frozen=True, kw_only=True):
    """`occurred_at` is business time as the source reports it; the engine's clock if absent."""

    occurred_at: datetime | None = None


class SendSurvey(SurveyCommand, frozen=True, kw_only=True, tag="survey.send"):
    """What the survey is about: an order, a ticket and/or a product sku, and the agent."""

    survey_id: UUID | None = None
    customer_id: UUID
    kind: SurveyKind
    trigger: SurveyTrigger
    order_id: UUID | None = None
    ticket_id: UUID | None = None
    sku: Label | None = None
    agent: Label | None = None


class AnswerSurvey(SurveyCommand, frozen=True, kw_only=True, tag="survey.answer"):
    survey_id: UUID
    score: int
    comment: Text | None = None
