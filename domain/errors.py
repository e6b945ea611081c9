"""The root of every error the domain raises; each layer names its own below it."""

from datetime import datetime
from uuid import UUID


class DomainError(Exception):
    """An invariant of the domain does not hold for the command or event at hand."""

    code = "domain_error"


class EventTypeError(DomainError):
    """An event type is declared wrongly (caught when the type is registered, not at run time)."""

    code = "event_type_error"


class EventBeforeLast(DomainError):
    """A lifecycle stream (deal, order, ticket, equipment, ...) moves forward in business time:
    an event older than the stream's last one is refused (DESIGN.md, "Time"). Each domain
    names its own subclass, so a caller can catch either."""

    code = "event_before_last"

    def __init__(self, stream_id: UUID, last: datetime, at: datetime) -> None:
        super().__init__(f"{at.isoformat()} is before the last event of {stream_id} ({last})")
        self.stream_id = stream_id
        self.last = last
        self.at = at
