"""Run a command: idempotency, decide, append atomically, bounded retry on conflicts.

A repeated `command_id` returns the first answer and appends nothing: the command record is
committed in the same transaction as its events, and a failed append first checks it (the
store's own retry after a dropped connection may re-run a commit that already succeeded).
"""

from __future__ import annotations

import random
import time
from typing import Any

import msgspec
import structlog

from domain.commands import Command
from domain.customers.errors import ContactAlreadyRegistered
from handlers import (  # noqa: F401  (they register their handlers)
    audiences,
    campaigns,
    customers,
    interactions,
    offers,
    orders,
    pipeline,
    products,
    reminders,
    service,
)
from handlers.decision import CommandContext, Decision
from handlers.deps import Deps
from handlers.errors import ConcurrencyExhausted, UnknownCommand
from handlers.parsing import parse_command
from handlers.ports import (
    AppendConflict,
    CommandAlreadyRecorded,
    CommandResult,
    ContactTakenOnAppend,
    StreamVersion,
)
from handlers.registry import COMMANDS, CommandRegistry

log = structlog.get_logger("crm.handlers")


def result_of(decision: Decision, positions: list[int]) -> CommandResult:
    heads: dict[Any, int] = {}
    for e in decision.events:
        heads[e.stream_id] = max(heads.get(e.stream_id, 0), e.version)
    return CommandResult(
        streams=[StreamVersion(k, v) for k, v in heads.items()], positions=positions
    )


class CommandBus:
    def __init__(
        self, deps: Deps, registry: CommandRegistry = COMMANDS, max_attempts: int = 8
    ) -> None:
        self.deps = deps
        self.registry = registry
        self.max_attempts = max_attempts

    def execute_json(
        self, name: str, data: bytes | msgspec.Raw | dict[str, Any], ctx: CommandContext
    ) -> CommandResult:
        return self.execute(parse_command(name, data, self.registry), ctx)

    def execute(self, command: Command, ctx: CommandContext) -> CommandResult:
        name = command.command_name()
        spec = self.registry.get(name)
        if spec is None:
            raise UnknownCommand(name)
        log_ = self.deps.log
        if ctx.command_id is not None and (prior := log_.find_command(ctx.command_id)) is not None:
            return prior
        for attempt in range(1, self.max_attempts + 1):
            decision = spec.handler(command, ctx, self.deps)
            if decision.forget is not None:
                log_.forget_keys(decision.forget)
            if not decision.events:
                return CommandResult()
            try:
                positions = log_.append_command(
                    decision.events,
                    command_id=ctx.command_id,
                    command_name=name,
                    claims=decision.claims,
                    releases=decision.releases,
                )
            except CommandAlreadyRecorded:
                return self._first_answer(ctx)
            except ContactTakenOnAppend as e:
                raise ContactAlreadyRegistered(e.kind, e.owner) from None
            except AppendConflict:
                if ctx.command_id is not None and (prior := log_.find_command(ctx.command_id)):
                    return prior
                log.info(
                    "command.conflict",
                    command=name,
                    attempt=attempt,
                    correlation_id=ctx.correlation_id,
                )
                time.sleep(random.uniform(0, 0.005 * attempt))
                continue
            return result_of(decision, positions)
        raise ConcurrencyExhausted(
            f"{name}: the streams kept changing; gave up after {self.max_attempts} attempts",
            command=name,
        )

    def _first_answer(self, ctx: CommandContext) -> CommandResult:
        assert ctx.command_id is not None
        prior = self.deps.log.find_command(ctx.command_id)
        assert prior is not None, "a recorded command must be found"
        return prior
