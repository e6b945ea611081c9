"""The event store the rest of the engine talks to: append, read a stream, read the log.

It wraps one backend (PostgreSQL or SQLite recorders) and the codec. Appends go through the
library's standard path, or, for imports and the demo, through the bulk path (COPY on
PostgreSQL, one executemany per batch on SQLite); both keep commit order = position order.
A group commit (`append_group`) appends many decided commands in one transaction, each one
checked on its own under the append lock, so one stale command fails alone.
"""

from __future__ import annotations

from collections.abc import Callable, Container, Iterable, Iterator, Mapping, Sequence
from datetime import datetime
from typing import NamedTuple, Protocol
from uuid import UUID

import msgspec
from eventsourcing.persistence import IntegrityError, StoredEvent

from domain.envelope import Envelope
from handlers.ports import (
    AppendConflict,
    BatchReads,
    CommandAlreadyRecorded,
    CommandResult,
    ContactClaim,
    ContactTakenOnAppend,
    GroupItem,
    GroupOutcome,
    StreamVersion,
)
from infra.codec import EventCodec, LogRow, StoredRow
from infra.crypto import BlindIndex, KeyRing, KeyVault
from infra.errors import InfraError

_streams_codec = msgspec.msgpack.Encoder()
_streams_decoder = msgspec.msgpack.Decoder(list[tuple[bytes, int, int]])
_GROUP_ATTEMPTS = 3


def stream_ranges(events: Sequence[Envelope]) -> list[tuple[UUID, int, int]]:
    """(stream, first version, last version) of each stream a batch of events touches."""
    ranges: dict[UUID, list[int]] = {}
    for e in events:
        lo_hi = ranges.setdefault(e.stream_id, [e.version, e.version])
        lo_hi[0], lo_hi[1] = min(lo_hi[0], e.version), max(lo_hi[1], e.version)
    return [(k, lo, hi) for k, (lo, hi) in ranges.items()]


def command_row(command_id: str, name: str, events: Sequence[Envelope]) -> tuple[str, str, bytes]:
    """The command record committed with its events: enough to answer a repeat exactly."""
    if len(events) == 1:  # most commands, every interaction
        e = events[0]
        return (
            command_id,
            name,
            _streams_codec.encode([(e.stream_id.bytes, e.version, e.version)]),
        )
    blob = _streams_codec.encode([(sid.bytes, lo, hi) for sid, lo, hi in stream_ranges(events)])
    return (command_id, name, blob)


class StoreError(InfraError):
    code = "store_error"


class StreamVersionConflict(StoreError, AppendConflict):
    """Another writer appended to the stream first: reload and decide again."""

    code = "stream_version_conflict"

    def __init__(self, stream_id: UUID | None, expected_after: int | None, detail: str) -> None:
        where = f"stream {stream_id} already has version {expected_after}" if stream_id else detail
        super().__init__(f"version conflict: {where}")
        self.stream_id = stream_id
        self.detail = detail


class ContactTaken(StoreError):
    """The e-mail or phone already belongs to another customer."""

    code = "contact_taken"

    def __init__(self, kind: str, owner: UUID) -> None:
        super().__init__(f"this {kind} already belongs to customer {owner}")
        self.kind = kind
        self.owner = owner


ContactKey = tuple[str, bytes]
ContactRow = tuple[str, bytes, UUID]
Refusal = AppendConflict | CommandAlreadyRecorded | ContactTakenOnAppend


class PreparedAppend(NamedTuple):
    """A batch of commands encoded for `EventStore.append_prepared`."""

    stored: list[StoredRow]
    commands: list[tuple[str, str, bytes]]
    claims: Sequence[ContactClaim]
    releases: Sequence[ContactClaim]


class Changes(NamedTuple):
    """The log's head, and the (stream, version) of the events in the gaps asked about."""

    head: int
    events: list[tuple[UUID, int]]


class GroupState(NamedTuple):
    """What a group commit reads under the append lock, in one round of set-based queries."""

    heads: dict[UUID, int]
    recorded: set[str]
    owners: dict[ContactKey, UUID]


class GroupWrites(NamedTuple):
    """What a group commit writes in the same transaction; releases go before claims so a
    contact released by one item can be claimed by a later one."""

    events: list[StoredRow]
    commands: list[tuple[str, str, bytes]]
    releases: list[ContactRow]
    claims: list[ContactRow]


