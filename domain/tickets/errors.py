"""Named errors for every invariant of a ticket; `code` is stable for replies and logs."""

from __future__ import annotations

from uuid import UUID

from domain import errors
from domain.errors import DomainError


class TicketError(DomainError):
    code = "ticket_error"


class TicketNotFound(TicketError):
    code = "ticket_not_found"

    def __init__(self, ticket_id: UUID) -> None:
        super().__init__(f"ticket {ticket_id} was not opened")
        self.ticket_id = ticket_id


class TicketAlreadyOpen(TicketError):
    code = "ticket_already_open"

    def __init__(self, ticket_id: UUID) -> None:
        super().__init__(f"ticket {ticket_id} is already open")
        self.ticket_id = ticket_id


class CustomerNotLive(TicketError):
    """Unknown, merged away or forgotten: tickets are opened for a live customer only."""

    code = "customer_not_live"

    def __init__(self, customer_id: UUID) -> None:
        super().__init__(f"customer {customer_id} is unknown, merged or forgotten")
        self.customer_id = customer_id


class TicketClosed(TicketError):
    """A closed ticket takes no command, closing it again included; open a new one instead."""

    code = "ticket_closed"

    def __init__(self, ticket_id: UUID) -> None:
        super().__init__(f"ticket {ticket_id} is closed; open a new ticket")
        self.ticket_id = ticket_id


class NotResolved(TicketError):
    """Closing or reopening a ticket that is not resolved."""

    code = "not_resolved"

    def __init__(self, ticket_id: UUID, action: str) -> None:
        super().__init__(f"ticket {ticket_id} is not resolved, so it cannot be {action}")
        self.ticket_id = ticket_id
        self.action = action


class AlreadyResolved(TicketError):
    """Resolving or escalating a resolved ticket; reopen it first."""

    code = "already_resolved"

    def __init__(self, ticket_id: UUID, action: str) -> None:
        super().__init__(f"ticket {ticket_id} is resolved, so it cannot be {action}; reopen it")
        self.ticket_id = ticket_id
        self.action = action


class InvalidEscalation(TicketError):
    """An escalation goes to a higher level than the ticket is at."""

    code = "invalid_escalation"

    def __init__(self, ticket_id: UUID, current: int, asked: int) -> None:
        super().__init__(f"ticket {ticket_id} is at level {current}; cannot escalate to {asked}")
        self.ticket_id = ticket_id
        self.current = current
        self.asked = asked


class EventBeforeLast(errors.EventBeforeLast, TicketError):
    """A lifecycle stream moves forward in business time."""
