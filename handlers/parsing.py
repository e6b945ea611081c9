"""From wire bytes to a typed command, with errors that name the field."""

from __future__ import annotations

import re
from typing import Any

import msgspec

from domain.commands import Command
from handlers.errors import InvalidCommand, MalformedMessage, UnknownCommand
from handlers.registry import COMMANDS, CommandRegistry

_PATH = re.compile(r"at `\$\.?([^`]*)`")
_FIELD = re.compile(r"field `([^`]+)`")


class CommandMessage(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """The body of a command on NATS: `{"data": {...}, "command_id"?, "actor"?, ...}`."""

    data: msgspec.Raw
    command_id: str | None = None
    actor: str | None = None
    correlation_id: str | None = None
    causation_id: str | None = None


class ImportLine(CommandMessage, kw_only=True, forbid_unknown_fields=True):
    """One line of `crm import`: the NATS body plus the command's name."""

    command: str


_message = msgspec.json.Decoder(CommandMessage)
_line = msgspec.json.Decoder(ImportLine)


def field_of(error: msgspec.ValidationError) -> str | None:
    """`$.answers[0].question` -> `answers[0].question`; missing/unknown field names too."""
    text = str(error)
    if m := _PATH.search(text):
        return m.group(1) or None
    if m := _FIELD.search(text):
        return m.group(1)
    return None


def parse_message(body: bytes) -> CommandMessage:
    try:
        return _message.decode(body)
    except msgspec.ValidationError as e:
        raise MalformedMessage(f"command message: {e}", field=field_of(e)) from None
    except msgspec.DecodeError as e:
        raise MalformedMessage(f"command message is not valid JSON: {e}") from None


def parse_line(line: bytes) -> ImportLine:
    try:
        return _line.decode(line)
    except msgspec.ValidationError as e:
        raise MalformedMessage(f"import line: {e}", field=field_of(e)) from None
    except msgspec.DecodeError as e:
        raise MalformedMessage(f"import line is not valid JSON: {e}") from None


def parse_command(
    name: str,
    data: bytes | msgspec.Raw | dict[str, Any],
    registry: CommandRegistry = COMMANDS,
    *,
    strict: bool = True,
) -> Command:
    """Bytes are JSON; a dict comes from manual entry, where `strict=False` lets "30" be 30."""
    spec = registry.get(name)
    if spec is None:
        raise UnknownCommand(name)
    try:
        if isinstance(data, dict):
            return msgspec.convert(data, spec.type, strict=strict)
        return spec.decoder.decode(data)
    except msgspec.ValidationError as e:
        raise InvalidCommand(name, field_of(e), str(e)) from None
    except msgspec.DecodeError as e:
        raise MalformedMessage(f"{name}: data is not valid JSON: {e}") from None
