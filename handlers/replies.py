"""The reply to a command, the same on NATS, `crm do` and import (DESIGN.md, "NATS")."""

from __future__ import annotations

from typing import Any, Literal

import msgspec

from domain.errors import DomainError
from handlers.errors import CommandRejected
from handlers.ports import CommandResult, StreamVersion


class OkReply(msgspec.Struct, frozen=True, kw_only=True):
    ok: Literal[True] = True
    streams: list[StreamVersion] = []
    positions: list[int] = []


class ErrorBody(msgspec.Struct, frozen=True, kw_only=True):
    code: str
    message: str
    details: dict[str, Any] = {}


class ErrorReply(msgspec.Struct, frozen=True, kw_only=True):
    ok: Literal[False] = False
    error: ErrorBody


def ok_reply(result: CommandResult) -> OkReply:
    return OkReply(streams=result.streams, positions=result.positions)


def error_reply(error: Exception) -> ErrorReply:
    """A typed error as the client sees it: a stable code, a message, details to act on."""
    details: dict[str, Any] = {}
    if isinstance(error, CommandRejected):
        details = {k: v for k, v in error.details.items() if v is not None}
    elif isinstance(error, DomainError):
        details = {
            k: str(v) for k, v in vars(error).items() if not k.startswith("_") and k != "args"
        }
    code = getattr(error, "code", "internal_error")
    return ErrorReply(error=ErrorBody(code=code, message=str(error), details=details))
