"""Handlers of reminders: complete or snooze one occurrence, on the stream its key names."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from domain.events import DomainEvent
from domain.reminders import commands as cmd
from domain.reminders import decide
from domain.reminders.state import ReminderState, fold
from handlers.decision import CommandContext, Decision
from handlers.deps import Deps, business_time, load_state
from handlers.registry import COMMANDS


def _on_reminder(
    c: cmd.ReminderCommand,
    ctx: CommandContext,
    deps: Deps,
    decide_: Callable[..., list[DomainEvent]],
) -> Decision:
    reminder_id, customer_id = decide.stream_of(c)
    state: ReminderState = load_state(deps, reminder_id, fold)
    at: datetime = business_time(c, deps)
    return Decision().add(
        ctx,
        stream_id=reminder_id,
        stream_type="reminder",
        after_version=state.version,
        payloads=decide_(state, c, at=at),
        occurred_at=at,
        customer_id=customer_id,
    )


@COMMANDS.handles(cmd.CompleteReminder)
def complete(c: cmd.CompleteReminder, ctx: CommandContext, deps: Deps) -> Decision:
    return _on_reminder(c, ctx, deps, decide.complete)


@COMMANDS.handles(cmd.SnoozeReminder)
def snooze(c: cmd.SnoozeReminder, ctx: CommandContext, deps: Deps) -> Decision:
    return _on_reminder(c, ctx, deps, decide.snooze)
