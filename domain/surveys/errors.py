"""Named errors for every invariant of a survey; `code` is stable for replies and logs."""

from __future__ import annotations

from uuid import UUID

from domain.errors import DomainError


class SurveyError(DomainError):
    code = "survey_error"


class SurveyNotFound(SurveyError):
    code = "survey_not_found"

    def __init__(self, survey_id: UUID) -> None:
        super().__init__(f"survey {survey_id} was not sent")
        self.survey_id = survey_id


class SurveyAlreadySent(SurveyError):
    code = "survey_already_sent"

    def __init__(self, survey_id: UUID) -> None:
        super().__init__(f"survey {survey_id} was already sent")
        self.survey_id = survey_id


class AlreadyAnswered(SurveyError):
    """A survey takes one answer; a change of mind is a new survey."""

    code = "already_answered"

    def __init__(self, survey_id: UUID) -> None:
        super().__init__(f"survey {survey_id} was already answered")
        self.survey_id = survey_id


class ScoreOutOfRange(SurveyError):
    code = "score_out_of_range"

    def __init__(self, kind: str, score: int) -> None:
        low, high = (0, 10) if kind == "nps" else (1, 5)
        super().__init__(f"a {kind} score is a whole number from {low} to {high}, not {score}")
        self.kind = kind
        self.score = score


class CustomerNotLive(SurveyError):
    """Unknown, merged away or forgotten: surveys go to a live customer only."""

    code = "customer_not_live"

    def __init__(self, customer_id: UUID) -> None:
        super().__init__(f"customer {customer_id} is unknown, merged or forgotten")
        self.customer_id = customer_id
