"""`crm verify`: what an auditor checks before trusting the log and the views built from it.

One pass over the log, page by page, checks at once:
- the seal chain from GENESIS: every hash recomputed from the stored row and compared with the
  seal table (a changed row, a deleted sealed row, a row slipped in before the sealed head);
- the unsealed tail (positions after the last seal: the sealer may simply be behind);
- per-stream versions: each stream's events run 1, 2, 3, ... in log order;
- every event decodes and upcasts; a forgotten customer's personal fields come back as
  `forgotten` (the key is gone), counted apart, never as corrupt;
- the anchored heads (from JetStream, when the sealer anchors there): each must equal the hash
  recomputed from the log at its position, so a database rewritten with a fresh, consistent
  chain still fails.
Then each projection is rebuilt from the log into a scratch database, up to the position the
live one is at, and its tables are compared by an order-independent checksum of their rows.

Pure orchestration over ports: infra gives the log, the seal table, the anchors and the
projection databases.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Container, Iterable, Mapping, Sequence
from contextlib import AbstractContextManager
from typing import Any, Literal, Protocol

import msgspec

from domain.envelope import Envelope
from projections.ports import Clock, LogSource, ProjectionDB, Row
from projections.projection import Projection
from projections.runner import Runner
from replay.seal import GENESIS, Seal, SealRow, seal_hash

Status = Literal["ok", "failed", "not anchored", "skipped"]
Progress = Callable[[str, int, int], None]  # (step, done, total)


class Check(msgspec.Struct, frozen=True, kw_only=True):
    name: str
    status: Status
    details: str
    first_bad: int | None = None

    @property
    def ok(self) -> bool:
        return self.status != "failed"


class VerifyLog(Protocol):
    """The log as verify reads it (the event store)."""

    def read_rows(
        self, after: int = 0, limit: int = 1000, types: Sequence[str] = (), stop: int | None = None
    ) -> Sequence[SealRow]: ...

    def decode_rows(
        self, rows: Sequence[Any], unseal: Container[str] | None = None
    ) -> list[Envelope[Any]]: ...

    def head(self) -> int: ...


class SealReader(Protocol):
    def last(self) -> Seal | None: ...

    def read(self, after: int, upto: int) -> list[Seal]: ...


class _Problems:
    """Bad positions of one check: the first one named, the rest counted."""

    def __init__(self) -> None:
        self.first: tuple[int, str] | None = None
        self.count = 0

    def add(self, position: int, why: str) -> None:
        self.count += 1
        if self.first is None or position < self.first[0]:
            self.first = (position, why)

    def check(self, name: str, fine: str) -> Check:
        if self.first is None:
            return Check(name=name, status="ok", details=fine)
        more = f" (and {self.count - 1} more)" if self.count > 1 else ""
        return Check(
            name=name,
            status="failed",
            details=f"first bad position {self.first[0]}: {self.first[1]}{more}",
            first_bad=self.first[0],
        )


class LogScan:
    """The state of one pass over the log (pure: fed pages of rows, seals and decodings)."""

    def __init__(self, last_seal: Seal | None, anchors: Mapping[int, bytes] | None) -> None:
        self.last_sealed = 0 if last_seal is None else last_seal.position
        self.anchors = anchors
        self.prev = GENESIS
        self.rows = 0
        self.sealed = 0
        self.unsealed = 0
        self.anchors_seen: set[int] = set()
        self.versions: dict[bytes, int] = {}
        self.decoded = 0
        self.forgotten_events = 0
        self.forgotten_fields = 0
        self.chain = _Problems()
        self.streams = _Problems()
        self.decoding = _Problems()
        self.anchoring = _Problems()

    def feed(
        self,
        rows: Sequence[SealRow],
        seals: Sequence[Seal],
        decoded: Sequence[Envelope[Any] | str],
    ) -> None:
        """One page: its rows, the seals in its position range, each row decoded or the error."""
        pending = list(reversed(seals))
        versions, anchors = self.versions, self.anchors
        for row, item in zip(rows, decoded, strict=True):
            position = row.position
            while pending and pending[-1].position < position:
                lost = pending.pop()
                self.chain.add(lost.position, "sealed, but the row is missing from the log")
                self.prev = lost.hash  # the chain goes on from the sealed hash
            computed = seal_hash(self.prev, row)
            current = computed
            if pending and pending[-1].position == position:
                stored = pending.pop().hash
                self.sealed += 1
                if stored != computed:
                    self.chain.add(position, "the row does not hash to its seal (changed bytes)")
                    current = stored  # resync: later rows are checked on their own
            elif position < self.last_sealed:
                self.chain.add(position, "the row has no seal though later positions have")
            else:
                self.unsealed += 1
            if anchors is not None and (anchored := anchors.get(position)) is not None:
                self.anchors_seen.add(position)
                if anchored != computed:
                    self.anchoring.add(
                        position, "the log hashes differently from the head anchored in JetStream"
                    )
            self.prev = current
            self.rows += 1
            key = row.stream_key
            expected = versions.get(key, 0) + 1
            if row.version != expected:
                self.streams.add(
                    position,
                    f"stream {row.stream_id} has version {row.version} where {expected} is due",
                )
            versions[key] = row.version
            if isinstance(item, str):
                self.decoding.add(position, item)
            else:
                self.decoded += 1
                if item.forgotten:
                    self.forgotten_events += 1
                    self.forgotten_fields += len(item.forgotten)
        for lost in pending:  # seals past the last row of the page (only the last page has any)
            self.chain.add(lost.position, "sealed, but the row is missing from the log")

    def checks(self) -> list[Check]:
        if self.anchors is not None:
            missing = [p for p in self.anchors if p not in self.anchors_seen]
            if missing:
                self.anchoring.add(min(missing), "anchored in JetStream but missing from the log")
        chain = self.chain.check(
            "seal chain",
            f"{self.sealed:,} positions sealed, chain intact from genesis"
            if self.sealed
            else "nothing sealed yet",
        )
        tail = Check(
            name="unsealed tail",
            status="ok",
            details=f"{self.unsealed:,} positions after the last seal ({self.last_sealed})"
            if self.unsealed
            else "none: every position is sealed",
        )
        streams = self.streams.check(
            "stream versions", f"{len(self.versions):,} streams, versions contiguous from 1"
        )
        forgotten = (
            f"; {self.forgotten_events:,} with personal fields forgotten "
            f"({self.forgotten_fields:,} fields)"
            if self.forgotten_events
            else ""
        )
        decoding = self.decoding.check(
            "events decode", f"{self.decoded:,} events decode and upcast{forgotten}"
        )
        if self.anchors is None:
            anchoring = Check(
                name="anchors",
                status="not anchored",
                details="not anchored: CRM_NATS_URL is not set, the chain is checked on its own",
            )
        else:
            anchoring = self.anchoring.check(
                "anchors",
                f"{len(self.anchors):,} heads anchored in JetStream match the log"
                if self.anchors
                else "no head anchored in JetStream yet",
            )
        return [chain, tail, streams, decoding, anchoring]


def scan_log(
    log: VerifyLog,
    seals: SealReader,
    anchors: Mapping[int, bytes] | None,
    *,
    page: int = 20_000,
    progress: Progress | None = None,
) -> list[Check]:
    """Checks (a)-(d) and (f) in one pass over the log (see the module docstring)."""
    head = log.head()
    scan = LogScan(seals.last(), anchors)
    after = 0
    while True:
        rows = log.read_rows(after, page)
        if not rows:
            break
        end = rows[-1].position
        scan.feed(rows, seals.read(after, end), _decode(log, rows))
        after = end
        if progress is not None:
            progress("log", end, max(head, end))
    trailing = seals.read(after, 2**62)
    if trailing:
        scan.feed([], trailing, [])
    return scan.checks()


def _decode(log: VerifyLog, rows: Sequence[SealRow]) -> list[Envelope[Any] | str]:
    try:
        return list(log.decode_rows(rows))
    except Exception:  # find the bad rows; decode the rest one by one
        out: list[Envelope[Any] | str] = []
        for row in rows:
            try:
                out.extend(log.decode_rows([row]))
            except Exception as e:
                out.append(f"does not decode: {type(e).__name__}: {e}")
        return out


# -- projections ---------------------------------------------------------------------------


class _Upto:
    """The log as if its head were `stop`: a rebuild up to where the live view is."""

    def __init__(self, source: LogSource, stop: int) -> None:
        self.source = source
        self.stop = stop

    def read_rows(
        self, after: int = 0, limit: int = 1000, types: Sequence[str] = (), stop: int | None = None
    ) -> Sequence[Row]:
        end = self.stop if stop is None else min(stop, self.stop)
        return self.source.read_rows(after, limit, types, end)

    def decode_rows(
        self, rows: Sequence[Row], unseal: Container[str] | None = None
    ) -> list[Envelope[Any]]:
        return self.source.decode_rows(rows, unseal)

    def head(self) -> int:
        return self.stop


def _canonical(value: object) -> object:
    if isinstance(value, float):
        return float(f"{value:.12g}")  # sums applied in other page sizes may differ in the last bit
    if isinstance(value, memoryview):
        return bytes(value)
    return value


_encode = msgspec.msgpack.Encoder(enc_hook=str).encode


def table_checksum(db: ProjectionDB, table: str) -> tuple[int, str]:
    """(rows, checksum) of a table or view: the sum of its rows' hashes, so row order and
    physical layout do not matter (two equal multisets of rows give the same checksum)."""
    total = 0
    rows = db.fetch(f"SELECT * FROM {db.dialect.qualify(table)}")
    for row in rows:
        digest = hashlib.blake2b(_encode([_canonical(v) for v in row]), digest_size=16).digest()
        total += int.from_bytes(digest, "big")
    return len(rows), f"{total % (1 << 128):032x}"


def compare_projections(
    live: ProjectionDB,
    source: LogSource,
    projections: Iterable[Projection],
    clock: Clock,
    scratch: Callable[[], AbstractContextManager[ProjectionDB]],
    *,
    progress: Progress | None = None,
    fixed_clock: bool = True,
) -> list[Check]:
    """Each built projection against a fresh rebuild of it, into a scratch database of the same
    kind, from the log up to the live checkpoint; due timers fired in both by the same clock.
    A view's `working` tables are never compared (their layout follows the paging); its
    `clock_dependent` ones only with `fixed_clock` (the live rows hold when timers fired)."""
    wanted = {p.name: p for p in projections}
    try:
        status = {s.name: s for s in Runner(live, source, list(wanted.values()), clock).status()}
    except Exception as e:  # no projector ever ran here: there is nothing to compare
        return [
            Check(
                name="projections",
                status="skipped",
                details=f"no views built (their status cannot be read: {type(e).__name__})",
            )
        ]
    built = [n for n in wanted if n in status]
    if not built:
        return [Check(name="projections", status="skipped", details="no views built yet")]
    checks: list[Check] = []
    by_position: dict[int, list[str]] = {}
    for name in built:
        by_position.setdefault(status[name].position, []).append(name)
    with scratch() as db:
        for position, names in sorted(by_position.items()):
            fresh = [type(wanted[n])() for n in names]
            runner = Runner(
                db,
                _Upto(source, position),
                fresh,
                clock,
                policies={n: status[n].policy for n in names},  # type: ignore[misc]
            )
            runner.setup()
            tick = None
            if progress is not None:
                label = f"rebuild to {position}"

                def tick(done: int, head: int, label: str = label) -> None:
                    progress(label, done, head)

            runner.catch_up(progress=tick)
            runner.fire_timers()
            for p in fresh:
                checks.append(_compare(live, db, p, status[p.name].position, fixed_clock))
    return checks


def _compare(
    live: ProjectionDB, scratch: ProjectionDB, p: Projection, position: int, fixed_clock: bool
) -> Check:
    differ: list[str] = []
    rows = 0
    left_out = set(p.working) | (set() if fixed_clock else set(p.clock_dependent))
    for table in p.tables:
        if table in left_out:
            continue
        mine, theirs = table_checksum(live, table), table_checksum(scratch, table)
        rows += mine[0]
        if mine != theirs:
            differ.append(f"{table} ({mine[0]:,} rows live, {theirs[0]:,} rebuilt)")
    name = f"projection {p.name}"
    if differ:
        return Check(
            name=name,
            status="failed",
            details=f"differs from a rebuild up to position {position}: " + ", ".join(differ),
        )
    timed = sorted(set(p.clock_dependent) - set(p.working)) if not fixed_clock else []
    note = (
        f"; {', '.join(timed)} not compared: their rows hold when the timers fired "
        "(compared with the clock fixed by CRM_NOW)"
        if timed
        else ""
    )
    return Check(
        name=name,
        status="ok",
        details=f"{rows:,} rows equal a rebuild up to position {position}{note}",
    )


def first_bad(checks: Iterable[Check]) -> int | None:
    bad = [c.first_bad for c in checks if c.first_bad is not None]
    return min(bad) if bad else None