class _Member(NamedTuple):
    """An item of the group with events, prepared outside the lock (encoded, hashed)."""

    index: int
    command_id: str | None
    command: tuple[str, str, bytes] | None
    stored: list[StoredRow]
    spans: dict[UUID, tuple[int, int, bool]]  # stream -> first, last, versions run +1 each
    claims: dict[ContactKey, UUID]
    releases: list[ContactRow]
    depends_on: tuple[int, ...] = ()  # items it was decided on: it lands only if they do


class _Plan(NamedTuple):
    refusals: list[Refusal | None]  # per member
    writes: GroupWrites


def _spans(events: Sequence[Envelope]) -> dict[UUID, tuple[int, int, bool]]:
    spans: dict[UUID, tuple[int, int, bool]] = {}
    for e in events:
        if (span := spans.get(e.stream_id)) is None:
            spans[e.stream_id] = (e.version, e.version, True)
        else:
            spans[e.stream_id] = (span[0], e.version, span[2] and e.version == span[1] + 1)
    return spans


def _refusal(
    m: _Member, heads: dict[UUID, int], recorded: set[str], owners: dict[ContactKey, UUID]
) -> Refusal | None:
    if m.command_id and m.command_id in recorded:
        return CommandAlreadyRecorded(f"command {m.command_id} was recorded before")
    for stream_id, (first, last, contiguous) in m.spans.items():
        head = heads.get(stream_id, 0)
        if not contiguous:
            return StreamVersionConflict(
                stream_id, head, f"versions up to {last} of stream {stream_id} skip or repeat"
            )
        if first != head + 1:
            return StreamVersionConflict(
                stream_id, head, f"stream {stream_id} is at {head}, the command wrote {first}"
            )
    for key, customer_id in m.claims.items():
        owner = owners.get(key)
        if owner is not None and owner != customer_id:
            return ContactTakenOnAppend(key[0], owner)
    return None


def plan_group(members: Sequence[_Member], state: GroupState) -> _Plan:
    """Check the members in order against the state read under the lock, counting what the
    accepted ones before them write: pure, so a retried transaction plans again from scratch."""
    heads, recorded, owners = dict(state.heads), set(state.recorded), dict(state.owners)
    refusals: list[Refusal | None] = []
    events: list[StoredRow] = []
    commands: list[tuple[str, str, bytes]] = []
    touched: dict[ContactKey, None] = {}
    accepted: set[int] = set()
    for m in members:
        refusal = _refusal(m, heads, recorded, owners)
        if refusal is None and any(d not in accepted for d in m.depends_on):
            refusal = StreamVersionConflict(
                None, None, "it was decided on an earlier command of the group that was refused"
            )
        refusals.append(refusal)
        if refusal is not None:
            continue
        accepted.add(m.index)
        events.extend(m.stored)
        for stream_id, (_, last, _) in m.spans.items():
            heads[stream_id] = last
        if m.command is not None:
            recorded.add(m.command[0])
            commands.append(m.command)
        for key, customer_id in m.claims.items():
            owners.setdefault(key, customer_id)
            touched[key] = None
        for kind, digest, customer_id in m.releases:
            if owners.get((kind, digest)) == customer_id:
                del owners[(kind, digest)]
            touched[(kind, digest)] = None
    before = state.owners
    releases = [
        (k, d, before[(k, d)])
        for k, d in touched
        if (k, d) in before and owners.get((k, d)) != before[(k, d)]
    ]
    claims = [
        (k, d, owners[(k, d)])
        for k, d in touched
        if (k, d) in owners and owners[(k, d)] != before.get((k, d))
    ]
    return _Plan(refusals, GroupWrites(events, commands, releases, claims))


class ContactIndex(Protocol):
    """Unique contacts by keyed hash: one owner per (kind, digest)."""

    def claim(self, kind: str, digest: bytes, customer_id: UUID) -> UUID: ...

    def owner(self, kind: str, digest: bytes) -> UUID | None: ...

    def owners(self, keys: Sequence[tuple[str, bytes]]) -> dict[tuple[str, bytes], UUID]: ...

    def release(
        self, customer_id: UUID, kind: str | None = None, digest: bytes | None = None
    ) -> None: ...


