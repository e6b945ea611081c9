"""Events of a survey's stream. `survey.answered` repeats what the survey was about, so a view
of satisfaction needs that event only; the comment is personal."""

from __future__ import annotations

from typing import Annotated, Literal
from uuid import UUID

from domain.events import EVENTS, PERSONAL, DomainEvent

SurveyKind = Literal["nps", "csat"]
SurveyTrigger = Literal["after_delivery", "after_ticket", "periodic"]
NpsCategory = Literal["promoter", "passive", "detractor"]


@EVENTS.register
class SurveySent(DomainEvent, frozen=True, kw_only=True, tag="survey.sent"):
    customer_id: UUID
    kind: SurveyKind
    trigger: SurveyTrigger
    order_id: UUID | None = None
    ticket_id: UUID | None = None
    sku: str | None = None
    agent: str | None = None


@EVENTS.register
class SurveyAnswered(DomainEvent, frozen=True, kw_only=True, tag="survey.answered"):
    kind: SurveyKind
    score: int
    trigger: SurveyTrigger
    order_id: UUID | None = None
    ticket_id: UUID | None = None
    sku: str | None = None
    agent: str | None = None
    comment: Annotated[str | None, PERSONAL] = None
