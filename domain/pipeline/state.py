"""A pipeline and a deal as decisions and views need them, folded from their streams (pure)."""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal
from itertools import pairwise
from uuid import UUID, uuid5

import msgspec
from msgspec.structs import replace

from domain.events import DomainEvent
from domain.money import Money
from domain.pipeline import events as ev
from domain.streams import fold_events

PIPELINES_NS = UUID("70e8a0e9-95e7-451a-9004-4ed411e469ef")


def pipeline_stream_id(name: str) -> UUID:
    """The stream of a pipeline, derived from its name as given (case matters)."""
    return uuid5(PIPELINES_NS, name)


class PipelineState(msgspec.Struct, frozen=True, kw_only=True):
    pipeline_id: UUID
    version: int = 0
    name: str | None = None
    stages: tuple[ev.PipelineStage, ...] = ()
    last_occurred_at: datetime | None = None

    @property
    def defined(self) -> bool:
        return self.name is not None

    @property
    def first_stage(self) -> str:
        return self.stages[0].name

    def probability_of(self, stage: str) -> Decimal | None:
        return next((s.probability for s in self.stages if s.name == stage), None)


class StageVisit(msgspec.Struct, frozen=True, kw_only=True):
    stage: str
    entered_at: datetime


class DealState(msgspec.Struct, frozen=True, kw_only=True):
    deal_id: UUID
    version: int = 0
    status: ev.DealStatus | None = None
    pipeline: str | None = None
    stage: str | None = None
    stage_history: tuple[StageVisit, ...] = ()
    customer_id: UUID | None = None
    value: Money | None = None
    owner: str | None = None
    lead_source: str | None = None
    channel: str | None = None
    products: tuple[str, ...] = ()
    order_id: UUID | None = None
    lost_reason: str | None = None
    competitor: str | None = None
    opened_at: datetime | None = None
    closed_at: datetime | None = None
    last_occurred_at: datetime | None = None

    @property
    def opened(self) -> bool:
        return self.status is not None


def time_in_stages(state: DealState, until: datetime | None = None) -> dict[str, timedelta]:
    """Time spent in each stage, summed over its visits (moving back adds a second stay).
    The last stay ends when the deal closed, else at `until`; without either it is left out."""
    visits = state.stage_history
    end = state.closed_at if state.closed_at is not None else until
    spans = [(a.stage, b.entered_at - a.entered_at) for a, b in pairwise(visits)]
    if visits and end is not None:
        spans.append((visits[-1].stage, end - visits[-1].entered_at))
    out: dict[str, timedelta] = {}
    for stage, spent in spans:
        out[stage] = out.get(stage, timedelta()) + spent
    return out


def evolve_pipeline(state: PipelineState, event: DomainEvent) -> PipelineState:
    if isinstance(event, ev.PipelineDefined):
        return replace(state, name=event.name, stages=event.stages)
    return state


def evolve_deal(state: DealState, event: DomainEvent, at: datetime) -> DealState:
    """Apply one event of a deal's stream, which happened at business time `at` (pure)."""
    match event:
        case ev.DealOpened():
            return replace(
                state,
                status="open",
                pipeline=event.pipeline,
                stage=event.stage,
                stage_history=(StageVisit(stage=event.stage, entered_at=at),),
                customer_id=event.customer_id,
                value=event.value,
                owner=event.owner,
                lead_source=event.lead_source,
                channel=event.channel,
                products=event.products,
                opened_at=at,
            )
        case ev.DealStageChanged():
            visit = StageVisit(stage=event.to_stage, entered_at=at)
            return replace(state, stage=event.to_stage, stage_history=(*state.stage_history, visit))
        case ev.DealValueChanged():
            return replace(state, value=event.new)
        case ev.DealAssigned():
            return replace(state, owner=event.owner)
        case ev.DealWon():
            return replace(
                state, status="won", order_id=event.order_id, value=event.value, closed_at=at
            )
        case ev.DealLost():
            return replace(
                state,
                status="lost",
                lost_reason=event.reason,
                competitor=event.competitor,
                closed_at=at,
            )
    return state


def fold_pipeline(
    pipeline_id: UUID,
    events: list[tuple[int, datetime, DomainEvent]],
    start: PipelineState | None = None,
) -> PipelineState:
    """State after (version, occurred_at, payload) triples in version order, from `start`
    (a state folded earlier, whose version the first triple follows) or from nothing."""
    start = start if start is not None else PipelineState(pipeline_id=pipeline_id)
    return fold_events(lambda s, e, _at: evolve_pipeline(s, e), start, events)


def fold_deal(
    deal_id: UUID,
    events: list[tuple[int, datetime, DomainEvent]],
    start: DealState | None = None,
) -> DealState:
    """Like `fold_pipeline`, for a deal's stream."""
    start = start if start is not None else DealState(deal_id=deal_id)
    return fold_events(evolve_deal, start, events)
