"""`crm import`: JSON lines of commands, decided in large batches, appended through the bulk path.

Each batch is parsed and validated line by line (a bad line is reported with its number and
field; the good ones are kept), commands already recorded are skipped (so a re-run of the same
file appends nothing), and every command is decided by its ordinary handler against an overlay:
the log as the batch sees it, with the batch's own earlier events. The whole batch is appended
with its command records in one transaction.

What a batch reads first is one round trip: the contacts it registers, the streams it names
that it does not hold, and what another writer appended since the last batch (positions after
the importer's watermark outside its own appends, see `CustomerStates`): the customer states it
folded are kept from one batch to the next and only those another writer changed are read
again. Which command ids are recorded is asked of the first batches, until one finds none
(a re-run, or a run resumed after a crash, skips what landed); after that the command records'
unique key checks it, and a batch whose append finds a recorded one is decided again without
them (and the next batches ask again).

With `pipeline=True` (PostgreSQL) the append of batch k runs on a writer thread while batch k+1
is decided. If an append fails (a concurrent writer took a stream version, a contact, or a
command id), its commands run one by one on the bus, the held states are dropped, and the batch
decided meanwhile is decided again: nothing is lost and nothing is written twice.
"""

from __future__ import annotations

import gc
import hashlib
import sys
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import NamedTuple
from uuid import UUID

import msgspec

from domain.commands import Command
from domain.envelope import Envelope
from domain.errors import DomainError
from handlers.bus import CommandBus
from handlers.decision import CommandContext, Decision
from handlers.deps import Deps
from handlers.errors import CommandRejected
from handlers.overlay import Overlay, overlay_for
from handlers.parsing import ImportLine, parse_command, parse_line
from handlers.ports import (
    AppendConflict,
    BatchLog,
    CommandAlreadyRecorded,
    CommandResult,
    ContactTakenOnAppend,
)
from handlers.registry import Handler
from handlers.states import CustomerStates

SWITCH_INTERVAL = 0.0005  # seconds, while a pipelined import runs (see Importer.run)


class LineError(msgspec.Struct, frozen=True):
    line: int
    code: str
    message: str
    field: str | None = None


@dataclass
class ImportReport:
    lines: int = 0
    appended: int = 0
    duplicates: int = 0
    events: int = 0
    errors: list[LineError] = field(default_factory=list)


class _Parsed(NamedTuple):
    line: int
    command: Command
    ctx: CommandContext


@dataclass
class _Decided:
    """A batch decided and ready to append; `rest` must then run one by one (after a forget)."""

    items: list[tuple[_Parsed, Decision]]
    rest: list[_Parsed]
    errors: list[LineError]
    command_ids: set[str]
    owners: dict[tuple[str, str], UUID | None]
    prepared: object = None  # the items encoded for the log's append_prepared (None: none)
    appending: int = 0  # how many of the items have events
    parsed: Sequence[_Parsed] = ()  # the commands decided (items and errors), in file order
    duplicates: int = 0  # recorded commands found among those that appended nothing


def command_id_of(line: ImportLine, raw: bytes) -> str:
    """The line's own command_id, else one derived from its bytes: re-runs append nothing."""
    return line.command_id or "import:" + hashlib.sha256(raw.strip()).hexdigest()[:40]


