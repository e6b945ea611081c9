"""The sealed log: a hash chain over every stored event, so a rewrite of history shows.

Each position of the log gets one seal, `log_seal(position, hash)`, where

    hash(p) = SHA-256( field(prev) || field(u64 position) || field(stream id, 16 bytes)
                       || field(u64 version) || field(topic, UTF-8) || field(stored bytes) )
    field(b) = u32 big-endian len(b) || b          (every field length-prefixed)
    prev     = hash of the previous sealed position, or GENESIS for the first one
    GENESIS  = SHA-256(b"crm-engine log seal v1")

Positions and versions are unsigned 64-bit big-endian, the stream id its 16 raw UUID bytes,
the stored bytes exactly as the log holds them (personal fields as ciphertext): sealing needs
no key and forgetting a customer (deleting the key) leaves every hash valid. Positions have
gaps (a rolled-back insert); the chain links the rows that exist, in position order.

The chain logic is pure; the log and the seal table come in through the Protocols below
(infra implements them on both backends).
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from typing import Protocol
from uuid import UUID

import msgspec

GENESIS = hashlib.sha256(b"crm-engine log seal v1").digest()
_U32 = 4
_U64 = 8


class SealRow(Protocol):
    """What a seal covers of a stored row (infra's LogRow has it)."""

    @property
    def position(self) -> int: ...

    @property
    def stream_id(self) -> UUID: ...

    @property
    def stream_key(self) -> bytes:
        """The stream id's 16 bytes."""
        ...

    @property
    def version(self) -> int: ...

    @property
    def topic(self) -> str: ...

    @property
    def state(self) -> bytes: ...


class Seal(msgspec.Struct, frozen=True, gc=False):
    position: int
    hash: bytes
    sealed_at: datetime | None = None


class SealLog(Protocol):
    """The log as the sealer reads it: rows in position order, never decoded."""

    def read_rows(
        self, after: int = 0, limit: int = 1000, types: Sequence[str] = (), stop: int | None = None
    ) -> Sequence[SealRow]: ...

    def head(self) -> int: ...


class SealStore(Protocol):
    """The seal table beside the log."""

    def last(self) -> Seal | None:
        """The seal of the highest sealed position, or None when nothing is sealed."""
        ...

    def append(self, seals: Sequence[Seal]) -> list[Seal]:
        """Insert the seals whose position is free (one transaction); return the seals already
        stored at the positions that were taken (another sealer was first), to be compared."""
        ...

    def read(self, after: int, upto: int) -> list[Seal]:
        """The seals with after < position <= upto, in position order."""
        ...


class SealMismatch(Exception):
    """Another sealer stored a different hash for a position: the log changed under us."""

    code = "seal_mismatch"

    def __init__(self, position: int, stored: bytes, computed: bytes) -> None:
        super().__init__(
            f"position {position} is sealed as {stored.hex()} but its row hashes to "
            f"{computed.hex()}: the log was changed after it was sealed (run `crm verify`)"
        )
        self.position = position


# The fixed-size fields, each with its length prefix, packed in one call: prev (32), position
# (8), stream id (16), version (8), then the topic's length (the topic and the state follow).
_FIXED = struct.Struct(">I32sIQI16sIQI")
_TOPICS: dict[str, bytes] = {}


def seal_hash(prev: bytes, row: SealRow) -> bytes:
    """The hash of one row's position given the previous one (see the module docstring);
    one pack, one join and one digest call per row, the sealer's whole cost beside reading
    the rows."""
    topic = _TOPICS.get(row.topic)
    if topic is None:
        topic = _TOPICS[row.topic] = row.topic.encode()
    state = row.state
    if len(prev) != 32:  # every hash is SHA-256: only a foreign value lands here
        raise ValueError(f"a previous hash must be 32 bytes, not {len(prev)}")
    return hashlib.sha256(
        b"".join(
            (
                _FIXED.pack(
                    32, prev, 8, row.position, 16, row.stream_key, 8, row.version, len(topic)
                ),
                topic,
                len(state).to_bytes(_U32, "big"),
                state,
            )
        )
    ).digest()


def chain(prev: bytes, rows: Sequence[SealRow]) -> list[Seal]:
    """The seals of consecutive rows (position order) continuing from `prev`."""
    seals: list[Seal] = []
    for r in rows:
        prev = seal_hash(prev, r)
        seals.append(Seal(r.position, prev))
    return seals


class Sealer:
    """Follows the log page by page and appends a seal for every position, in order, resuming
    after the last sealed one. Two sealers at once compute the same hashes from the same
    immutable rows; the store keeps one per position and the loser checks it got the same."""

    def __init__(self, log: SealLog, seals: SealStore, *, page: int = 10_000) -> None:
        self.log = log
        self.seals = seals
        self.page = page

    def seal_page(self) -> list[Seal]:
        """Seal the next page of unsealed rows; returns the seals computed (empty at the head)."""
        last = self.seals.last()
        after, prev = (0, GENESIS) if last is None else (last.position, last.hash)
        return self._seal(prev, self.log.read_rows(after, self.page))

    def _seal(self, prev: bytes, rows: Sequence[SealRow]) -> list[Seal]:
        if not rows:
            return []
        computed = chain(prev, rows)
        taken = self.seals.append(computed)
        if taken:
            mine = {s.position: s.hash for s in computed}
            for s in taken:
                if s.hash != mine[s.position]:
                    raise SealMismatch(s.position, s.hash, mine[s.position])
        return computed

    def seal_until(self, position: int | None = None) -> tuple[int, Seal | None]:
        """Seal pages until `position` (default: the head when called) is sealed; returns how
        many positions this call sealed and the last seal. The next page is read on a thread
        while this one is hashed and stored."""
        target = self.log.head() if position is None else position
        count, head = 0, self.seals.last()
        if head is not None and head.position >= target:
            return count, head
        after, prev = (0, GENESIS) if head is None else (head.position, head.hash)
        with ThreadPoolExecutor(1, "crm-sealer-read") as reader:
            ahead = reader.submit(self.log.read_rows, after, self.page, (), target)
            while True:
                rows = ahead.result()
                if not rows:
                    break
                if rows[-1].position < target:
                    ahead = reader.submit(
                        self.log.read_rows, rows[-1].position, self.page, (), target
                    )
                page = self._seal(prev, rows)
                count += len(page)
                head, prev = page[-1], page[-1].hash
                if head.position >= target:
                    break
        return count, head
