"""A ticket as decisions and views need it, folded from its stream (pure)."""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

import msgspec
from msgspec.structs import replace

from domain.events import DomainEvent
from domain.streams import fold_events
from domain.tickets import events as ev


class TicketState(msgspec.Struct, frozen=True, kw_only=True):
    """`resolved_at` is the current resolution (None again once reopened); `first_resolved_at`
    is kept for the first-response SLA, which a resolution also stops."""

    ticket_id: UUID
    version: int = 0
    customer_id: UUID | None = None
    kind: ev.TicketKind | None = None
    category: str | None = None
    severity: ev.Severity = "normal"
    subject: str | None = None
    order_id: UUID | None = None
    equipment_id: UUID | None = None
    channel: str | None = None
    status: ev.TicketStatus | None = None
    assignee: str | None = None
    level: int = 0
    responses: int = 0
    reopens: int = 0
    resolution: str | None = None
    opened_at: datetime | None = None
    first_response_at: datetime | None = None
    first_resolved_at: datetime | None = None
    resolved_at: datetime | None = None
    reopened_at: datetime | None = None
    closed_at: datetime | None = None
    last_occurred_at: datetime | None = None

    @property
    def opened(self) -> bool:
        return self.status is not None

    @property
    def resolved(self) -> bool:
        """Resolved and not reopened since; a closed ticket is resolved."""
        return self.status in {"resolved", "closed"}


def evolve(state: TicketState, event: DomainEvent, at: datetime) -> TicketState:
    """Apply one event of the ticket's stream, which happened at business time `at` (pure)."""
    match event:
        case ev.TicketOpened():
            return replace(
                state,
                customer_id=event.customer_id,
                kind=event.kind,
                category=event.category,
                severity=event.severity,
                subject=event.subject,
                order_id=event.order_id,
                equipment_id=event.equipment_id,
                channel=event.channel,
                status="open",
                opened_at=at,
            )
        case ev.TicketAssigned():
            return replace(state, assignee=event.agent)
        case ev.TicketResponded():
            first = state.first_response_at if state.first_response_at is not None else at
            return replace(state, responses=state.responses + 1, first_response_at=first)
        case ev.TicketEscalated():
            agent = event.agent if event.agent is not None else state.assignee
            return replace(state, level=event.level, assignee=agent)
        case ev.TicketResolved():
            first = state.first_resolved_at if state.first_resolved_at is not None else at
            return replace(
                state,
                status="resolved",
                resolution=event.resolution,
                resolved_at=at,
                first_resolved_at=first,
            )
        case ev.TicketReopened():
            return replace(
                state,
                status="open",
                resolution=None,
                resolved_at=None,
                reopened_at=at,
                reopens=state.reopens + 1,
            )
        case ev.TicketClosed():
            return replace(state, status="closed", closed_at=at)
    return state


def fold(
    ticket_id: UUID,
    events: list[tuple[int, datetime, DomainEvent]],
    start: TicketState | None = None,
) -> TicketState:
    """State after (version, occurred_at, payload) triples in version order, from `start`
    (a state folded earlier, whose version the first triple follows) or from nothing."""
    start = start if start is not None else TicketState(ticket_id=ticket_id)
    return fold_events(evolve, start, events)
