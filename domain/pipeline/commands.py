"""Commands of the sales pipeline. Each is a msgspec Struct named by its tag. Probabilities,
values and order lines are checked by the domain (named errors), not by the decoder."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated
from uuid import UUID

import msgspec

from domain.commands import Command
from domain.money import Money
from domain.orders.events import OrderLine, PaymentMethod
from domain.pipeline.events import PipelineStage

Label = Annotated[str, msgspec.Meta(min_length=1, max_length=100)]
NonEmpty = Annotated[str, msgspec.Meta(min_length=1, max_length=500)]


class PipelineCommand(Command, frozen=True, kw_only=True):
    """`occurred_at` is business time as the source reports it; the engine's clock if absent."""

    occurred_at: datetime | None = None


class DefinePipeline(PipelineCommand, frozen=True, kw_only=True, tag="pipeline.define"):
    name: Label
    stages: list[PipelineStage]


class OpenDeal(PipelineCommand, frozen=True, kw_only=True, tag="deal.open"):
    """`value` is the expected value; `products` are skus of the catalogue."""

    deal_id: UUID | None = None
    pipeline: Label
    customer_id: UUID
    lead_source: Label = "unknown"
    channel: Label = "unknown"
    products: list[Label] = []
    value: Money
    owner: Label | None = None


class MoveDeal(PipelineCommand, frozen=True, kw_only=True, tag="deal.move"):
    deal_id: UUID
    to_stage: Label


class ChangeDealValue(PipelineCommand, frozen=True, kw_only=True, tag="deal.change_value"):
    deal_id: UUID
    value: Money


class SendQuote(PipelineCommand, frozen=True, kw_only=True, tag="deal.send_quote"):
    deal_id: UUID
    quote_number: Label
    amount: Money
    valid_until: date


class AssignDeal(PipelineCommand, frozen=True, kw_only=True, tag="deal.assign"):
    deal_id: UUID
    owner: Label


class WinDeal(PipelineCommand, frozen=True, kw_only=True, tag="deal.win"):
    """The deal becomes an order of `items` (placed by the orders domain)."""

    deal_id: UUID
    order_id: UUID | None = None
    items: list[OrderLine]
    payment_method: PaymentMethod
    instalments: int | None = None


class LoseDeal(PipelineCommand, frozen=True, kw_only=True, tag="deal.lose"):
    deal_id: UUID
    reason: NonEmpty
    competitor: Label | None = None
