"""One event type per channel; the envelope's `channel` names the channel too."""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec

from domain.events import EVENTS, PERSONAL, DomainEvent

Direction = Literal["in", "out"]
Minutes = Annotated[float, msgspec.Meta(ge=0, le=24 * 60)]
FreeText = Annotated[str | None, PERSONAL]


@EVENTS.register
class EmailLogged(DomainEvent, frozen=True, kw_only=True, tag="interaction.email_logged"):
    direction: Direction
    subject: FreeText = None
    body: FreeText = None
    thread: str | None = None


@EVENTS.register
class CallLogged(DomainEvent, frozen=True, kw_only=True, tag="interaction.call_logged"):
    direction: Direction
    duration_min: Minutes
    outcome: str | None = None
    notes: FreeText = None


@EVENTS.register
class MeetingLogged(DomainEvent, frozen=True, kw_only=True, tag="interaction.meeting_logged"):
    duration_min: Minutes
    location: str | None = None
    notes: FreeText = None


class Answer(msgspec.Struct, frozen=True, kw_only=True):
    question: str
    answer: str


@EVENTS.register
class QuestionnaireAnswered(
    DomainEvent, frozen=True, kw_only=True, tag="interaction.questionnaire_answered"
):
    questionnaire: str
    answers: Annotated[list[Answer], PERSONAL] = []


@EVENTS.register
class ConversationLogged(
    DomainEvent, frozen=True, kw_only=True, tag="interaction.conversation_logged"
):
    medium: Literal["chat", "in_person", "messenger", "social"]
    duration_min: Minutes | None = None
    summary: FreeText = None


@EVENTS.register
class WebActivity(DomainEvent, frozen=True, kw_only=True, tag="interaction.web_activity"):
    action: Literal["visit", "page_view", "form_submitted"]
    page: str
    form: str | None = None
    session: str | None = None
    referrer: str | None = None


CHANNEL_OF: dict[type[DomainEvent], str] = {
    EmailLogged: "email",
    CallLogged: "call",
    MeetingLogged: "meeting",
    QuestionnaireAnswered: "questionnaire",
    ConversationLogged: "conversation",
    WebActivity: "web",
}
