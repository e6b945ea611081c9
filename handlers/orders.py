"""Handlers of orders (with invoices, payments, shipping, returns) and subscriptions."""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

from domain.events import DomainEvent
from domain.orders import commands as cmd
from domain.orders import decide
from domain.orders.state import fold
from domain.subscriptions import commands as scmd
from domain.subscriptions import decide as sdecide
from domain.subscriptions.state import SubscriptionState
from domain.subscriptions.state import fold as fold_subscription
from handlers.decision import CommandContext, Decision
from handlers.deps import Deps, business_time, live_customer, load_state, new_id
from handlers.lifecycle import handles_on_stream
from handlers.products import on_sale
from handlers.registry import COMMANDS


@COMMANDS.handles(cmd.PlaceOrder)
def place(c: cmd.PlaceOrder, ctx: CommandContext, deps: Deps) -> Decision:
    state = load_state(deps, c.order_id or new_id(ctx, "order"), fold)
    live_customer(deps, c.customer_id)
    payloads = decide.place(
        state,
        c,
        known_skus=on_sale(deps, (i.sku for i in c.items)),
        customer_live=True,
        at=business_time(c, deps),
    )
    return Decision().add(
        ctx,
        stream_id=state.order_id,
        stream_type="order",
        after_version=state.version,
        payloads=payloads,
        occurred_at=business_time(c, deps),
        customer_id=c.customer_id,
    )


handles_on_stream(
    (
        (cmd.IssueInvoice, decide.issue_invoice),
        (cmd.PayOrder, decide.pay),
        (cmd.ShipOrder, decide.ship),
        (cmd.DeliverOrder, decide.deliver),
        (cmd.CancelOrder, decide.cancel),
        (cmd.ReturnOrder, decide.return_items),
    ),
    id_field="order_id",
    stream_type="order",
    fold=fold,
)


def _on_subscription(
    ctx: CommandContext,
    at: datetime,
    state: SubscriptionState,
    payloads: list[DomainEvent],
    customer_id: UUID | None,
) -> Decision:
    return Decision().add(
        ctx,
        stream_id=state.subscription_id,
        stream_type="subscription",
        after_version=state.version,
        payloads=payloads,
        occurred_at=at,
        customer_id=customer_id,
    )


@COMMANDS.handles(scmd.StartSubscription)
def start_subscription(c: scmd.StartSubscription, ctx: CommandContext, deps: Deps) -> Decision:
    state = load_state(deps, c.subscription_id or new_id(ctx, "subscription"), fold_subscription)
    live_customer(deps, c.customer_id)
    at = business_time(c, deps)
    payloads = sdecide.start(
        state, c, known_plans=on_sale(deps, [c.plan], plans_only=True), customer_live=True, at=at
    )
    return _on_subscription(ctx, at, state, payloads, c.customer_id)


@COMMANDS.handles(scmd.ChangePlan)
def change_plan(c: scmd.ChangePlan, ctx: CommandContext, deps: Deps) -> Decision:
    state = load_state(deps, c.subscription_id, fold_subscription)
    at = business_time(c, deps)
    payloads = sdecide.change_plan(
        state, c, known_plans=on_sale(deps, [c.plan], plans_only=True), at=at
    )
    return _on_subscription(ctx, at, state, payloads, state.customer_id)


@COMMANDS.handles(scmd.CancelSubscription)
def cancel_subscription(c: scmd.CancelSubscription, ctx: CommandContext, deps: Deps) -> Decision:
    state = load_state(deps, c.subscription_id, fold_subscription)
    at = business_time(c, deps)
    return _on_subscription(ctx, at, state, sdecide.cancel(state, c, at=at), state.customer_id)
