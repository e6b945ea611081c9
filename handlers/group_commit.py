"""Group commit: commands that arrive together are decided and appended in one transaction.

The NATS service hands every command it receives to a batcher; the batcher gives what has
queued up meanwhile to `GroupCommitter.run`. The batch is decided against an overlay (each
command sees the events the earlier ones of the batch decided, streams are read in one query)
and appended with its command records by `append_group`: one lock, one commit, where each
command is checked against its own stream versions, so a conflict fails only its own command.
A conflicted command is decided again (bounded), a repeated `command_id` answers as the first
time, a forget (which deletes a key before its events) runs on its own through the bus.

Nothing is answered before its commit: an outcome is a result only once its events landed.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple, Protocol
from uuid import UUID

import structlog

from domain.commands import Command
from domain.customers.commands import RegisterCustomer
from domain.customers.errors import ContactAlreadyRegistered
from domain.errors import DomainError
from handlers.bus import CommandBus, result_of
from handlers.decision import CommandContext, Decision
from handlers.deps import Deps, new_id
from handlers.errors import CommandRejected, ConcurrencyExhausted, UnknownCommand
from handlers.overlay import overlay_for
from handlers.ports import (
    AppendConflict,
    BatchLog,
    CommandAlreadyRecorded,
    CommandResult,
    ContactTakenOnAppend,
    GroupItem,
    GroupLog,
)
from handlers.states import CustomerStates

log = structlog.get_logger("crm.handlers.group")

Outcome = CommandResult | Exception


class GroupBatchLog(BatchLog, GroupLog, Protocol):
    """What group commit needs of the log: batch reads (the overlay) and `append_group`."""


class Submitted(NamedTuple):
    command: Command
    ctx: CommandContext


def _registers(command: Command) -> bool:
    return isinstance(command, RegisterCustomer) and command.customer_id is None


def new_customer_id(item: Submitted) -> UUID:
    """The id `customer.register` gives a customer it is not told: read with the batch."""
    return new_id(item.ctx, "customer")


class GroupCommitter:
    """Decides and appends batches of commands; one instance per process, used by one thread
    at a time (its customer states are shared between batches)."""

    def __init__(self, bus: CommandBus, log_: GroupBatchLog, max_attempts: int = 8) -> None:
        self.bus = bus
        self.log = log_
        self.max_attempts = max_attempts
        self.states = CustomerStates()

    def run(self, items: Sequence[Submitted]) -> list[Outcome]:
        """One outcome per item, in order: its result, or the typed error to answer with."""
        outcomes: list[Outcome | None] = [None] * len(items)
        first: dict[str, int] = {}
        repeats: dict[int, int] = {}
        todo: list[int] = []
        for i, item in enumerate(items):
            command_id = item.ctx.command_id
            if command_id is not None:
                if command_id in first:  # the same command twice in one batch: one answer
                    repeats[i] = first[command_id]
                    continue
                first[command_id] = i
            todo.append(i)
        attempt = 0
        while todo:
            attempt += 1
            todo = self._round(items, todo, outcomes, last=attempt >= self.max_attempts)
        for i, j in repeats.items():
            outcomes[i] = outcomes[j]
        assert all(o is not None for o in outcomes)
        return outcomes  # type: ignore[return-value]

    def _round(
        self,
        items: Sequence[Submitted],
        todo: list[int],
        outcomes: list[Outcome | None],
        last: bool,
    ) -> list[int]:
        """Decide and append `todo` once; returns the items to decide again (conflicts)."""
        overlay = overlay_for(
            self.log,
            self.states,
            (items[i].command for i in todo),
            also=[new_customer_id(items[i]) for i in todo if _registers(items[i].command)],
            command_ids=[c for i in todo if (c := items[i].ctx.command_id) is not None],
        )
        if overlay.recorded:  # a retry of a command that landed: its first answer, undecided
            for i in todo:
                if items[i].ctx.command_id in overlay.recorded:
                    outcomes[i] = self._prior(items[i].ctx.command_id)  # type: ignore[arg-type]
            todo = [i for i in todo if outcomes[i] is None]
        deps = Deps(log=overlay, clock=self.bus.deps.clock, states=self.states)  # type: ignore[arg-type]
        decided: list[tuple[int, Decision, tuple[int, ...]]] = []
        writer: dict[UUID, int] = {}  # stream -> the last decided item that wrote it
        alone: list[int] = []
        for k, i in enumerate(todo):
            command, ctx = items[i]
            spec = self.bus.registry.get(command.command_name())
            if spec is None:
                outcomes[i] = UnknownCommand(command.command_name())
                continue
            overlay.reads.clear()
            try:
                decision = spec.handler(command, ctx, deps)
            except (DomainError, CommandRejected) as e:
                outcomes[i] = e
                continue
            except Exception as e:  # a bug in one handler must not fail the others
                log.exception("command.failed", command=spec.name, command_id=ctx.command_id)
                outcomes[i] = e
                continue
            if decision.forget is not None:  # deletes a key first: the bus runs it, and the rest
                alone = todo[k:]
                break
            if not decision.events:
                outcomes[i] = CommandResult()
                continue
            # it was decided on what earlier items wrote: it lands only if they do
            depends = tuple(sorted({writer[s] for s in overlay.reads if s in writer}))
            overlay.accept(decision)
            for e in decision.events:
                writer[e.stream_id] = len(decided)
            decided.append((i, decision, depends))
        retry = self._append(items, decided, outcomes, last) if decided else []
        for i in alone:
            outcomes[i] = self._alone(items[i])
        return retry

    def _append(
        self,
        items: Sequence[Submitted],
        decided: list[tuple[int, Decision, tuple[int, ...]]],
        outcomes: list[Outcome | None],
        last: bool,
    ) -> list[int]:
        group = [
            GroupItem(
                items[i].ctx.command_id,
                items[i].command.command_name(),
                d.events,
                d.claims,
                d.releases,
                depends,
            )
            for i, d, depends in decided
        ]
        try:
            results = self.log.append_group(group)
        except Exception as e:  # the store failed: nothing is answered as done
            self.states.clear()
            for i, _, _ in decided:
                outcomes[i] = e
            return []
        retry: list[int] = []
        clean = True
        for (i, decision, _), result in zip(decided, results, strict=True):
            if isinstance(result, list):
                outcomes[i] = result_of(decision, result)
                continue
            clean = False
            command_id = items[i].ctx.command_id
            if isinstance(result, CommandAlreadyRecorded) and command_id is not None:
                outcomes[i] = self._prior(command_id)
            elif isinstance(result, ContactTakenOnAppend):
                outcomes[i] = ContactAlreadyRegistered(result.kind, result.owner)
            elif isinstance(result, AppendConflict) and not last:
                retry.append(i)
            else:
                name = items[i].command.command_name()
                outcomes[i] = ConcurrencyExhausted(
                    f"{name}: the streams kept changing; gave up after "
                    f"{self.max_attempts} attempts",
                    command=name,
                )
        if not clean:  # states folded from the overlay may hold events that never landed
            self.states.clear()
            log.info("group.partial", items=len(decided), retry=len(retry))
        return retry

    def _alone(self, item: Submitted) -> Outcome:
        try:
            return self.bus.execute(item.command, item.ctx)
        except Exception as e:
            return e
        finally:
            self.states.clear()

    def _prior(self, command_id: str) -> Outcome:
        prior = self.log.find_command(command_id)
        if prior is None:  # recorded, then unreadable: never answer as if it did nothing
            return AppendConflict(f"command {command_id} is recorded but its events are not found")
        return prior