class LogRecorder(Protocol):
    """What the store needs of a backend's recorder (eventsourcing's, extended)."""

    def insert_events(
        self, stored_events: Sequence[StoredEvent], **kwargs: object
    ) -> Sequence[int] | None: ...

    def select_log(
        self, after: int, limit: int, topics: Sequence[str] = (), stop: int | None = None
    ) -> list[LogRow]: ...

    def select_stream(self, stream_id: UUID, after_version: int = 0) -> list[LogRow]: ...

    def select_streams(self, stream_ids: Sequence[UUID]) -> list[LogRow]: ...

    def select_streams_after(self, after: Sequence[tuple[UUID, int]]) -> list[LogRow]: ...

    def select_customer(self, customer_id: UUID, after: int, limit: int) -> list[LogRow]: ...

    def select_command(self, command_id: str) -> tuple[str, bytes] | None: ...

    def select_recorded_commands(self, command_ids: Sequence[str]) -> set[str]: ...

    def select_batch_reads(
        self,
        command_ids: Sequence[str],
        after: Sequence[tuple[UUID, int]],
        contact_keys: Sequence[tuple[str, bytes]],
        gaps: Sequence[tuple[int, int]] | None = None,
    ) -> tuple[set[str], list[LogRow], dict[tuple[str, bytes], UUID], Changes | None]: ...

    def positions_of(self, ranges: Sequence[tuple[UUID, int, int]]) -> list[int]: ...

    def stream_heads(self, stream_ids: Sequence[UUID]) -> dict[UUID, int]: ...

    def max_notification_id(self) -> int | None: ...

    def select_command_names(self, command_ids: Sequence[str]) -> dict[str, str]: ...

    def select_position_recorded_by(self, at: datetime) -> int: ...

    def select_recorded_at(self, position: int) -> datetime | None: ...

    def insert_command_group(
        self,
        stream_ids: Sequence[UUID],
        command_ids: Sequence[str],
        contact_keys: Sequence[tuple[str, bytes]],
        plan: Callable[[GroupState], GroupWrites],
    ) -> list[int]: ...


class Backend(Protocol):
    name: str
    standard: LogRecorder
    bulk: LogRecorder
    vault: KeyVault
    contacts: ContactIndex

    def close(self) -> None: ...