class Importer:
    def __init__(
        self,
        bus: CommandBus,
        log: BatchLog,
        batch_size: int = 5000,
        *,
        pipeline: bool = False,
    ) -> None:
        self.bus = bus
        self.log = log
        self.batch_size = batch_size
        self.pipeline = pipeline
        self.states = CustomerStates()
        # Whether to ask the log which command ids of a batch are recorded before deciding it.
        # A re-run asks until a batch finds none; from then on the command records' unique key
        # is the check: a batch whose append finds one recorded is decided again without them.
        self.probe = True
        self._handlers: dict[type[Command], Handler] = {}  # the registry's, by command class

    def run(
        self,
        lines: Iterable[bytes],
        default: CommandContext,
        progress: Callable[[ImportReport], None] | None = None,
    ) -> ImportReport:
        report = ImportReport()
        writer = ThreadPoolExecutor(1, "crm-import-append") if self.pipeline else None
        in_flight: tuple[_Decided, Future[list[int]]] | None = None
        # Deciding makes no reference cycles, but millions of short-lived objects: without
        # the collector rescanning them all the import runs a quarter faster. It runs a young
        # collection every few batches instead, and is back on when the import ends.
        collecting = gc.isenabled()
        gc.disable()
        # The writer thread takes the interpreter lock back after every block it hands the
        # server; at the default 5 ms switch interval it queued behind the deciding thread
        # and the server idled (measured: 24 s for 1M lines against 19 s at 0.5 ms).
        interval = sys.getswitchinterval()
        if writer is not None:
            sys.setswitchinterval(min(interval, SWITCH_INTERVAL))
        try:
            for number, batch in enumerate(_batches(lines, self.batch_size), start=1):
                if collecting and number % 20 == 0:
                    gc.collect(1)
                flying = in_flight[0] if in_flight else None
                seen: set[str] = set()
                todo = self._parse(
                    batch, default, report, flying.command_ids if flying else set(), seen
                )
                decided = self._prepare(self._decide(todo, flying, seen))
                if in_flight is not None and not self._landed(*in_flight, report):
                    # it was decided on events that never landed
                    decided = self._decide(self._unrecorded(todo, report) if self.probe else todo)
                in_flight = None
                if writer is not None and not decided.rest:
                    in_flight = (decided, writer.submit(self._append, self._prepare(decided)))
                else:
                    self._finish(decided, report)
                if progress is not None:
                    progress(report)
            if in_flight is not None:
                self._landed(*in_flight, report)
                if progress is not None:
                    progress(report)
        except BaseException:
            # What was decided may never land: nothing held may be trusted by a next run.
            self.states.clear()
            self.probe = True
            raise
        finally:
            if writer is not None:
                writer.shutdown(wait=True)
                sys.setswitchinterval(interval)
            if collecting:
                gc.enable()
        return report

    def _parse(
        self,
        batch: Sequence[tuple[int, bytes]],
        default: CommandContext,
        report: ImportReport,
        flying: set[str],
        seen: set[str],
    ) -> list[_Parsed]:
        """The batch's good lines as commands; their command ids are added to `seen`."""
        parsed: list[_Parsed] = []
        for number, raw in batch:
            report.lines += 1
            try:
                line = parse_line(raw)
                command = parse_command(line.command, line.data)
            except CommandRejected as e:
                report.errors.append(LineError(number, e.code, str(e), e.details.get("field")))
                continue
            command_id = command_id_of(line, raw)
            if command_id in seen or command_id in flying:
                report.duplicates += 1
                continue
            seen.add(command_id)
            ctx = CommandContext(
                actor=line.actor or default.actor,
                channel=default.channel,
                command_id=command_id,
                correlation_id=line.correlation_id or default.correlation_id,
                causation_id=line.causation_id or default.causation_id,
            )
            parsed.append(_Parsed(number, command, ctx))
        return self._unrecorded(parsed, report) if self.probe else parsed

    def _unrecorded(self, parsed: list[_Parsed], report: ImportReport) -> list[_Parsed]:
        """The commands not recorded yet (those that are count as duplicates)."""
        recorded = self.log.recorded_commands(
            {p.ctx.command_id for p in parsed if p.ctx.command_id}
        )
        self.probe = bool(recorded)
        report.duplicates += len(recorded)
        return [p for p in parsed if p.ctx.command_id not in recorded] if recorded else parsed

    def _overlay(self, todo: Sequence[_Parsed], flying: _Decided | None) -> Overlay:
        """The batch's view of the log, with the batch still being appended (`flying`)."""
        pending: dict[int, list[Envelope]] = {}  # by the stream id's integer (see Overlay)
        if flying is not None:
            for _, decision in flying.items:
                for e in decision.events:
                    pending.setdefault(e.stream_id.int, []).append(e)
        return overlay_for(
            self.log,
            self.states,
            (p.command for p in todo),
            pending,
            flying.owners if flying is not None else None,
            watch=True,
        )

    def _decide(
        self, todo: Sequence[_Parsed], flying: _Decided | None = None, ids: set[str] | None = None
    ) -> _Decided:
        """Decide a batch; `ids`, if given, are the command ids of `todo` (and perhaps of
        recorded ones): the decided ones' when every command decided."""
        overlay = self._overlay(todo, flying)
        deps = Deps(log=overlay, clock=self.bus.deps.clock, states=self.states)  # type: ignore[arg-type]
        decided: list[tuple[_Parsed, Decision]] = []
        errors: list[LineError] = []
        quiet: list[str] = []  # unprobed commands that appended nothing: recorded ones?
        handlers = self._handlers
        for i, item in enumerate(todo):
            handler = handlers.get(item.command.__class__)
            if handler is None:
                spec = self.bus.registry.get(item.command.command_name())
                assert spec is not None
                handler = handlers[item.command.__class__] = spec.handler
            try:
                decision = handler(item.command, item.ctx, deps)
            except (DomainError, CommandRejected) as e:
                errors.append(
                    LineError(item.line, e.code, str(e), getattr(e, "details", {}).get("field"))
                )
                if not self.probe and item.ctx.command_id:
                    quiet.append(item.ctx.command_id)
                continue
            if decision.forget is not None:  # forgetting deletes a key: flush, then run it alone
                self._refold(overlay)
                found = _Decided(
                    decided, list(todo[i:]), errors, _ids(decided), overlay.claimed, parsed=todo[:i]
                )
                return self._settle(found, quiet)
            if not decision.events and not self.probe and item.ctx.command_id:
                quiet.append(item.ctx.command_id)
            overlay.accept(decision)
            decided.append((item, decision))
        self._refold(overlay)
        done = ids if ids is not None and not errors else _ids(decided)
        return self._settle(
            _Decided(decided, [], errors, done, overlay.claimed, parsed=todo), quiet
        )

    def _settle(self, decided: _Decided, quiet: list[str]) -> _Decided:
        """Commands not asked about that appended nothing (refused, or nothing to do) may be
        recorded ones, which no unique key then catches: ask about those few. Recorded ones
        count as duplicates, not as errors, and the next batches are asked about again.
        (Their decisions changed nothing the batch's other commands saw.)"""
        recorded = self.log.recorded_commands(quiet) if quiet else set()
        if not recorded:
            return decided
        self.probe = True
        decided.duplicates = len(recorded)
        lines = {p.line for p in decided.parsed if p.ctx.command_id in recorded}
        decided.errors = [e for e in decided.errors if e.line not in lines]
        decided.items = [(p, d) for p, d in decided.items if p.line not in lines]
        decided.parsed = [p for p in decided.parsed if p.line not in lines]
        return decided

    def _refold(self, overlay: Overlay) -> None:
        """Fold the batch's own events into the held states they belong to: the log will not
        be asked about them again (see CustomerStates)."""
        held = self.states.held()
        for stream_id in overlay.extended:  # a new stream was not held (nor read) before
            if stream_id in held:
                self.states.get(overlay, stream_id)

    def _landed(self, decided: _Decided, append: Future[list[int]], report: ImportReport) -> bool:
        """Wait for a pipelined append; False if it failed (its commands then ran one by one)."""
        try:
            positions = append.result()
        except CommandAlreadyRecorded:
            self.states.clear()
            self.probe = True
            report.duplicates += decided.duplicates
            # Every command of the batch decided again without the recorded ones, in bulk:
            # those refused or that decided nothing too, since replaying a recorded command
            # changed the state they were decided on.
            redo = self._decide(self._unrecorded(list(decided.parsed), report))
            self._finish(redo, report)
            return False
        except (AppendConflict, ContactTakenOnAppend):
            self.states.clear()
            report.duplicates += decided.duplicates
            # Every command of the batch again, one by one, refused ones and those that
            # decided nothing too: the state they were decided on is not the one that landed.
            self._one_by_one(list(decided.parsed), report)
            return False
        except BaseException:
            self.states.clear()
            raise
        self.states.own(positions)
        report.duplicates += decided.duplicates
        report.errors.extend(decided.errors)
        report.appended += decided.appending
        report.events += len(positions)
        return True

    def _finish(self, decided: _Decided, report: ImportReport) -> None:
        """Append a decided batch here and now, then run what must run one by one."""
        self._landed(decided, _done(self._append, self._prepare(decided)), report)
        if decided.rest:
            self.states.clear()
            self._one_by_one(decided.rest, report)

    def _prepare(self, decided: _Decided) -> _Decided:
        """Encode a decided batch for its append (here, while the batch before it is being
        written: the writer then only writes)."""
        if decided.prepared is None:
            with_events = [(p, d) for p, d in decided.items if d.events]
            decided.appending = len(with_events)
            if with_events:
                decided.prepared = self.log.prepare_commands(
                    [
                        (p.ctx.command_id or "", p.command.command_name(), d.events)
                        for p, d in with_events
                    ],
                    claims=[c for _, d in with_events for c in d.claims],
                    releases=[c for _, d in with_events for c in d.releases],
                )
        return decided

    def _append(self, decided: _Decided) -> list[int]:
        return [] if decided.prepared is None else self.log.append_prepared(decided.prepared)

    def _one_by_one(self, items: Sequence[_Parsed], report: ImportReport) -> None:
        """The slow, always-correct path: each command through the bus on its own."""
        for item in items:
            before = self.log.find_command(item.ctx.command_id) if item.ctx.command_id else None
            if before is not None:
                report.duplicates += 1
                continue
            try:
                result: CommandResult = self.bus.execute(item.command, item.ctx)
            except (DomainError, CommandRejected) as e:
                report.errors.append(
                    LineError(item.line, e.code, str(e), getattr(e, "details", {}).get("field"))
                )
                continue
            if result.positions:  # a command that decided nothing appended nothing
                report.appended += 1
                report.events += len(result.positions)


def _ids(decided: list[tuple[_Parsed, Decision]]) -> set[str]:
    return {p.ctx.command_id for p, _ in decided if p.ctx.command_id}


def _done(fn: Callable[[_Decided], list[int]], arg: _Decided) -> Future[list[int]]:
    """Run `fn(arg)` now, its outcome (value or exception) held in a completed future."""
    future: Future[list[int]] = Future()
    try:
        future.set_result(fn(arg))
    except BaseException as e:  # handed to _landed, which re-raises what it must
        future.set_exception(e)
    return future


def _batches(lines: Iterable[bytes], size: int) -> Iterator[list[tuple[int, bytes]]]:
    batch: list[tuple[int, bytes]] = []
    for number, raw in enumerate(lines, start=1):
        if not raw.strip():
            continue
        batch.append((number, raw))
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch
