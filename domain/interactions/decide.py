"""An interaction is recorded for a live customer; its payload mirrors the command."""

from __future__ import annotations

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


def log_interaction(customer: CustomerState, c: cmd.LogInteraction) -> DomainEvent:
    ensure_live(customer)
    event_type = EVENT_OF[type(c)]
    fields = {f: getattr(c, f) for f in c.__struct_fields__ if f not in _COMMON}
    return event_type(**fields)
