"""Decisions on a ticket: `decide(state, command, ..., at) -> events` (pure).

`at` is the business time the events will carry; a lifecycle stream never goes back in it.
Assigning the agent who already holds the ticket decides no events; breaking an invariant
raises a named TicketError. A closed ticket takes no command at all.
"""

from __future__ import annotations

from datetime import datetime

from domain.events import DomainEvent
from domain.tickets import commands as cmd
from domain.tickets import errors as err
from domain.tickets import events as ev
from domain.tickets.state import TicketState


def ensure_opened(state: TicketState, at: datetime) -> None:
    """The ticket exists, is not closed, and `at` is not before its last event."""
    if not state.opened:
        raise err.TicketNotFound(state.ticket_id)
    if state.status == "closed":
        raise err.TicketClosed(state.ticket_id)
    if state.last_occurred_at is not None and at < state.last_occurred_at:
        raise err.EventBeforeLast(state.ticket_id, state.last_occurred_at, at)


def open_ticket(
    state: TicketState, c: cmd.OpenTicket, *, customer_live: bool, at: datetime
) -> list[DomainEvent]:
    """`customer_live`: the customer is known, not merged away and not forgotten."""
    if state.opened:
        raise err.TicketAlreadyOpen(state.ticket_id)
    if not customer_live:
        raise err.CustomerNotLive(c.customer_id)
    return [
        ev.TicketOpened(
            customer_id=c.customer_id,
            kind=c.kind,
            category=c.category,
            severity=c.severity,
            subject=c.subject,
            order_id=c.order_id,
            equipment_id=c.equipment_id,
            channel=c.channel,
        )
    ]


def assign(state: TicketState, c: cmd.AssignTicket, *, at: datetime) -> list[DomainEvent]:
    ensure_opened(state, at)
    return [] if state.assignee == c.agent else [ev.TicketAssigned(agent=c.agent)]


def respond(state: TicketState, c: cmd.RespondToTicket, *, at: datetime) -> list[DomainEvent]:
    """Allowed on a resolved ticket too (a follow-up); only the first response stops an SLA."""
    ensure_opened(state, at)
    return [ev.TicketResponded(agent=c.agent, message=c.message)]


def escalate(state: TicketState, c: cmd.EscalateTicket, *, at: datetime) -> list[DomainEvent]:
    ensure_opened(state, at)
    if state.resolved:
        raise err.AlreadyResolved(state.ticket_id, "escalated")
    level = c.level if c.level is not None else state.level + 1
    if level <= state.level:
        raise err.InvalidEscalation(state.ticket_id, state.level, level)
    return [ev.TicketEscalated(level=level, agent=c.agent, reason=c.reason)]


def resolve(state: TicketState, c: cmd.ResolveTicket, *, at: datetime) -> list[DomainEvent]:
    ensure_opened(state, at)
    if state.resolved:
        raise err.AlreadyResolved(state.ticket_id, "resolved again")
    return [ev.TicketResolved(resolution=c.resolution)]


def reopen(state: TicketState, c: cmd.ReopenTicket, *, at: datetime) -> list[DomainEvent]:
    ensure_opened(state, at)
    if not state.resolved:
        raise err.NotResolved(state.ticket_id, "reopened")
    return [ev.TicketReopened(reason=c.reason)]


def close(state: TicketState, c: cmd.CloseTicket, *, at: datetime) -> list[DomainEvent]:
    ensure_opened(state, at)
    if not state.resolved:
        raise err.NotResolved(state.ticket_id, "closed")
    return [ev.TicketClosed()]
