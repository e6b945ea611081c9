"""A survey as decisions need it, folded from its stream; pure NPS and CSAT helpers."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from uuid import UUID

import msgspec
from msgspec.structs import replace

from domain.events import DomainEvent
from domain.streams import fold_events
from domain.surveys import errors as err
from domain.surveys import events as ev

SCORE_RANGE: dict[str, tuple[int, int]] = {"nps": (0, 10), "csat": (1, 5)}


class SurveyState(msgspec.Struct, frozen=True, kw_only=True):
    survey_id: UUID
    version: int = 0
    customer_id: UUID | None = None
    kind: ev.SurveyKind | None = None
    trigger: ev.SurveyTrigger | None = None
    order_id: UUID | None = None
    ticket_id: UUID | None = None
    sku: str | None = None
    agent: str | None = None
    sent_at: datetime | None = None
    score: int | None = None
    comment: str | None = None
    answered_at: datetime | None = None
    last_occurred_at: datetime | None = None

    @property
    def sent(self) -> bool:
        return self.sent_at is not None

    @property
    def answered(self) -> bool:
        return self.answered_at is not None


def check_score(kind: ev.SurveyKind, score: int) -> None:
    """NPS scores are 0..10, CSAT scores 1..5 (both inclusive, whole numbers)."""
    low, high = SCORE_RANGE[kind]
    if isinstance(score, bool) or not isinstance(score, int) or not low <= score <= high:
        raise err.ScoreOutOfRange(kind, score)


def nps_category(score: int) -> ev.NpsCategory:
    """9-10 promoter, 7-8 passive, 0-6 detractor."""
    check_score("nps", score)
    if score >= 9:
        return "promoter"
    return "passive" if score >= 7 else "detractor"


def nps(scores: Iterable[int]) -> float | None:
    """Net Promoter Score: percent of promoters minus percent of detractors, in [-100, 100];
    None without scores."""
    categories = [nps_category(s) for s in scores]
    if not categories:
        return None
    promoters = categories.count("promoter")
    detractors = categories.count("detractor")
    return 100.0 * (promoters - detractors) / len(categories)


def csat(scores: Iterable[int]) -> float | None:
    """CSAT as the usual top-two-box share: percent of answers scoring 4 or 5, in [0, 100];
    None without scores. `csat_mean` gives the mean score for those who want it."""
    checked = _csat_scores(scores)
    if not checked:
        return None
    return 100.0 * sum(1 for s in checked if s >= 4) / len(checked)


def csat_mean(scores: Iterable[int]) -> float | None:
    """Mean CSAT score in [1, 5]; None without scores."""
    checked = _csat_scores(scores)
    return sum(checked) / len(checked) if checked else None


def _csat_scores(scores: Iterable[int]) -> list[int]:
    checked = list(scores)
    for s in checked:
        check_score("csat", s)
    return checked


def evolve(state: SurveyState, event: DomainEvent, at: datetime) -> SurveyState:
    """Apply one event of the survey's stream, which happened at business time `at` (pure)."""
    match event:
        case ev.SurveySent():
            return replace(
                state,
                customer_id=event.customer_id,
                kind=event.kind,
                trigger=event.trigger,
                order_id=event.order_id,
                ticket_id=event.ticket_id,
                sku=event.sku,
                agent=event.agent,
                sent_at=at,
            )
        case ev.SurveyAnswered():
            return replace(state, score=event.score, comment=event.comment, answered_at=at)
    return state


def fold(
    survey_id: UUID,
    events: list[tuple[int, datetime, DomainEvent]],
    start: SurveyState | None = None,
) -> SurveyState:
    """State after (version, occurred_at, payload) triples in version order, from `start`
    (a state folded earlier, whose version the first triple follows) or from nothing."""
    start = start if start is not None else SurveyState(survey_id=survey_id)
    return fold_events(evolve, start, events)
