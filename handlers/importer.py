"""`crm import`: JSON lines of commands, decided in large batches, appended through the bulk path.

Each batch is parsed and validated line by line (a bad line is reported with its number and
field; the good ones are kept), commands already recorded are skipped (so a re-run of the same
file appends nothing), the customers the batch touches are loaded in one query, every command is
decided by its ordinary handler against an overlay that sees the batch's own earlier events, and
the whole batch is appended with its command records in one transaction. If that append fails
(a concurrent writer), the batch falls back to running its commands one by one on the bus.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from uuid import UUID

import msgspec

from domain.commands import Command
from domain.customers.contacts import normalise_contact
from domain.envelope import Envelope
from domain.errors import DomainError
from handlers.bus import CommandBus
from handlers.decision import CommandContext, Decision
from handlers.deps import Deps
from handlers.errors import CommandRejected
from handlers.parsing import ImportLine, parse_command, parse_line
from handlers.ports import (
    AppendConflict,
    BatchLog,
    CommandAlreadyRecorded,
    CommandResult,
    ContactTakenOnAppend,
)

REFERENCE_FIELDS = ("customer_id", "organisation_id", "person_id", "survivor_id", "merged_id")


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


@dataclass
class _Parsed:
    line: int
    command: Command
    ctx: CommandContext


def command_id_of(line: ImportLine, raw: bytes) -> str:
    """The line's own command_id, else one derived from its bytes: re-runs append nothing."""
    return line.command_id or "import:" + hashlib.sha256(raw.strip()).hexdigest()[:40]


class _Overlay:
    """The event log as a batch sees it: what is stored plus what the batch decided so far."""

    def __init__(self, log: BatchLog, stored: dict[UUID, list[Envelope]]) -> None:
        self._log = log
        self._streams = stored
        self._owners: dict[tuple[str, str], UUID] = {}

    def load(self, stream_id: UUID) -> list[Envelope]:
        if stream_id not in self._streams:
            self._streams[stream_id] = self._log.load(stream_id)
        return self._streams[stream_id]

    def contact_owner(self, kind: str, value: str) -> UUID | None:
        key = (kind, normalise_contact(kind, value))
        return self._owners.get(key) or self._log.contact_owner(kind, value)

    def accept(self, decision: Decision) -> None:
        for e in decision.events:
            self._streams.setdefault(e.stream_id, []).append(e)
        for c in decision.claims:
            self._owners[(c.kind, normalise_contact(c.kind, c.value))] = c.customer_id
        for c in decision.releases:
            self._owners.pop((c.kind, normalise_contact(c.kind, c.value)), None)

    def __getattr__(self, name: str) -> object:
        return getattr(self._log, name)


class Importer:
    def __init__(self, bus: CommandBus, log: BatchLog, batch_size: int = 5000) -> None:
        self.bus = bus
        self.log = log
        self.batch_size = batch_size

    def run(
        self,
        lines: Iterable[bytes],
        default: CommandContext,
        progress: Callable[[ImportReport], None] | None = None,
    ) -> ImportReport:
        report = ImportReport()
        for batch in _batches(lines, self.batch_size):
            self._run_batch(batch, default, report)
            if progress is not None:
                progress(report)
        return report

    def _parse(
        self, batch: Sequence[tuple[int, bytes]], default: CommandContext, report: ImportReport
    ) -> list[_Parsed]:
        parsed: list[_Parsed] = []
        seen: set[str] = set()
        for number, raw in batch:
            report.lines += 1
            try:
                line = parse_line(raw)
                command = parse_command(line.command, line.data)
            except CommandRejected as e:
                report.errors.append(LineError(number, e.code, str(e), e.details.get("field")))
                continue
            command_id = command_id_of(line, raw)
            if command_id in seen:
                report.duplicates += 1
                continue
            seen.add(command_id)
            ctx = msgspec.structs.replace(
                default,
                command_id=command_id,
                actor=line.actor or default.actor,
                correlation_id=line.correlation_id or default.correlation_id,
                causation_id=line.causation_id or default.causation_id,
            )
            parsed.append(_Parsed(number, command, ctx))
        recorded = self.log.recorded_commands(p.ctx.command_id for p in parsed if p.ctx.command_id)
        report.duplicates += sum(p.ctx.command_id in recorded for p in parsed)
        return [p for p in parsed if p.ctx.command_id not in recorded]

    def _run_batch(
        self, batch: Sequence[tuple[int, bytes]], default: CommandContext, report: ImportReport
    ) -> None:
        todo = self._parse(batch, default, report)
        refs = {
            getattr(p.command, f)
            for p in todo
            for f in REFERENCE_FIELDS
            if getattr(p.command, f, None)
        }
        overlay = _Overlay(self.log, self.log.load_many(refs))
        deps = Deps(log=overlay, clock=self.bus.deps.clock)  # type: ignore[arg-type]
        decided: list[tuple[_Parsed, Decision]] = []
        for i, item in enumerate(todo):
            spec = self.bus.registry.get(item.command.command_name())
            assert spec is not None
            try:
                decision = spec.handler(item.command, item.ctx, deps)
            except (DomainError, CommandRejected) as e:
                report.errors.append(
                    LineError(item.line, e.code, str(e), getattr(e, "details", {}).get("field"))
                )
                continue
            if decision.forget is not None:  # forgetting deletes a key: flush, then run it alone
                self._append(decided, report)
                self._one_by_one(todo[i:], report)
                return
            overlay.accept(decision)
            decided.append((item, decision))
        self._append(decided, report)

    def _append(self, decided: list[tuple[_Parsed, Decision]], report: ImportReport) -> None:
        with_events = [(p, d) for p, d in decided if d.events]
        if not with_events:
            return
        try:
            positions = self.log.append_commands(
                [
                    (p.ctx.command_id or "", p.command.command_name(), d.events)
                    for p, d in with_events
                ],
                claims=[c for _, d in with_events for c in d.claims],
                releases=[c for _, d in with_events for c in d.releases],
            )
        except (AppendConflict, CommandAlreadyRecorded, ContactTakenOnAppend):
            self._one_by_one([p for p, _ in with_events], report)
            return
        report.appended += len(with_events)
        report.events += len(positions)

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
            report.appended += 1
            report.events += len(result.positions)


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
