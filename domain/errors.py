"""The root of every error the domain raises; each layer names its own below it."""


class DomainError(Exception):
    """An invariant of the domain does not hold for the command or event at hand."""

    code = "domain_error"


class EventTypeError(DomainError):
    """An event type is declared wrongly (caught when the type is registered, not at run time)."""

    code = "event_type_error"