class EventStore:
    def __init__(
        self, backend: Backend, codec: EventCodec, keyring: KeyRing, blind_index: BlindIndex
    ) -> None:
        self.backend = backend
        self.codec = codec
        self.keyring = keyring
        self.blind_index = blind_index

    # -- append ---------------------------------------------------------------------------

    def append(self, events: Sequence[Envelope], *, bulk: bool = False) -> list[int]:
        """Append events atomically; returns their positions. A taken version is a conflict."""
        return self.append_stored(self.codec.encode_many(events), bulk=bulk)

    def append_stored(self, stored: Sequence[StoredEvent], *, bulk: bool = False) -> list[int]:
        """Append already-encoded events (the import and bench paths)."""
        if not stored:
            return []
        recorder = self.backend.bulk if bulk else self.backend.standard
        try:
            ids = recorder.insert_events(stored)
        except IntegrityError as e:
            raise self._conflict(stored, str(e)) from None
        assert ids is not None
        return list(ids)

    def append_command(
        self,
        events: Sequence[Envelope],
        *,
        command_id: str | None,
        command_name: str,
        claims: Sequence[ContactClaim] = (),
        releases: Sequence[ContactClaim] = (),
        bulk: bool = False,
    ) -> list[int]:
        """Events, command record and contact claims in one transaction (the EventLog port)."""
        commands = [command_row(command_id, command_name, events)] if command_id else []
        return self.append_batch(
            events, commands=commands, claims=claims, releases=releases, bulk=bulk
        )

    def append_commands(
        self,
        batch: Sequence[tuple[str, str, Sequence[Envelope]]],
        *,
        claims: Sequence[ContactClaim] = (),
        releases: Sequence[ContactClaim] = (),
    ) -> list[int]:
        """The import path: many commands and their records in one bulk transaction."""
        return self.append_prepared(self.prepare_commands(batch, claims=claims, releases=releases))

    def prepare_commands(
        self,
        batch: Sequence[tuple[str, str, Sequence[Envelope]]],
        *,
        claims: Sequence[ContactClaim] = (),
        releases: Sequence[ContactClaim] = (),
    ) -> PreparedAppend:
        """`append_commands` in two steps: the events encoded (and sealed) and the command
        records made here, the append by `append_prepared`: an importer encodes one batch
        while the previous one is being written. The data keys of new customers are made
        here (kept even if the append then fails, as any key made for a command that fails)."""
        events = [e for _, _, evs in batch for e in evs]
        commands = [command_row(cid, name, evs) for cid, name, evs in batch]
        return PreparedAppend(self.codec.encode_many(events), commands, claims, releases)

    def append_prepared(self, prepared: PreparedAppend) -> list[int]:
        """Append what `prepare_commands` made, in one bulk transaction, all or nothing."""
        stored, commands, claims, releases = prepared
        return self._append_stored(stored, commands, claims, releases, bulk=True)

    def append_batch(
        self,
        events: Sequence[Envelope],
        *,
        commands: Sequence[tuple[str, str, bytes]] = (),
        claims: Sequence[ContactClaim] = (),
        releases: Sequence[ContactClaim] = (),
        bulk: bool = False,
    ) -> list[int]:
        """Many commands' events and records at once (import). Raises CommandAlreadyRecorded,
        ContactTakenOnAppend or StreamVersionConflict; then nothing was appended."""
        stored = self.codec.encode_many(events)
        return self._append_stored(stored, commands, claims, releases, bulk=bulk)

    def _append_stored(
        self,
        stored: Sequence[StoredRow],
        commands: Sequence[tuple[str, str, bytes]],
        claims: Sequence[ContactClaim],
        releases: Sequence[ContactClaim],
        *,
        bulk: bool,
    ) -> list[int]:
        claim_rows = self._new_claims(claims)
        release_rows = [
            (r.kind, self.blind_index.digest(r.kind, r.value), r.customer_id) for r in releases
        ]
        recorder = self.backend.bulk if bulk else self.backend.standard
        try:
            ids = recorder.insert_events(
                stored, commands=list(commands), claims=claim_rows, releases=release_rows
            )
        except IntegrityError as e:
            if commands and self.backend.standard.select_recorded_commands(
                [c[0] for c in commands]
            ):
                raise CommandAlreadyRecorded(str(e)) from None
            self._new_claims(claims)  # raises ContactTakenOnAppend if another customer won
            raise self._conflict(stored, str(e)) from None
        assert ids is not None
        return list(ids)

    def append_group(self, items: Sequence[GroupItem]) -> list[GroupOutcome]:
        """Many decided commands in one transaction (one lock, one commit), each checked on its
        own under the lock: a stale version, a repeated command_id or a taken contact refuses
        only its item (the GroupLog port). Encoding happens first, outside the lock; an
        encoding error (a forgotten customer's personal field) fails the whole call.

        A dropped connection re-runs the transaction (the recorder's retry): items that did
        commit then read as CommandAlreadyRecorded, or, without a command_id, as a conflict;
        the (stream, version) key means no event is ever written twice."""
        members = self._members(items)
        if not members:
            return [[] for _ in items]
        stream_ids = list(dict.fromkeys(sid for m in members for sid in m.spans))
        command_ids = list(dict.fromkeys(m.command_id for m in members if m.command_id))
        keys = list(
            dict.fromkeys(
                [k for m in members for k in m.claims]
                + [(k, d) for m in members for k, d, _ in m.releases]
            )
        )
        planned: list[_Plan] = []

        def plan(state: GroupState) -> GroupWrites:
            planned[:] = [plan_group(members, state)]
            return planned[0].writes

        recorder = self.backend.standard
        for attempt in range(_GROUP_ATTEMPTS):
            try:
                positions = recorder.insert_command_group(stream_ids, command_ids, keys, plan)
                break
            except IntegrityError as e:
                # Only a contact claimed outside the append lock (claim_contact) can collide:
                # plan again, now seeing its owner.
                if attempt == _GROUP_ATTEMPTS - 1:
                    raise StoreError(f"group commit kept colliding: {e}") from None
        outcomes: list[GroupOutcome] = [[] for _ in items]
        at = 0
        for m, refusal in zip(members, planned[0].refusals, strict=True):
            if refusal is not None:
                outcomes[m.index] = refusal
            else:
                outcomes[m.index] = positions[at : at + len(m.stored)]
                at += len(m.stored)
        return outcomes

    def _members(self, items: Sequence[GroupItem]) -> list[_Member]:
        """The items with events, encoded in one batch and their contacts hashed."""
        live = [(i, item) for i, item in enumerate(items) if item.events]
        stored = self.codec.encode_many([e for _, item in live for e in item.events])
        digest = self.blind_index.digest
        members: list[_Member] = []
        at = 0
        for i, item in live:
            n = len(item.events)
            cid = item.command_id
            members.append(
                _Member(
                    index=i,
                    command_id=cid,
                    command=command_row(cid, item.command_name, item.events) if cid else None,
                    stored=stored[at : at + n],
                    spans=_spans(item.events),
                    claims={(c.kind, digest(c.kind, c.value)): c.customer_id for c in item.claims},
                    releases=[
                        (r.kind, digest(r.kind, r.value), r.customer_id) for r in item.releases
                    ],
                    depends_on=item.depends_on,
                )
            )
            at += n
        return members

    def _new_claims(self, claims: Sequence[ContactClaim]) -> list[tuple[str, bytes, UUID]]:
        """Claims not yet held by their customer; ContactTakenOnAppend if another holds one."""
        if not claims:
            return []
        rows = {(c.kind, self.blind_index.digest(c.kind, c.value)): c.customer_id for c in claims}
        owners = self.backend.contacts.owners(list(rows))
        for key, customer_id in rows.items():
            owner = owners.get(key)
            if owner is not None and owner != customer_id:
                raise ContactTakenOnAppend(key[0], owner)
        return [(k, d, c) for (k, d), c in rows.items() if (k, d) not in owners]

    def find_command(self, command_id: str) -> CommandResult | None:
        found = self.backend.standard.select_command(command_id)
        if found is None:
            return None
        ranges = [(UUID(bytes=sid), lo, hi) for sid, lo, hi in _streams_decoder.decode(found[1])]
        return CommandResult(
            streams=[StreamVersion(sid, hi) for sid, _, hi in ranges],
            positions=self.backend.standard.positions_of(ranges),
        )

    def recorded_commands(self, command_ids: Iterable[str]) -> set[str]:
        return self.backend.standard.select_recorded_commands(list(command_ids))

    def _conflict(self, stored: Sequence[StoredEvent], detail: str) -> StreamVersionConflict:
        firsts: dict[UUID, int] = {}
        for s in stored:
            firsts.setdefault(s.originator_id, s.originator_version)  # type: ignore[arg-type]
        heads = self.backend.standard.stream_heads(list(firsts))
        for stream_id, first in firsts.items():
            head = heads.get(stream_id, 0)
            if head >= first:
                return StreamVersionConflict(stream_id, head, detail)
        return StreamVersionConflict(None, None, detail)

    # -- read -----------------------------------------------------------------------------

    def read_stream(self, stream_id: UUID, after_version: int = 0) -> list[Envelope]:
        return self.codec.decode_many(self.backend.standard.select_stream(stream_id, after_version))

    def load(self, stream_id: UUID) -> list[Envelope]:
        return self.read_stream(stream_id)

    def load_many(self, stream_ids: Iterable[UUID]) -> dict[UUID, list[Envelope]]:
        """Many streams in one query (import loads every customer of a batch at once)."""
        ids = list(set(stream_ids))
        found: dict[UUID, list[Envelope]] = {i: [] for i in ids}
        for e in self.codec.decode_many(self.backend.standard.select_streams(ids)) if ids else ():
            found[e.stream_id].append(e)
        return found

    def load_newer(self, after: Mapping[UUID, int]) -> dict[UUID, list[Envelope]]:
        """Many streams' events newer than a version each, in one query (every stream asked
        for is a key, with [] when nothing is newer): what an import batch needs beyond the
        states it already holds."""
        found: dict[UUID, list[Envelope]] = {i: [] for i in after}
        if after:
            rows = self.backend.standard.select_streams_after(list(after.items()))
            for e in self.codec.decode_many(rows):
                found[e.stream_id].append(e)
        return found

    def batch_reads(
        self,
        command_ids: Iterable[str],
        after: Mapping[UUID, int],
        contacts: Iterable[tuple[str, str]],
        gaps: Sequence[tuple[int, int]] | None = None,
    ) -> BatchReads:
        """What a batch of commands reads before it is decided, at once: which of them are
        recorded, each stream's events newer than a version (every stream a key), the owners
        of the contacts they name (free ones left out); given `gaps` (open intervals of
        positions), the log's head and the (stream, version) of each event in them at or
        below it (`head`, `changed`)."""
        keys = {(k, self.blind_index.digest(k, v)): (k, v) for k, v in contacts}
        recorded, rows, owners, changes = self.backend.standard.select_batch_reads(
            list(command_ids), list(after.items()), list(keys), gaps
        )
        newer: dict[UUID, list[Envelope]] = {i: [] for i in after}
        for e in self.codec.decode_many(rows):
            newer[e.stream_id].append(e)
        return BatchReads(
            recorded,
            newer,
            {keys[key]: owner for key, owner in owners.items()},
            changes.head if changes else None,
            changes.events if changes else [],
        )

    def read_rows(
        self, after: int = 0, limit: int = 1000, types: Sequence[str] = (), stop: int | None = None
    ) -> list[LogRow]:
        return self.backend.standard.select_log(after, limit, types, stop)

    def decode_rows(
        self, rows: Sequence[LogRow], unseal: Container[str] | None = None
    ) -> list[Envelope]:
        """Decode a page of rows read with `read_rows` (the projections' log port); personal
        fields opened only for the `unseal` types (None: all)."""
        return self.codec.decode_many(rows, unseal)

    def read(
        self, after: int = 0, limit: int = 1000, types: Sequence[str] = (), stop: int | None = None
    ) -> list[Envelope]:
        return self.codec.decode_many(self.read_rows(after, limit, types, stop))

    def iter_all(
        self, after: int = 0, page: int = 5000, types: Sequence[str] = (), stop: int | None = None
    ) -> Iterator[Envelope]:
        """Every event after `after`, page by page (positions have gaps: never assume +1)."""
        while True:
            rows = self.read_rows(after, page, types, stop)
            if not rows:
                return
            yield from self.codec.decode_many(rows)
            after = rows[-1].position

    def read_customer(
        self, customer_id: UUID, after: int = 0, limit: int = 10_000
    ) -> list[Envelope]:
        """Every event about a customer in log order, across all its streams (audit, timeline)."""
        return self.codec.decode_many(
            self.backend.standard.select_customer(customer_id, after, limit)
        )

    def head(self) -> int:
        return self.backend.standard.max_notification_id() or 0

    # -- record time (audit, --recorded-as-of) --------------------------------------------

    def command_names(self, command_ids: Iterable[str]) -> dict[str, str]:
        """The recorded name of each of these commands (ids never recorded are left out)."""
        ids = list(dict.fromkeys(i for i in command_ids if i))
        return self.backend.standard.select_command_names(ids) if ids else {}

    def position_recorded_by(self, at: datetime) -> int:
        """The last position whose record time is at or before `at` (0: none): what the log
        held at that moment, since record time is taken under the append lock."""
        return self.backend.standard.select_position_recorded_by(at)

    def recorded_at(self, position: int) -> datetime | None:
        """The record time of the last event at or before `position` (None: the log was
        empty then); positions have gaps, so `position` itself may hold no event."""
        return self.backend.standard.select_recorded_at(position)

    # -- privacy --------------------------------------------------------------------------

    def forget_keys(self, customer_id: UUID) -> None:
        """Delete the customer's data key and contact hashes: their personal fields read as
        forgotten from now on, and their e-mail and phone can be registered again."""
        self.keyring.forget(customer_id)
        self.backend.contacts.release(customer_id)

    def claim_contact(self, kind: str, value: str, customer_id: UUID) -> None:
        """Reserve an e-mail or phone for one customer; ContactTaken if another has it."""
        owner = self.backend.contacts.claim(kind, self.blind_index.digest(kind, value), customer_id)
        if owner != customer_id:
            raise ContactTaken(kind, owner)

    def contact_owner(self, kind: str, value: str) -> UUID | None:
        """Who has this e-mail or phone (looked up by keyed hash)."""
        return self.backend.contacts.owner(kind, self.blind_index.digest(kind, value))

    def contact_owners(self, contacts: Iterable[tuple[str, str]]) -> dict[tuple[str, str], UUID]:
        """Owners of many (kind, value) contacts in one lookup; free ones are left out."""
        keys = {(k, self.blind_index.digest(k, v)): (k, v) for k, v in contacts}
        owners = self.backend.contacts.owners(list(keys))
        return {keys[key]: owner for key, owner in owners.items()}

    def release_contact(self, kind: str, value: str, customer_id: UUID) -> None:
        self.backend.contacts.release(customer_id, kind, self.blind_index.digest(kind, value))

    def close(self) -> None:
        self.backend.close()
