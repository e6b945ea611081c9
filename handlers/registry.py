"""The one command registry: name -> msgspec command type -> handler.

NATS, the CLI (`crm do`), manual entry and import all look commands up here, so a command
added by any issue is served everywhere without extra wiring.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

import msgspec

from domain.commands import Command
from handlers.decision import CommandContext, Decision

Handler = Callable[[Any, CommandContext, Any], Decision]
C = TypeVar("C", bound=Command)


@dataclass(frozen=True, slots=True)
class CommandSpec:
    name: str
    type: type[Command]
    handler: Handler
    decoder: msgspec.json.Decoder[Any]


class CommandRegistry:
    def __init__(self) -> None:
        self._specs: dict[str, CommandSpec] = {}

    def handles(self, command_type: type[C]) -> Callable[[Handler], Handler]:
        """Decorator: register the handler of one command type under the command's name."""

        def add(fn: Handler) -> Handler:
            name = command_type.command_name()
            if name in self._specs:
                raise ValueError(f"command {name!r} has two handlers")
            self._specs[name] = CommandSpec(
                name, command_type, fn, msgspec.json.Decoder(command_type)
            )
            return fn

        return add

    def get(self, name: str) -> CommandSpec | None:
        return self._specs.get(name)

    def names(self) -> list[str]:
        return sorted(self._specs)

    def __iter__(self) -> Iterator[CommandSpec]:
        return iter(sorted(self._specs.values(), key=lambda s: s.name))


COMMANDS = CommandRegistry()
