"""Decisions of pipelines and deals: `decide(state, ..., command, at) -> events` (pure).

A command that changes nothing decides no events (moving to the current stage); a command
that breaks an invariant raises a named error. `at` is the command's business time: a deal's
stream refuses events before its last one (checked only when there is something to record).
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from uuid import UUID

from domain.events import DomainEvent
from domain.money import Money
from domain.orders.events import OrderLine
from domain.pipeline import commands as cmd
from domain.pipeline import errors as err
from domain.pipeline import events as ev
from domain.pipeline.state import DealState, PipelineState

ONE = Decimal(1)


def define_pipeline(state: PipelineState, c: cmd.DefinePipeline) -> list[DomainEvent]:
    """Define or redefine: deals keep their stage even if a redefinition drops it."""
    if not c.stages:
        raise err.EmptyPipeline(c.name)
    seen: set[str] = set()
    for stage in c.stages:
        if stage.name in seen:
            raise err.DuplicateStage(stage.name, c.name)
        seen.add(stage.name)
        if not 0 <= stage.probability <= 1:
            raise err.InvalidProbability(stage.name, stage.probability, "must be in [0, 1]")
    last = c.stages[-1]
    if last.probability >= 1:
        raise err.InvalidProbability(last.name, last.probability, "the last stage must be < 1")
    stages = tuple(c.stages)
    if state.defined and state.name == c.name and state.stages == stages:
        return []
    return [ev.PipelineDefined(name=c.name, stages=stages)]


def ensure_open(state: DealState) -> None:
    if not state.opened:
        raise err.DealNotFound(state.deal_id)
    if state.status != "open":
        raise err.DealClosed(state.deal_id, str(state.status))


def _check_value(state: DealState | None, value: Money) -> None:
    if state is not None and state.value is not None and value.currency != state.value.currency:
        raise err.ValueCurrencyMismatch(state.value.currency, value.currency)
    if value.amount < 0:
        raise err.NegativeValue(value)


def _in_order(state: DealState, at: datetime, events: list[DomainEvent]) -> list[DomainEvent]:
    last = state.last_occurred_at
    if events and last is not None and at < last:
        raise err.EventBeforeLast(state.deal_id, at, last)
    return events


def open_deal(
    state: DealState, pipeline: PipelineState, c: cmd.OpenDeal, customer_live: bool
) -> list[DomainEvent]:
    """The deal enters the pipeline's first stage. The handler tells whether the customer is
    live (registered, not merged away, not forgotten)."""
    if state.opened:
        raise err.DealAlreadyOpen(state.deal_id)
    if not pipeline.defined:
        raise err.PipelineNotFound(c.pipeline)
    if not customer_live:
        raise err.CustomerNotLive(c.customer_id)
    _check_value(None, c.value)
    return [
        ev.DealOpened(
            pipeline=c.pipeline,
            stage=pipeline.first_stage,
            customer_id=c.customer_id,
            lead_source=c.lead_source,
            channel=c.channel,
            products=tuple(c.products),
            value=c.value,
            owner=c.owner,
        )
    ]


def move(
    state: DealState, pipeline: PipelineState, c: cmd.MoveDeal, at: datetime
) -> list[DomainEvent]:
    """Forward or back to any stage of the deal's pipeline (`pipeline` is that one)."""
    ensure_open(state)
    assert state.pipeline is not None and state.stage is not None
    if not pipeline.defined:
        raise err.PipelineNotFound(state.pipeline)
    if pipeline.probability_of(c.to_stage) is None:
        raise err.UnknownStage(c.to_stage, state.pipeline)
    if c.to_stage == state.stage:
        return []
    return _in_order(state, at, [ev.DealStageChanged(from_stage=state.stage, to_stage=c.to_stage)])


def change_value(state: DealState, c: cmd.ChangeDealValue, at: datetime) -> list[DomainEvent]:
    ensure_open(state)
    assert state.value is not None
    _check_value(state, c.value)
    if c.value.amount == state.value.amount:
        return []
    return _in_order(state, at, [ev.DealValueChanged(old=state.value, new=c.value)])


def send_quote(state: DealState, c: cmd.SendQuote, at: datetime) -> list[DomainEvent]:
    """A quote in the deal's currency, valid at least on the day it is sent."""
    ensure_open(state)
    _check_value(state, c.amount)
    if c.valid_until < at.date():
        raise err.QuoteExpiresBeforeSent(c.valid_until, at.date())
    event = ev.QuoteSent(quote_number=c.quote_number, amount=c.amount, valid_until=c.valid_until)
    return _in_order(state, at, [event])


def assign(state: DealState, c: cmd.AssignDeal, at: datetime) -> list[DomainEvent]:
    ensure_open(state)
    if c.owner == state.owner:
        return []
    return _in_order(state, at, [ev.DealAssigned(owner=c.owner, previous=state.owner)])


def line_value(item: OrderLine) -> Money:
    """quantity x unit price x (1 - discount), to the cent (half to even), as an order's line
    is priced (domain.orders), so the deal's value is the order's total."""
    return (item.unit_price * (item.quantity * (ONE - item.discount))).rounded()


def items_value(items: list[OrderLine], currency: str) -> Money:
    """The sum of the lines' values; every line must be in `currency` and valid."""
    value = Money.zero(currency)
    for item in items:
        if item.unit_price.currency != currency:
            raise err.ValueCurrencyMismatch(currency, item.unit_price.currency)
        if item.quantity < 1:
            raise err.InvalidLineItem(item.sku, f"quantity {item.quantity} is not above 0")
        if not 0 <= item.discount < 1:
            raise err.InvalidLineItem(item.sku, f"discount {item.discount} is not in [0, 1)")
        if item.unit_price.amount < 0:
            raise err.InvalidLineItem(item.sku, f"unit price {item.unit_price} is negative")
        value = value + line_value(item)
    return value


def win(state: DealState, c: cmd.WinDeal, order_id: UUID, at: datetime) -> list[DomainEvent]:
    """The deal is won as order `order_id`, worth its items in the deal's currency. The
    order itself is placed on its own stream by the orders domain."""
    ensure_open(state)
    assert state.value is not None
    if not c.items:
        raise err.WinWithoutItems(state.deal_id)
    value = items_value(c.items, state.value.currency)
    return _in_order(state, at, [ev.DealWon(order_id=order_id, value=value)])


def lose(state: DealState, c: cmd.LoseDeal, at: datetime) -> list[DomainEvent]:
    ensure_open(state)
    return _in_order(state, at, [ev.DealLost(reason=c.reason, competitor=c.competitor)])
