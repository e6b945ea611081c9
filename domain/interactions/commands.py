"""Log an interaction on any channel. Late arrivals are welcome: `occurred_at` is business time."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal
from uuid import UUID

import msgspec

from domain.commands import Command
from domain.interactions.events import Answer, Direction, Minutes

Text = Annotated[str, msgspec.Meta(max_length=20_000)]
Short = Annotated[str, msgspec.Meta(min_length=1, max_length=500)]


class LogInteraction(Command, frozen=True, kw_only=True):
    customer_id: UUID
    interaction_id: UUID | None = None
    occurred_at: datetime | None = None


class LogEmail(LogInteraction, frozen=True, kw_only=True, tag="interaction.log_email"):
    direction: Direction
    subject: Text | None = None
    body: Text | None = None
    thread: Short | None = None


class LogCall(LogInteraction, frozen=True, kw_only=True, tag="interaction.log_call"):
    direction: Direction
    duration_min: Minutes
    outcome: Short | None = None
    notes: Text | None = None


class LogMeeting(LogInteraction, frozen=True, kw_only=True, tag="interaction.log_meeting"):
    duration_min: Minutes
    location: Short | None = None
    notes: Text | None = None


class LogQuestionnaire(
    LogInteraction, frozen=True, kw_only=True, tag="interaction.log_questionnaire"
):
    questionnaire: Short
    answers: list[Answer] = []


class LogConversation(
    LogInteraction, frozen=True, kw_only=True, tag="interaction.log_conversation"
):
    medium: Literal["chat", "in_person", "messenger", "social"]
    duration_min: Minutes | None = None
    summary: Text | None = None


class LogWebActivity(LogInteraction, frozen=True, kw_only=True, tag="interaction.log_web"):
    action: Literal["visit", "page_view", "form_submitted"]
    page: Short
    form: Short | None = None
    session: Short | None = None
    referrer: Short | None = None
