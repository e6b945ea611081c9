"""The event log as a batch of commands sees it: streams read once, the batch's own events on top.

Both the importer and the NATS group committer decide many commands at once: every stream the
batch names is read in one query (only what is newer than the customer states already held),
the contacts it registers are looked up in one query, and each decision is accepted into the
overlay so the next command of the batch sees it.
"""

from __future__ import annotations

import functools
import operator
from collections.abc import Callable, Iterable, Mapping
from typing import Any
from uuid import UUID

from domain.commands import Command
from domain.customers.contacts import normalise_contact
from domain.envelope import Envelope
from domain.pipeline.state import pipeline_stream_id
from domain.products.state import product_stream_id
from handlers.decision import Decision
from handlers.ports import BatchLog
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


class Overlay:
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
        newer: dict[int, list[Envelope]],
        base: dict[int, int],
        owners: dict[tuple[str, str], UUID | None],
        flying: dict[int, list[Envelope]],
        *,
        held: Mapping[UUID, Any] | None = None,
        track_reads: bool = True,
    ) -> None:
        # Streams are keyed by their id's integer: a UUID hashes and compares in Python, and
        # a batch looks its streams up a dozen times per command.
        self._log = log
        self._held = held  # trusted states (by stream): a stream in it is held at its version
        self._streams = newer
        self._base = base
        self._owners = owners
        self._flying = flying
        self._track = track_reads
        self.claimed: dict[tuple[str, str], UUID | None] = {}  # what the batch claimed/released
        self.reads: set[UUID] = set()  # the streams read since the caller last cleared it
        self.recorded: set[str] = set()  # the command ids asked about that are recorded
        self.extended: set[UUID] = set()  # streams that existed and got events from the batch

    def _known(self, stream_id: UUID, key: int) -> list[Envelope] | None:
        """The events held after the stream's base, or None for a stream not held. A stream
        with a base and no list yet (a held state with nothing newer in the log) gets its list
        on first use: the events still in flight after its base."""
        known = self._streams.get(key)
        if known is None:
            base = self._base.get(key)
            if base is None:
                state = self._held.get(stream_id) if self._held is not None else None
                if state is None:
                    return None
                base = self._base[key] = state.version
            flying = self._flying.get(key) if self._flying else None
            known = self._streams[key] = [e for e in flying if e.version > base] if flying else []
        return known

    def _hold(self, stream_ids: Iterable[UUID]) -> None:
        """Read the streams not held yet, in one query, and hold them whole."""
        missing = [i for i in dict.fromkeys(stream_ids) if self._known(i, i.int) is None]
        if not missing:
            return
        found = self._log.load_many(missing)
        for stream_id in missing:
            key = stream_id.int
            events = list(found.get(stream_id, ()))
            head = events[-1].version if events else 0
            events.extend(e for e in self._flying.get(key, ()) if e.version > head)
            self._streams[key] = events
            self._base[key] = 0

    def read_stream(self, stream_id: UUID, after_version: int = 0) -> list[Envelope]:
        if self._track:
            self.reads.add(stream_id)
        key = stream_id.int
        known = self._known(stream_id, key)
        if known is None:
            self._hold([stream_id])
            known = self._streams[key]
        base = self._base[key]
        if after_version >= base:
            return known[after_version - base :]
        older = [e for e in self._log.read_stream(stream_id, after_version) if e.version <= base]
        head = older[-1].version if older else after_version  # the rest may still be in flight
        older.extend(e for e in self._flying.get(key, ()) if head < e.version <= base)
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
            key = e.stream_id.int
            known = self._known(e.stream_id, key)
            if known is None:
                if e.version == 1:  # a new stream (else the append would conflict)
                    known = self._streams[key] = []
                    self._base[key] = 0
                else:
                    self._hold([e.stream_id])
                    known = self._streams[key]
                    self.extended.add(e.stream_id)
            else:
                self.extended.add(e.stream_id)
            known.append(e)
        for c in decision.claims:
            key = (c.kind, normalise_contact(c.kind, c.value))
            self._owners[key] = self.claimed[key] = c.customer_id
        for c in decision.releases:
            key = (c.kind, normalise_contact(c.kind, c.value))
            self._owners[key] = self.claimed[key] = None

    def __getattr__(self, name: str) -> object:
        return getattr(self._log, name)


def overlay_for(
    log: BatchLog,
    states: CustomerStates,
    commands: Iterable[Command],
    pending: dict[int, list[Envelope]] | None = None,
    pending_owners: dict[tuple[str, str], UUID | None] | None = None,
    *,
    also: Iterable[UUID] = (),
    command_ids: Iterable[str] = (),
    watch: bool = False,
) -> Overlay:
    """One round trip for the newer events of every stream the commands name, the owners of
    the contacts they name and which of `command_ids` are recorded (`overlay.recorded`);
    plus events still being appended (`pending`, by the stream id's integer), as if they had
    landed. `also` names more streams to read at once (the ids new customers will get).

    With `watch` (a single writer: the importer), the held states are not read one by one:
    the same round trip reads what landed in the log since `states.watermark` outside the
    writer's own appends, and only the states it is newer than are read again."""
    commands = list(commands)
    refs = {ref for c in commands for ref in references_of(c)}
    refs.update(also)
    trusted = watch and states.watermark is not None
    if trusted:  # a stream not held is read whole
        after = dict.fromkeys(refs.difference(states.held()), 0)
    else:
        version_of = states.version_of
        after = {ref: version_of(ref) for ref in refs}
    contacts = {c for command in commands for c in contacts_of(command)}
    owners: dict[tuple[str, str], UUID | None] = {
        (k, normalise_contact(k, v)): None for k, v in contacts
    }
    reads = log.batch_reads(command_ids, after, contacts, states.gaps() if watch else None)
    for (k, v), owner in reads.owners.items():
        owners[(k, normalise_contact(k, v))] = owner
    newer = reads.newer
    base = after
    if trusted:
        assert reads.head is not None
        dropped = [r for r in states.caught_up(reads.head, reads.changed) if r in refs]
        if dropped:  # changed by another writer since the watermark: read whole (rare)
            newer.update(log.load_newer(dict.fromkeys(dropped, 0)))
        # the held streams get their base and (empty) list when first read (Overlay._known)
        base.update(dict.fromkeys(dropped, 0))
    elif watch and reads.head is not None:
        states.watch_from(reads.head, refs)
    streams = {k.int: v for k, v in newer.items()}
    bases = {k.int: v for k, v in base.items()}
    pending = pending or {}
    if pending:
        for key, known in streams.items():
            head = known[-1].version if known else bases[key]
            known.extend(e for e in pending.get(key, ()) if e.version > head)
    for contact, owner in (pending_owners or {}).items():
        if contact in owners:
            owners[contact] = owner
    overlay = Overlay(
        log,
        streams,
        bases,
        owners,
        pending,
        held=states.held() if trusted else None,
        track_reads=not watch,  # a group commit asks which streams each command read
    )
    overlay.recorded = reads.recorded
    return overlay
