"""Handlers of pipelines and deals; winning a deal places its order in the same transaction."""

from __future__ import annotations

from datetime import datetime

from domain.events import DomainEvent
from domain.orders import decide as order_decide
from domain.orders.state import fold as fold_order
from domain.pipeline import commands as cmd
from domain.pipeline import decide
from domain.pipeline.state import DealState, fold_deal, fold_pipeline, pipeline_stream_id
from handlers.decision import CommandContext, Decision
from handlers.deps import Deps, business_time, live_customer, load_state, new_id
from handlers.lifecycle import handles_on_stream
from handlers.products import on_sale
from handlers.registry import COMMANDS


@COMMANDS.handles(cmd.DefinePipeline)
def define_pipeline(c: cmd.DefinePipeline, ctx: CommandContext, deps: Deps) -> Decision:
    state = load_state(deps, pipeline_stream_id(c.name), fold_pipeline)
    return Decision().add(
        ctx,
        stream_id=state.pipeline_id,
        stream_type="pipeline",
        after_version=state.version,
        payloads=decide.define_pipeline(state, c),
        occurred_at=business_time(c, deps),
        customer_id=None,
    )


def _on_deal(
    ctx: CommandContext, at: datetime, state: DealState, payloads: list[DomainEvent]
) -> Decision:
    return Decision().add(
        ctx,
        stream_id=state.deal_id,
        stream_type="deal",
        after_version=state.version,
        payloads=payloads,
        occurred_at=at,
        customer_id=state.customer_id,
    )


@COMMANDS.handles(cmd.OpenDeal)
def open_deal(c: cmd.OpenDeal, ctx: CommandContext, deps: Deps) -> Decision:
    state = load_state(deps, c.deal_id or new_id(ctx, "deal"), fold_deal)
    pipeline = load_state(deps, pipeline_stream_id(c.pipeline), fold_pipeline)
    live_customer(deps, c.customer_id)
    payloads = decide.open_deal(state, pipeline, c, customer_live=True)
    return Decision().add(
        ctx,
        stream_id=state.deal_id,
        stream_type="deal",
        after_version=state.version,
        payloads=payloads,
        occurred_at=business_time(c, deps),
        customer_id=c.customer_id,
    )


@COMMANDS.handles(cmd.MoveDeal)
def move(c: cmd.MoveDeal, ctx: CommandContext, deps: Deps) -> Decision:
    state = load_state(deps, c.deal_id, fold_deal)
    decide.ensure_open(state)
    pipeline = load_state(deps, pipeline_stream_id(state.pipeline or ""), fold_pipeline)
    at = business_time(c, deps)
    return _on_deal(ctx, at, state, decide.move(state, pipeline, c, at))


handles_on_stream(
    (
        (cmd.ChangeDealValue, decide.change_value),
        (cmd.SendQuote, decide.send_quote),
        (cmd.AssignDeal, decide.assign),
        (cmd.LoseDeal, decide.lose),
    ),
    id_field="deal_id",
    stream_type="deal",
    fold=fold_deal,
)


@COMMANDS.handles(cmd.WinDeal)
def win(c: cmd.WinDeal, ctx: CommandContext, deps: Deps) -> Decision:
    """`deal.won` on the deal and `order.placed` on a new order, appended together: a
    rejected order never leaves a won deal behind."""
    state = load_state(deps, c.deal_id, fold_deal)
    decide.ensure_open(state)
    order = load_state(deps, c.order_id or new_id(ctx, "order"), fold_order)
    at = business_time(c, deps)
    assert state.customer_id is not None
    live_customer(deps, state.customer_id)
    won = decide.win(state, c, order.order_id, at)
    placed = order_decide.place_items(
        order,
        customer_id=state.customer_id,
        items=c.items,
        payment_method=c.payment_method,
        instalments=c.instalments,
        known_skus=on_sale(deps, (i.sku for i in c.items)),
        customer_live=True,
        at=at,
        deal_id=state.deal_id,
    )
    decision = _on_deal(ctx, at, state, won)
    return decision.add(
        ctx,
        stream_id=order.order_id,
        stream_type="order",
        after_version=order.version,
        payloads=placed,
        occurred_at=at,
        customer_id=state.customer_id,
    )
