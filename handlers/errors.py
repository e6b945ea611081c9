"""Errors of the command path that are not domain invariants: bad messages and contention."""

from __future__ import annotations

from typing import Any


class CommandRejected(Exception):
    """A command that could not be run; `code` and `details` go into the reply."""

    code = "command_rejected"

    def __init__(self, message: str, **details: Any) -> None:
        super().__init__(message)
        self.details = details


class UnknownCommand(CommandRejected):
    code = "unknown_command"

    def __init__(self, name: str) -> None:
        super().__init__(f"unknown command {name!r} (see `crm schema` for the list)", command=name)
        self.name = name


class InvalidCommand(CommandRejected):
    """The body does not fit the command's schema; `field` names where (a dotted path)."""

    code = "invalid_command"

    def __init__(self, command: str, field: str | None, message: str) -> None:
        where = f" field {field!r}:" if field else ""
        super().__init__(f"{command}:{where} {message}", command=command, field=field)
        self.command = command
        self.field = field


class MalformedMessage(CommandRejected):
    code = "malformed_message"


class ConcurrencyExhausted(CommandRejected):
    """The streams kept changing under the command; it was retried and gave up."""

    code = "concurrency_exhausted"


class InteractionAlreadyRecorded(CommandRejected):
    code = "interaction_already_recorded"
