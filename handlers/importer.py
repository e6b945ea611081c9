"""`crm import`: JSON lines of commands, decided in large batches, appended through the bulk path.

Each batch is parsed and validated line by line (a bad line is reported with its number and
field; the good ones are kept), commands already recorded are skipped (so a re-run of the same
file appends nothing), and every command is decided by its ordinary handler against an overlay:
the log as the batch sees it, with the batch's own earlier events. The importer keeps the
customer states it folded from one batch to the next and, per batch, reads in one query only the
events newer than those states; the contacts a batch registers are looked up in one query too.
The whole batch is appended with its command records in one transaction.

With `pipeline=True` (PostgreSQL) the append of batch k runs on a writer thread while batch k+1
is decided. If an append fails (a concurrent writer took a stream version, a contact, or a
command id), its commands run one by one on the bus, the held states are dropped, and the batch
decided meanwhile is decided again: nothing is lost and nothing is written twice.
"""

from __future__ import annotations

import functools
import gc
import hashlib
import operator
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, NamedTuple
from uuid import UUID

import msgspec

from domain.commands import Command
from domain.customers.contacts import normalise_contact
from domain.envelope import Envelope
from domain.errors import DomainError
from domain.pipeline.state import pipeline_stream_id
from domain.products.state import product_stream_id
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
from handlers.states import CustomerStates

REFERENCE_FIELDS = (
    "customer_id",
    "organisation_id",
    "person_id",
    "survivor_id",
    "merged_id",
    "interaction_id",
    "order_id",
    "deal_id",
    "equipment_id",
    "ticket_id",
    "survey_id",
    "offer_id",
    "reminder_id",
    "subscription_id",
)
CONTACT_KINDS = ("email", "phone")


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


def command_id_of(line: ImportLine, raw: bytes) -> str:
    """The line's own command_id, else one derived from its bytes: re-runs append nothing."""
    return line.command_id or "import:" + hashlib.sha256(raw.strip()).hexdigest()[:40]


@functools.cache
def _shape(
    command_type: type[Command],
) -> tuple[Callable[[Command], tuple[UUID | None, ...]], tuple[str, ...], bool]:
    """(getter of the reference fields, contact fields, has kind/value) of a command type."""
    names = command_type.__struct_fields__
    refs = [f for f in REFERENCE_FIELDS if f in names]
    getter: Callable[[Command], Any]
    if not refs:
        getter = lambda c: ()  # noqa: E731
    elif len(refs) == 1:
        one = operator.attrgetter(refs[0])
        getter = lambda c: (one(c),)  # noqa: E731
    else:
        getter = operator.attrgetter(*refs)
    return (
        getter,
        tuple(f for f in CONTACT_KINDS if f in names),
        "kind" in names and "value" in names,
    )


def references_of(command: Command) -> list[UUID]:
    """The streams a command names: customers, interactions, orders, deals, subscriptions by
    id; products by sku (also of its items and plan), a pipeline by name."""
    refs = [r for r in _shape(type(command))[0](command) if r is not None]
    if _names_products(type(command)):
        refs.extend(product_stream_id(sku) for sku in _skus(command))
        pipeline = getattr(command, "pipeline", None)
        if isinstance(pipeline, str):
            refs.append(pipeline_stream_id(pipeline))
    return refs


@functools.cache
def _names_products(command_type: type[Command]) -> bool:
    """Whether a command type can name a product (sku, plan, items) or a pipeline."""
    return bool({"sku", "plan", "items", "pipeline"} & set(command_type.__struct_fields__))


def _skus(command: Command) -> list[str]:
    found = [s for f in ("sku", "plan") if isinstance(s := getattr(command, f, None), str)]
    found.extend(i.sku for i in getattr(command, "items", None) or () if hasattr(i, "sku"))
    return found


def contacts_of(command: Command) -> list[tuple[str, str]]:
    """The e-mails and phones a command would claim (registration, added contact)."""
    _, fields, kind_value = _shape(type(command))
    found = [(k, v) for k in fields if isinstance(v := getattr(command, k), str)]
    if kind_value:
        kind, value = getattr(command, "kind"), getattr(command, "value")  # noqa: B009
        if kind in CONTACT_KINDS and isinstance(value, str):
            found.append((kind, value))
    return found


