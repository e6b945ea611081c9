"""Events of a pipeline's stream and of a deal's stream. No personal data here: the owner is
an employee, the customer is named by id only."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Annotated, Literal
from uuid import UUID

import msgspec

from domain.events import EVENTS, PERSONAL, DomainEvent
from domain.money import Money

DealStatus = Literal["open", "won", "lost"]


class PipelineStage(msgspec.Struct, frozen=True, kw_only=True):
    """An open stage; `probability` (0..1) is the chance a deal in it is won."""

    name: str
    probability: Decimal


@EVENTS.register
class PipelineDefined(DomainEvent, frozen=True, kw_only=True, tag="pipeline.defined"):
    """The stages of a pipeline, in order, from now on (a redefinition replaces them)."""

    name: str
    stages: tuple[PipelineStage, ...]


@EVENTS.register
class DealOpened(DomainEvent, frozen=True, kw_only=True, tag="deal.opened"):
    """A deal for a customer entered the first stage of `pipeline`; `value` is expected."""

    pipeline: str
    stage: str
    customer_id: UUID
    lead_source: str
    channel: str
    products: tuple[str, ...] = ()
    value: Money
    owner: str | None = None


@EVENTS.register
class DealStageChanged(DomainEvent, frozen=True, kw_only=True, tag="deal.stage_changed"):
    from_stage: str
    to_stage: str


@EVENTS.register
class DealValueChanged(DomainEvent, frozen=True, kw_only=True, tag="deal.value_changed"):
    old: Money
    new: Money


@EVENTS.register
class QuoteSent(DomainEvent, frozen=True, kw_only=True, tag="deal.quote_sent"):
    quote_number: str
    amount: Money
    valid_until: date


@EVENTS.register
class DealAssigned(DomainEvent, frozen=True, kw_only=True, tag="deal.assigned"):
    owner: str
    previous: str | None = None


@EVENTS.register
class DealWon(DomainEvent, frozen=True, kw_only=True, tag="deal.won"):
    """The deal became order `order_id` (on the order's own stream) worth `value`."""

    order_id: UUID
    value: Money


@EVENTS.register
class DealLost(DomainEvent, frozen=True, kw_only=True, tag="deal.lost"):
    reason: Annotated[str, PERSONAL]  # free text: may say anything about the customer
    competitor: str | None = None
