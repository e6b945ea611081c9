"""An interaction is recorded for a live customer; its payload mirrors the command."""

from __future__ import annotations

from collections.abc import Callable

from domain.customers.decide import ensure_live
from domain.customers.state import CustomerState
from domain.events import DomainEvent
from domain.interactions import commands as cmd
from domain.interactions import events as ev

EVENT_OF: dict[type[cmd.LogInteraction], type[DomainEvent]] = {
    cmd.LogEmail: ev.EmailLogged,
    cmd.LogCall: ev.CallLogged,
    cmd.LogMeeting: ev.MeetingLogged,
    cmd.LogQuestionnaire: ev.QuestionnaireAnswered,
    cmd.LogConversation: ev.ConversationLogged,
    cmd.LogWebActivity: ev.WebActivity,
}
_COMMON = frozenset({"customer_id", "interaction_id", "occurred_at"})


def _mirror(command_type: type[cmd.LogInteraction]) -> Callable[[cmd.LogInteraction], DomainEvent]:
    """The payload of a command type: its fields but the common ones, as one call with the
    fields spelled out (as dataclasses build their __init__: no dict per command)."""
    names = [f for f in command_type.__struct_fields__ if f not in _COMMON]
    assert all(n.isidentifier() for n in names)
    args = ", ".join(f"{n}=c.{n}" for n in names)
    made: Callable[[cmd.LogInteraction], DomainEvent] = eval(  # field names only
        f"lambda c: event_type({args})", {"event_type": EVENT_OF[command_type]}
    )
    return made


_MIRRORS = {command_type: _mirror(command_type) for command_type in EVENT_OF}


def log_interaction(customer: CustomerState, c: cmd.LogInteraction) -> DomainEvent:
    ensure_live(customer)
    return _MIRRORS[type(c)](c)
