"""One handler for every channel: check the customer, record the interaction in its own stream."""

from __future__ import annotations

from domain.interactions import commands as cmd
from domain.interactions.decide import log_interaction
from domain.interactions.events import CHANNEL_OF
from handlers.decision import CommandContext, Decision
from handlers.deps import Deps, business_time, load_customer, new_id
from handlers.errors import InteractionAlreadyRecorded
from handlers.registry import COMMANDS


def record_interaction(c: cmd.LogInteraction, ctx: CommandContext, deps: Deps) -> Decision:
    payload = log_interaction(load_customer(deps, c.customer_id), c)
    interaction_id = c.interaction_id or new_id(ctx, "interaction")
    if c.interaction_id is not None and deps.log.load(interaction_id):
        raise InteractionAlreadyRecorded(f"interaction {interaction_id} is already recorded")
    return Decision().add(
        ctx,
        stream_id=interaction_id,
        stream_type="interaction",
        after_version=0,
        payloads=[payload],
        occurred_at=business_time(c, deps),
        customer_id=c.customer_id,
        channel=CHANNEL_OF[type(payload)],
    )


for _command in (
    cmd.LogEmail,
    cmd.LogCall,
    cmd.LogMeeting,
    cmd.LogQuestionnaire,
    cmd.LogConversation,
    cmd.LogWebActivity,
):
    COMMANDS.handles(_command)(record_interaction)