class _Overlay:
    """The event log as a batch sees it.

    For each stream it holds, it has the events after `base[stream]` (the version of the state
    the importer already has; 0 for a stream held whole) plus what the batch decided so far.
    A stream it does not hold yet is read from the log once (whole), with the events of the
    batch still being appended (`flying`) on top, and held from then on. Contact owners looked
    up in advance, and the ones the batch claimed or released, are answered without a query.
    """

    def __init__(
        self,
        log: BatchLog,
        newer: dict[UUID, list[Envelope]],
        base: dict[UUID, int],
        owners: dict[tuple[str, str], UUID | None],
        flying: dict[UUID, list[Envelope]],
    ) -> None:
        self._log = log
        self._streams = newer
        self._base = base
        self._owners = owners
        self._flying = flying
        self.claimed: dict[tuple[str, str], UUID | None] = {}  # what the batch claimed/released

    def _hold(self, stream_ids: Iterable[UUID]) -> None:
        """Read the streams not held yet, in one query, and hold them whole."""
        missing = [i for i in dict.fromkeys(stream_ids) if i not in self._streams]
        if not missing:
            return
        found = self._log.load_many(missing)
        for stream_id in missing:
            events = list(found.get(stream_id, ()))
            head = events[-1].version if events else 0
            events.extend(e for e in self._flying.get(stream_id, ()) if e.version > head)
            self._streams[stream_id] = events
            self._base[stream_id] = 0

    def read_stream(self, stream_id: UUID, after_version: int = 0) -> list[Envelope]:
        if stream_id not in self._streams:
            self._hold([stream_id])
        known = self._streams[stream_id]
        base = self._base.get(stream_id, 0)
        if after_version >= base:
            return known[after_version - base :]
        older = [e for e in self._log.read_stream(stream_id, after_version) if e.version <= base]
        head = older[-1].version if older else after_version  # the rest may still be in flight
        older.extend(e for e in self._flying.get(stream_id, ()) if head < e.version <= base)
        return older + known

    def load(self, stream_id: UUID) -> list[Envelope]:
        return self.read_stream(stream_id, 0)

    def load_many(self, stream_ids: Iterable[UUID]) -> dict[UUID, list[Envelope]]:
        ids = list(stream_ids)
        self._hold(ids)
        return {i: self.read_stream(i, 0) for i in ids}

    def contact_owner(self, kind: str, value: str) -> UUID | None:
        key = (kind, normalise_contact(kind, value))
        if key in self._owners:
            return self._owners[key]
        return self._log.contact_owner(kind, value)

    def accept(self, decision: Decision) -> None:
        for e in decision.events:
            known = self._streams.get(e.stream_id)
            if known is None:
                if e.version == 1:  # a new stream (else the append would conflict)
                    known = self._streams[e.stream_id] = []
                    self._base[e.stream_id] = 0
                else:
                    self._hold([e.stream_id])
                    known = self._streams[e.stream_id]
            known.append(e)
        for c in decision.claims:
            key = (c.kind, normalise_contact(c.kind, c.value))
            self._owners[key] = self.claimed[key] = c.customer_id
        for c in decision.releases:
            key = (c.kind, normalise_contact(c.kind, c.value))
            self._owners[key] = self.claimed[key] = None

    def __getattr__(self, name: str) -> object:
        return getattr(self._log, name)


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

    def run(
        self,
        lines: Iterable[bytes],
        default: CommandContext,
        progress: Callable[[ImportReport], None] | None = None,
    ) -> ImportReport:
        report = ImportReport()
        writer = ThreadPoolExecutor(1, "crm-import-append") if self.pipeline else None
        in_flight: tuple[_Decided, Future[int]] | None = None
        # Deciding makes no reference cycles, but millions of short-lived objects: without
        # the collector rescanning them all the import runs a quarter faster. It runs a young
        # collection every few batches instead, and is back on when the import ends.
        collecting = gc.isenabled()
        gc.disable()
        try:
            for number, batch in enumerate(_batches(lines, self.batch_size), start=1):
                if collecting and number % 20 == 0:
                    gc.collect(1)
                flying = in_flight[0] if in_flight else None
                todo = self._parse(batch, default, report, flying.command_ids if flying else set())
                decided = self._decide(todo, flying)
                if in_flight is not None and not self._landed(*in_flight, report):
                    decided = self._decide(todo)  # it was decided on events that never landed
                in_flight = None
                if writer is not None and not decided.rest:
                    in_flight = (decided, writer.submit(self._append, decided.items))
                else:
                    self._finish(decided, report)
                if progress is not None:
                    progress(report)
            if in_flight is not None:
                self._landed(*in_flight, report)
                if progress is not None:
                    progress(report)
        finally:
            if writer is not None:
                writer.shutdown(wait=True)
            if collecting:
                gc.enable()
        return report

    def _parse(
        self,
        batch: Sequence[tuple[int, bytes]],
        default: CommandContext,
        report: ImportReport,
        flying: set[str],
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
        recorded = self.log.recorded_commands(seen)
        report.duplicates += len(recorded)
        return [p for p in parsed if p.ctx.command_id not in recorded]

    def _overlay(self, todo: Sequence[_Parsed], flying: _Decided | None) -> _Overlay:
        """One query for the newer events of every stream the batch names, one for contacts;
        plus the events of the batch still being appended (`flying`), as if they had landed."""
        refs = {ref for p in todo for ref in references_of(p.command)}
        version_of = self.states.version_of
        base = {ref: version_of(ref) for ref in refs}
        contacts = {c for p in todo for c in contacts_of(p.command)}
        owners: dict[tuple[str, str], UUID | None] = {
            (k, normalise_contact(k, v)): None for k, v in contacts
        }
        for (k, v), owner in self.log.contact_owners(contacts).items():
            owners[(k, normalise_contact(k, v))] = owner
        newer = self.log.load_newer(base)
        pending: dict[UUID, list[Envelope]] = {}
        if flying is not None:
            for _, decision in flying.items:
                for e in decision.events:
                    pending.setdefault(e.stream_id, []).append(e)
            for stream_id, known in newer.items():
                head = known[-1].version if known else base[stream_id]
                known.extend(e for e in pending.get(stream_id, ()) if e.version > head)
            for (k, v), owner in flying.owners.items():
                if (k, v) in owners:
                    owners[(k, v)] = owner
        return _Overlay(self.log, newer, base, owners, pending)

    def _decide(self, todo: Sequence[_Parsed], flying: _Decided | None = None) -> _Decided:
        overlay = self._overlay(todo, flying)
        deps = Deps(log=overlay, clock=self.bus.deps.clock, states=self.states)  # type: ignore[arg-type]
        decided: list[tuple[_Parsed, Decision]] = []
        errors: list[LineError] = []
        for i, item in enumerate(todo):
            spec = self.bus.registry.get(item.command.command_name())
            assert spec is not None
            try:
                decision = spec.handler(item.command, item.ctx, deps)
            except (DomainError, CommandRejected) as e:
                errors.append(
                    LineError(item.line, e.code, str(e), getattr(e, "details", {}).get("field"))
                )
                continue
            if decision.forget is not None:  # forgetting deletes a key: flush, then run it alone
                return _Decided(decided, list(todo[i:]), errors, _ids(decided), overlay.claimed)
            overlay.accept(decision)
            decided.append((item, decision))
        return _Decided(decided, [], errors, _ids(decided), overlay.claimed)

    def _landed(self, decided: _Decided, append: Future[int], report: ImportReport) -> bool:
        """Wait for a pipelined append; False if it failed (its commands then ran one by one)."""
        try:
            events = append.result()
        except (AppendConflict, CommandAlreadyRecorded, ContactTakenOnAppend):
            self.states.clear()
            report.errors.extend(decided.errors)
            # Every command of the batch again, those that decided nothing too: the state
            # they were decided on is not the one that landed.
            self._one_by_one([p for p, _ in decided.items], report)
            return False
        except BaseException:
            self.states.clear()
            raise
        report.errors.extend(decided.errors)
        report.appended += sum(1 for _, d in decided.items if d.events)
        report.events += events
        return True

    def _finish(self, decided: _Decided, report: ImportReport) -> None:
        """Append a decided batch here and now, then run what must run one by one."""
        self._landed(decided, _done(self._append, decided.items), report)
        if decided.rest:
            self.states.clear()
            self._one_by_one(decided.rest, report)

    def _append(self, decided: list[tuple[_Parsed, Decision]]) -> int:
        with_events = [(p, d) for p, d in decided if d.events]
        if not with_events:
            return 0
        positions = self.log.append_commands(
            [(p.ctx.command_id or "", p.command.command_name(), d.events) for p, d in with_events],
            claims=[c for _, d in with_events for c in d.claims],
            releases=[c for _, d in with_events for c in d.releases],
        )
        return len(positions)

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


def _done(fn: Callable[[list[tuple[_Parsed, Decision]]], int], arg: list) -> Future[int]:  # type: ignore[type-arg]
    """Run `fn(arg)` now, its outcome (value or exception) held in a completed future."""
    future: Future[int] = Future()
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
