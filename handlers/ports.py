"""What the handlers need from the outside world, as small Protocols (infra implements them)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any, NamedTuple, Protocol
from uuid import UUID

import msgspec

from domain.envelope import Envelope


class StreamVersion(msgspec.Struct, frozen=True):
    id: UUID
    version: int


class CommandResult(msgspec.Struct, frozen=True, kw_only=True):
    """What a command did: the streams it appended to (with their new versions) and positions.

    `positions` lets a client wait for read-your-writes (`min_position` on queries)."""

    streams: list[StreamVersion] = []
    positions: list[int] = []


class ContactClaim(msgspec.Struct, frozen=True):
    """Reserve (or release) an e-mail or phone for a customer, atomically with the events."""

    kind: str
    value: str
    customer_id: UUID


class AppendConflict(Exception):
    """Another writer took a stream version first: load again and decide again."""


class CommandAlreadyRecorded(Exception):
    """This command_id was committed before (a retry, or a re-run after a dropped connection)."""


class ContactTakenOnAppend(Exception):
    """A contact claimed in this append belongs to another customer."""

    def __init__(self, kind: str, owner: UUID) -> None:
        super().__init__(f"this {kind} already belongs to customer {owner}")
        self.kind = kind
        self.owner = owner


class EventLog(Protocol):
    def load(self, stream_id: UUID) -> list[Envelope]: ...

    def read_stream(self, stream_id: UUID, after_version: int = 0) -> list[Envelope]: ...

    def load_many(self, stream_ids: Iterable[UUID]) -> dict[UUID, list[Envelope]]: ...

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
        """Append events, the command record and contact claims in one transaction.

        Raises AppendConflict, CommandAlreadyRecorded or ContactTakenOnAppend."""
        ...

    def find_command(self, command_id: str) -> CommandResult | None: ...

    def recorded_commands(self, command_ids: Iterable[str]) -> set[str]: ...

    def contact_owner(self, kind: str, value: str) -> UUID | None: ...

    def forget_keys(self, customer_id: UUID) -> None: ...


class BatchReads(NamedTuple):
    """What a batch of commands reads before it is decided (see BatchLog.batch_reads)."""

    recorded: set[str]
    newer: dict[UUID, list[Envelope]]
    owners: dict[tuple[str, str], UUID]
    head: int | None = None  # the log's head, when asked about gaps
    changed: list[tuple[UUID, int]] = []  # (stream, version) of each event in the gaps


class BatchLog(EventLog, Protocol):
    def append_commands(
        self,
        batch: Sequence[tuple[str, str, Sequence[Envelope]]],
        *,
        claims: Sequence[ContactClaim] = (),
        releases: Sequence[ContactClaim] = (),
    ) -> list[int]:
        """Many (command_id, name, events) in one bulk transaction, all or nothing."""
        ...

    def prepare_commands(
        self,
        batch: Sequence[tuple[str, str, Sequence[Envelope]]],
        *,
        claims: Sequence[ContactClaim] = (),
        releases: Sequence[ContactClaim] = (),
    ) -> Any:
        """`append_commands` in two steps, the first: encode (no append); the result is
        opaque, for `append_prepared`."""
        ...

    def append_prepared(self, prepared: Any) -> list[int]:
        """The second step: append a prepared batch, all or nothing."""
        ...

    def load_newer(self, after: Mapping[UUID, int]) -> dict[UUID, list[Envelope]]:
        """Each stream's events newer than the version given for it, in one query."""
        ...

    def contact_owners(self, contacts: Iterable[tuple[str, str]]) -> dict[tuple[str, str], UUID]:
        """Owners of many (kind, value) contacts at once; free ones are left out."""
        ...

    def batch_reads(
        self,
        command_ids: Iterable[str],
        after: Mapping[UUID, int],
        contacts: Iterable[tuple[str, str]],
        gaps: Sequence[tuple[int, int]] | None = None,
    ) -> BatchReads:
        """Recorded command ids, newer events and contact owners in one round trip; given
        `gaps` (open intervals of positions), also the log's head and the events in them."""
        ...


class GroupItem(NamedTuple):
    """One decided command of a group commit: its events, record id and contact claims."""

    command_id: str | None
    command_name: str
    events: Sequence[Envelope]
    claims: Sequence[ContactClaim] = ()
    releases: Sequence[ContactClaim] = ()
    # earlier items of the group this one was decided on: it lands only if they all do
    depends_on: tuple[int, ...] = ()


GroupOutcome = list[int] | AppendConflict | CommandAlreadyRecorded | ContactTakenOnAppend


class GroupLog(EventLog, Protocol):
    def append_group(self, items: Sequence[GroupItem]) -> list[GroupOutcome]:
        """Many commands in one transaction, each checked on its own under the append lock.

        One outcome per item, in item order: its positions when appended ([] when it had no
        events), else the refusal (AppendConflict, CommandAlreadyRecorded or
        ContactTakenOnAppend) that kept it out while the other items were appended."""
        ...


class Clock(Protocol):
    def now(self) -> datetime: ...
