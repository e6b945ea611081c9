"""Errors of the audience rule language: syntax, names, types and cycles.

A rule error found while parsing text carries where it is (`line`, `column`, `position`, the
offending `found` text); one found in a decoded AST has no position (`line` is None).
"""

from __future__ import annotations

from domain.errors import DomainError


class RuleError(DomainError):
    """A rule cannot be understood or cannot be evaluated as written."""

    code = "rule_error"

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail
        self.line: int | None = None
        self.column: int | None = None
        self.position: int | None = None
        self.found: str | None = None

    def at(self, line: int, column: int, position: int, found: str | None = None) -> RuleError:
        """Place the error in the rule's text (the parser calls this); returns self."""
        self.line, self.column, self.position, self.found = line, column, position, found
        self.args = (f"at {line}:{column}: {self.detail}",)
        return self


class RuleSyntaxError(RuleError):
    """The text is not a rule: says where, what was found and what was expected there."""

    code = "rule_syntax_error"

    def __init__(self, line: int, column: int, position: int, found: str, expected: str) -> None:
        super().__init__(f"expected {expected}, found {found}")
        self.expected = expected
        self.at(line, column, position, found)


class UnknownEventType(RuleError):
    code = "unknown_event_type"

    def __init__(self, name: str, aliases: list[str]) -> None:
        super().__init__(
            f"no event type {name!r}; use a full type like 'interaction.call_logged' "
            f"or a short name: {', '.join(aliases)}"
        )
        self.name = name


class UnknownField(RuleError):
    code = "unknown_field"

    def __init__(self, event: str, field: str, fields: list[str]) -> None:
        listed = ", ".join(fields) if fields else "(none)"
        super().__init__(f"{event} has no field {field!r}; its fields are: {listed}")
        self.event = event
        self.field = field
        self.fields = fields


class RuleTypeError(RuleError):
    """A literal, an aggregate or a comparison does not fit the type of what it applies to."""

    code = "rule_type_error"


class UnknownName(RuleError):
    """A word where an attribute or a function was expected is none of them."""

    code = "unknown_name"


class AudienceCycle(RuleError):
    """Audiences refer to each other in a circle through `member(...)`."""

    code = "audience_cycle"

    def __init__(self, cycle: list[str]) -> None:
        super().__init__("audiences refer to each other in a cycle: " + " -> ".join(cycle))
        self.cycle = cycle


class UnknownAudience(RuleError):
    code = "unknown_audience"

    def __init__(self, name: str, referrer: str) -> None:
        super().__init__(f"audience {referrer!r} refers to {name!r}, which is not defined")
        self.name = name
        self.referrer = referrer


class AudienceAlreadyDefined(RuleError):
    """A name is defined once; `audience.change` gives it a new rule version."""

    code = "audience_already_defined"

    def __init__(self, name: str) -> None:
        super().__init__(f"audience {name!r} is already defined; change it instead")
        self.name = name


class AudienceNotFound(RuleError):
    code = "audience_not_found"

    def __init__(self, name: str) -> None:
        super().__init__(f"no audience {name!r} is defined")
        self.name = name


class AudienceRetired(RuleError):
    code = "audience_retired"

    def __init__(self, name: str) -> None:
        super().__init__(f"audience {name!r} is retired")
        self.name = name


class AudienceInUse(RuleError):
    """An audience another live audience refers to through `member(...)` stays."""

    code = "audience_in_use"

    def __init__(self, name: str, users: list[str]) -> None:
        super().__init__(f"audience {name!r} is used by {', '.join(users)}; retire them first")
        self.name = name
        self.users = users
