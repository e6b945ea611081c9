"""Events of a ticket's stream. Free text about a customer's problem (the subject, messages,
reasons, the resolution) is personal data: it is encrypted per customer and forgotten with them."""

from __future__ import annotations

from typing import Annotated, Literal
from uuid import UUID

import msgspec

from domain.events import EVENTS, PERSONAL, DomainEvent, PersonalStr

TicketKind = Literal["complaint", "request", "incident"]
Severity = Literal["low", "normal", "high", "critical"]
TicketStatus = Literal["open", "resolved", "closed"]
Level = Annotated[int, msgspec.Meta(ge=1)]


@EVENTS.register
class TicketOpened(DomainEvent, frozen=True, kw_only=True, tag="ticket.opened"):
    """`channel` is where the customer raised it (email, call, web, ...), as on the envelope."""

    customer_id: UUID
    kind: TicketKind
    category: str
    severity: Severity
    subject: PersonalStr
    order_id: UUID | None = None
    equipment_id: UUID | None = None
    channel: str | None = None


@EVENTS.register
class TicketAssigned(DomainEvent, frozen=True, kw_only=True, tag="ticket.assigned"):
    agent: str


@EVENTS.register
class TicketResponded(DomainEvent, frozen=True, kw_only=True, tag="ticket.responded"):
    agent: str
    message: PersonalStr


@EVENTS.register
class TicketEscalated(DomainEvent, frozen=True, kw_only=True, tag="ticket.escalated"):
    """`level` is the level reached (1 is the first escalation); `agent`, if any, takes it over."""

    level: Level
    agent: str | None = None
    reason: Annotated[str, PERSONAL]


@EVENTS.register
class TicketResolved(DomainEvent, frozen=True, kw_only=True, tag="ticket.resolved"):
    resolution: PersonalStr


@EVENTS.register
class TicketReopened(DomainEvent, frozen=True, kw_only=True, tag="ticket.reopened"):
    reason: PersonalStr


@EVENTS.register
class TicketClosed(DomainEvent, frozen=True, kw_only=True, tag="ticket.closed"):
    pass
