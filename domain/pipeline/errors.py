"""Named errors for every invariant of pipelines and deals; `code` is stable for replies."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from uuid import UUID

from domain.errors import DomainError
from domain.money import Money


class PipelineError(DomainError):
    code = "pipeline_error"


class PipelineNotFound(PipelineError):
    code = "pipeline_not_found"

    def __init__(self, name: str) -> None:
        super().__init__(f"pipeline {name!r} is not defined")
        self.name = name


class EmptyPipeline(PipelineError):
    code = "empty_pipeline"

    def __init__(self, name: str) -> None:
        super().__init__(f"pipeline {name!r} needs at least one stage")
        self.name = name


class DuplicateStage(PipelineError):
    code = "duplicate_stage"

    def __init__(self, stage: str, pipeline: str) -> None:
        super().__init__(f"stage {stage!r} appears twice in pipeline {pipeline!r}")
        self.stage = stage
        self.pipeline = pipeline


class InvalidProbability(PipelineError):
    """Each probability is in [0, 1]; the last stage's is below 1, as a deal is only certain
    once won."""

    code = "invalid_probability"

    def __init__(self, stage: str, probability: Decimal, reason: str) -> None:
        super().__init__(f"probability {probability} of stage {stage!r}: {reason}")
        self.stage = stage
        self.probability = probability


class UnknownStage(PipelineError):
    code = "unknown_stage"

    def __init__(self, stage: str, pipeline: str) -> None:
        super().__init__(f"pipeline {pipeline!r} has no stage {stage!r}")
        self.stage = stage
        self.pipeline = pipeline


class DealError(DomainError):
    code = "deal_error"


class DealNotFound(DealError):
    code = "deal_not_found"

    def __init__(self, deal_id: UUID) -> None:
        super().__init__(f"deal {deal_id} was not opened")
        self.deal_id = deal_id


class DealAlreadyOpen(DealError):
    code = "deal_already_open"

    def __init__(self, deal_id: UUID) -> None:
        super().__init__(f"deal {deal_id} is already opened")
        self.deal_id = deal_id


class DealClosed(DealError):
    code = "deal_closed"

    def __init__(self, deal_id: UUID, status: str) -> None:
        super().__init__(f"deal {deal_id} is {status}; nothing more can happen to it")
        self.deal_id = deal_id
        self.status = status


class CustomerNotLive(DealError):
    """Unknown, merged away or forgotten: deals are opened for a live customer only."""

    code = "customer_not_live"

    def __init__(self, customer_id: UUID) -> None:
        super().__init__(f"customer {customer_id} is unknown, merged or forgotten")
        self.customer_id = customer_id


class ValueCurrencyMismatch(DealError):
    code = "value_currency_mismatch"

    def __init__(self, deal_currency: str, given: str) -> None:
        super().__init__(f"the deal is in {deal_currency}, not {given}")
        self.deal_currency = deal_currency
        self.given = given


class NegativeValue(DealError):
    code = "negative_value"

    def __init__(self, value: Money) -> None:
        super().__init__(f"a deal's value or quote cannot be negative ({value})")
        self.value = value


class EventBeforeLast(DealError):
    """A deal is a lifecycle stream: its business time never goes back."""

    code = "event_before_last"

    def __init__(self, deal_id: UUID, at: datetime, last: datetime) -> None:
        super().__init__(
            f"deal {deal_id}: {at.isoformat()} is before its last event ({last.isoformat()})"
        )
        self.deal_id = deal_id
        self.at = at
        self.last = last


class QuoteExpiresBeforeSent(DealError):
    code = "quote_expires_before_sent"

    def __init__(self, valid_until: date, sent_on: date) -> None:
        super().__init__(f"a quote valid until {valid_until} cannot be sent on {sent_on}")
        self.valid_until = valid_until
        self.sent_on = sent_on


class WinWithoutItems(DealError):
    code = "win_without_items"

    def __init__(self, deal_id: UUID) -> None:
        super().__init__(f"deal {deal_id} can only be won with the items of its order")
        self.deal_id = deal_id


class InvalidLineItem(DealError):
    """Quantity a whole number above 0, discount in [0, 1), unit price not negative: the rules
    of an order line (domain.orders), checked before the deal is recorded as won."""

    code = "invalid_line_item"

    def __init__(self, sku: str, reason: str) -> None:
        super().__init__(f"line {sku!r}: {reason}")
        self.sku = sku
        self.reason = reason
