"""Commands on tickets. Whether a step is allowed is checked by the domain (named errors),
not by the decoder, so every channel gets the same answer."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated
from uuid import UUID

import msgspec

from domain.commands import Command
from domain.tickets.events import Level, Severity, TicketKind

NonEmpty = Annotated[str, msgspec.Meta(min_length=1, max_length=500)]
LongText = Annotated[str, msgspec.Meta(min_length=1, max_length=10_000)]
Label = Annotated[str, msgspec.Meta(min_length=1, max_length=100)]


class TicketCommand(Command, frozen=True, kw_only=True):
    """`occurred_at` is business time as the source reports it; the engine's clock if absent."""

    occurred_at: datetime | None = None


class OpenTicket(TicketCommand, frozen=True, kw_only=True, tag="ticket.open"):
    """`ticket_id` is derived by the handler when absent. A ticket may be about an order, a
    piece of equipment, both or neither."""

    ticket_id: UUID | None = None
    customer_id: UUID
    kind: TicketKind
    category: Label
    severity: Severity = "normal"
    subject: NonEmpty
    order_id: UUID | None = None
    equipment_id: UUID | None = None
    channel: Label | None = None


class AssignTicket(TicketCommand, frozen=True, kw_only=True, tag="ticket.assign"):
    ticket_id: UUID
    agent: Label


class RespondToTicket(TicketCommand, frozen=True, kw_only=True, tag="ticket.respond"):
    ticket_id: UUID
    agent: Label
    message: LongText


class EscalateTicket(TicketCommand, frozen=True, kw_only=True, tag="ticket.escalate"):
    """`level` defaults to one above the current; `agent`, if given, takes the ticket over."""

    ticket_id: UUID
    reason: NonEmpty
    level: Level | None = None
    agent: Label | None = None


class ResolveTicket(TicketCommand, frozen=True, kw_only=True, tag="ticket.resolve"):
    ticket_id: UUID
    resolution: LongText


class ReopenTicket(TicketCommand, frozen=True, kw_only=True, tag="ticket.reopen"):
    ticket_id: UUID
    reason: NonEmpty


class CloseTicket(TicketCommand, frozen=True, kw_only=True, tag="ticket.close"):
    ticket_id: UUID
