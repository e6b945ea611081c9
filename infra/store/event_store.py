"""The event store the rest of the engine talks to: append, read a stream, read the log.

It wraps one backend (PostgreSQL or SQLite recorders) and the codec. Appends go through the
library's standard path, or, for imports and the demo, through the bulk path (COPY on
PostgreSQL, one executemany per batch on SQLite); both keep commit order = position order.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Protocol
from uuid import UUID

from eventsourcing.persistence import IntegrityError, StoredEvent

from domain.envelope import Envelope
from infra.codec import EventCodec, LogRow
from infra.crypto import BlindIndex, KeyRing, KeyVault
from infra.errors import InfraError


class StoreError(InfraError):
    code = "store_error"


class StreamVersionConflict(StoreError):
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


class ContactIndex(Protocol):
    """Unique contacts by keyed hash: one owner per (kind, digest)."""

    def claim(self, kind: str, digest: bytes, customer_id: UUID) -> UUID: ...

    def owner(self, kind: str, digest: bytes) -> UUID | None: ...

    def release(
        self, customer_id: UUID, kind: str | None = None, digest: bytes | None = None
    ) -> None: ...


class LogRecorder(Protocol):
    """What the store needs of a backend's recorder (eventsourcing's, extended)."""

    def insert_events(self, stored_events: Sequence[StoredEvent]) -> Sequence[int] | None: ...

    def select_log(
        self, after: int, limit: int, topics: Sequence[str] = (), stop: int | None = None
    ) -> list[LogRow]: ...

    def select_stream(self, stream_id: UUID, after_version: int = 0) -> list[LogRow]: ...

    def stream_heads(self, stream_ids: Sequence[UUID]) -> dict[UUID, int]: ...

    def max_notification_id(self) -> int | None: ...


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

    def read_rows(
        self, after: int = 0, limit: int = 1000, types: Sequence[str] = (), stop: int | None = None
    ) -> list[LogRow]:
        return self.backend.standard.select_log(after, limit, types, stop)

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

    def head(self) -> int:
        return self.backend.standard.max_notification_id() or 0

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

    def release_contact(self, kind: str, value: str, customer_id: UUID) -> None:
        self.backend.contacts.release(customer_id, kind, self.blind_index.digest(kind, value))

    def close(self) -> None:
        self.backend.close()
