"""The projection runner: catch-up in large pages, live follow, dead letters, timers, rebuild.

- A page of the log is read once, decoded once, and fed to every projection that is behind it.
- A projection's rows and its checkpoint commit in one transaction, which first checks the
  checkpoint row (locked on PostgreSQL): after a crash, or beside a rebuild in another process,
  nothing is applied twice or skipped.
- An event that cannot be decoded or applied goes to `crm_dead_letters` with the error; the
  projection then stops (policy `stop`, the default: it waits at that event) or skips it.
- Timers (`crm_timers`) a projection scheduled fire when the clock passes their due time.
- A generation filled from position 0 gets its secondary indexes when it reaches the head
  (built once over its rows rather than kept up to date row by row).
- Rebuild fills a new generation of the tables from position 0 and swaps the stable views and
  the checkpoint in one transaction.
- Blue/green: a projection whose code `version` differs from the version its tables were built
  by (its checkpoint row) is "outdated" for this runner: it neither creates, feeds nor fires
  timers of the old generation (new code must not write into tables built by old code); the
  views keep serving the old generation (fed on by runners of the old code, if any still run)
  until `rebuild(NAME)` (or `upgrade()`) builds the new version's generation beside it and
  swaps the views, version and checkpoint at once. A runner of the old code then finds its
  version outdated in turn and stops feeding it.
- `on_commit(projection, events, position)` hears of every committed change of a view's rows
  (the change feed): after a page, with the events it applied and its end position; after timers
  fired, with an empty list and the unchanged checkpoint (timers change rows without moving it;
  the hook gets no keys for them). A checkpoint that only moved past events the view does not
  handle is no change and is not reported. The hook runs on the projector's thread: it must
  be quick, and an exception from it is logged, never taken for a failed page.
"""

from __future__ import annotations

import gc
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import datetime
from itertools import compress
from typing import Any, Literal, TypeAlias

import msgspec
import structlog

from domain.envelope import Envelope
from projections.errors import ProjectionMoved, RebuildStopped, UnknownProjection
from projections.ports import Clock, LogSource, ProjectionDB, Row, Tx
from projections.projection import Projection, Tables, Timer, _resolve, physical

log = structlog.get_logger("crm.projections")

Policy = Literal["stop", "skip"]
PAGE = 100_000  # events per page: fewer, larger transactions catch up faster (measured)
YOUNG_OBJECTS = 1_000_000  # a catch-up collects when this many more objects are alive
SYSTEM_TABLES = {
    "crm_projections": (
        "name {text} PRIMARY KEY, version {int} NOT NULL, generation {int} NOT NULL, "
        "position {int} NOT NULL, handled {int} NOT NULL, state {text} NOT NULL, "
        "policy {text} NOT NULL, error {text}, updated_at {ts}, epoch {int} NOT NULL DEFAULT 0"
    ),
    "crm_dead_letters": (
        "projection {text} NOT NULL, position {int} NOT NULL, stream_id {uuid}, "
        "version {int}, event_type {text}, error {text} NOT NULL, at {ts} NOT NULL, "
        "PRIMARY KEY (projection, position)"
    ),
    "crm_timers": (
        "projection {text} NOT NULL, key {text} NOT NULL, due_at {ts} NOT NULL, "
        "payload {text} NOT NULL, PRIMARY KEY (projection, key)"
    ),
}


class ProjectionStatus(msgspec.Struct, frozen=True, kw_only=True):
    name: str
    version: int
    generation: int
    position: int
    head: int
    lag: int
    state: str
    policy: str
    handled: int
    dead_letters: int
    error: str | None = None
    updated_at: datetime | None = None


class DeadLetter(msgspec.Struct, frozen=True, kw_only=True):
    projection: str
    position: int
    event_type: str | None
    error: str
    at: datetime


class _Undecodable(msgspec.Struct, frozen=True):
    """A row of the log that did not decode: poison for every projection that handles it."""

    row: Any
    error: str

    @property
    def position(self) -> int:
        return int(self.row.position)

    @property
    def type(self) -> str:
        return str(self.row.topic)


class _Checkpoint(msgspec.Struct):
    generation: int
    position: int
    state: str
    policy: str
    epoch: int = 0  # bumped when timers change rows without moving the checkpoint
    version: int = 1  # of the code that built this generation


Item = Envelope[Any] | _Undecodable
OnCommit: TypeAlias = Callable[[str, list[Envelope[Any]], int], None]


class Runner:
    def __init__(
        self,
        db: ProjectionDB,
        source: LogSource,
        projections: Sequence[Projection],
        clock: Clock,
        *,
        page: int = PAGE,
        policies: dict[str, Policy] | None = None,
        on_commit: OnCommit | None = None,
    ) -> None:
        self.db = db
        self.source = source
        self.projections = {p.name: p for p in projections}
        self.clock = clock
        self.page = page
        self.policies = policies or {}
        self.on_commit = on_commit
        self._checkpoints: dict[str, _Checkpoint] = {}
        self._indexed: set[tuple[str, int]] = set()  # (projection, generation) indexed

    def close(self) -> None:
        self.db.close()

    def __enter__(self) -> Runner:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- setup ----------------------------------------------------------------------------

    def setup(self) -> None:
        """System tables; each projection's checkpoint row, tables of its generation, views."""
        with self.db.transaction() as tx:
            for table, columns in SYSTEM_TABLES.items():
                self._exec(tx, f"CREATE TABLE IF NOT EXISTS {{{table}}} ({columns})")
            for p in self.projections.values():
                policy = self.policies.get(p.name, "stop")
                self._exec(
                    tx,
                    "INSERT INTO {crm_projections} (name, version, generation, position, "
                    "handled, state, policy) VALUES (?, ?, 1, 0, 0, 'live', ?) "
                    "ON CONFLICT (name) DO NOTHING",
                    (p.name, p.version, policy),
                )
                if p.name in self.policies:
                    self._exec(
                        tx,
                        "UPDATE {crm_projections} SET policy = ? WHERE name = ?",
                        (policy, p.name),
                    )
        self._load_checkpoints()
        for p in self.projections.values():
            if self._outdated(p):
                log.warning(
                    "projection.outdated",
                    projection=p.name,
                    built_by=self._checkpoints[p.name].version,
                    code=p.version,
                    action=f"crm projections rebuild {p.name}",
                )
                continue  # its views keep serving the old generation until a rebuild swaps
            with self.db.transaction() as tx:
                self._create_tables(tx, p, self._checkpoints[p.name].generation)
                self._point_views(tx, p, self._checkpoints[p.name].generation)

    def _create_tables(self, tx: Tx, p: Projection, generation: int) -> None:
        """The tables of a generation, without their secondary indexes: a generation filled
        from position 0 gets those when it reaches the head (`_index_caught_up`): building an
        index once over the rows costs a fraction of keeping it up to date row by row."""
        d = self.db.dialect
        for table, columns in p.tables.items():
            t = Tables(tx, d, p.owner, generation, p.tables)
            tx.execute(t.sql(f"CREATE TABLE IF NOT EXISTS {{{table}}} ({columns})"))

    def _create_indexes(self, tx: Tx, p: Projection, generation: int) -> None:
        d = self.db.dialect
        for ix in p.indexes:
            name = d.qualify(f"{physical(ix.table, generation)}_{ix.suffix}").split(".")[-1]
            target = d.qualify(physical(ix.table, generation))
            tx.execute(f"CREATE INDEX IF NOT EXISTS {name} ON {target} ({ix.columns})")

    def _point_views(self, tx: Tx, p: Projection, generation: int) -> None:
        d = self.db.dialect
        for table in p.tables:
            view, target = d.qualify(table), d.qualify(physical(table, generation))
            tx.execute(f"DROP VIEW IF EXISTS {view}")
            tx.execute(f"CREATE VIEW {view} AS SELECT * FROM {target}")

    # -- catch-up -------------------------------------------------------------------------

    def catch_up(
        self,
        names: Sequence[str] | None = None,
        progress: Callable[[int, int], None] | None = None,
        stop: threading.Event | None = None,
    ) -> int:
        """Apply everything up to the head now (or until `stop` is set, between pages);
        returns the number of events applied."""
        self._load_checkpoints()
        wanted = [self._projection(n) for n in names] if names else list(self.projections.values())
        head = self.source.head()
        # Applying a page makes no reference cycles but millions of short-lived objects
        # (rows, envelopes, view rows): the collector rescanning them as they pile up cost a
        # third of a rebuild. It is paused while pages are applied, and runs a young pass
        # between pages once YOUNG_OBJECTS more objects are alive than at the last one (what
        # a page left unreachable is freed there), then is back on.
        collecting = gc.isenabled()
        gc.disable()
        try:
            with ThreadPoolExecutor(1, "crm-projector-read") as reader:
                applied = self._catch_up(wanted, head, reader, progress, stop, collect=collecting)
        finally:
            if collecting:
                gc.enable()
        self._index_caught_up(wanted, head)
        return applied

    def _index_caught_up(self, wanted: list[Projection], head: int) -> None:
        """The secondary indexes of every projection in `wanted` that has reached `head`
        (once per generation and runner; `IF NOT EXISTS` for what an earlier run built)."""
        todo = [
            (p, cp.generation)
            for p in wanted
            if self._serving(p)
            and (cp := self._checkpoints[p.name]).position >= head
            and (p.name, cp.generation) not in self._indexed
        ]
        if not todo:
            return
        with self.db.transaction() as tx:
            if self.db.dialect.name == "postgresql":  # another runner at the head waits here
                self._fetch(
                    tx,
                    "SELECT name FROM {crm_projections} WHERE name = ANY(?) ORDER BY name "
                    "FOR UPDATE",
                    ([p.name for p, _ in todo],),
                )
            for p, generation in todo:
                self._create_indexes(tx, p, generation)
        self._indexed.update((p.name, generation) for p, generation in todo)

    def _catch_up(
        self,
        wanted: list[Projection],
        head: int,
        reader: ThreadPoolExecutor,
        progress: Callable[[int, int], None] | None,
        stop: threading.Event | None,
        *,
        collect: bool = False,
    ) -> int:
        """The page loop. The next page is read on `reader` while this one is applied (the
        read waits on the server, which frees the interpreter for the apply). `collect`: a
        young collection between pages when enough objects piled up (the caller paused the
        automatic ones)."""
        applied = 0
        ahead: tuple[int, frozenset[str], Future[Sequence[Row]]] | None = None
        while stop is None or not stop.is_set():
            live = [p for p in wanted if self._serving(p)]
            behind = [p for p in live if self._checkpoints[p.name].position < head]
            if not behind:
                return applied
            low = min(self._checkpoints[p.name].position for p in behind)
            # Only the types the views behind handle are read: the server filters, and the
            # rows of other types cost no parsing here.
            topics = frozenset().union(*(p.handles for p in behind))
            if ahead is not None and ahead[0] == low and ahead[1] >= topics:
                rows = ahead[2].result()
            else:
                rows = self.source.read_rows(low, self.page, sorted(topics), head)
            ahead = None
            if rows and rows[-1].position < head:
                after = rows[-1].position
                ahead = (
                    after,
                    topics,
                    reader.submit(self.source.read_rows, after, self.page, sorted(topics), head),
                )
            if not rows:
                for p in behind:  # positions have gaps: nothing more up to the head
                    if self._checkpoints[p.name].position < head:
                        self._apply_page(p, [], head)
                return applied
            end = rows[-1].position
            personal = set().union(*(_personal(p) for p in behind))
            rows, types = _typed(rows, topics)
            items, clean = self._decode(rows, personal)
            first = items[0].position if items else end
            present = set(types)
            idle = []
            for p in behind:
                cp = self._checkpoints[p.name]
                if cp.state != "live" or cp.position >= end:
                    continue  # another runner took it past this page meanwhile (reloaded)
                after, handles = cp.position, p.handles
                if after < first and present <= handles:  # all of the page is for it
                    mine = items  # shared, not copied: a copy touches every cold envelope
                elif after < first:  # the whole page is new to it (a filter at C speed)
                    mine = list(compress(items, map(handles.__contains__, types)))
                else:
                    mine = [
                        i
                        for i, t in zip(items, types, strict=True)
                        if t in handles and i.position > after
                    ]
                if mine:
                    ok = clean or not any(isinstance(i, _Undecodable) for i in mine)
                    applied += self._apply_page(p, mine, end, clean=ok)
                else:
                    idle.append(p)
            if idle:
                self._advance_idle(idle, end)
            del rows, items, types
            if collect and gc.get_count()[0] > YOUNG_OBJECTS:
                gc.collect(1)
            if progress is not None:
                progress(end, head)
        return applied

    def _decode(self, rows: Sequence[Row], personal: set[str]) -> tuple[list[Item], bool]:
        """The page's items, and whether all of them decoded (no `_Undecodable`)."""
        try:
            return list(self.source.decode_rows(rows, personal)), True
        except Exception:  # find the poison row(s); decode the rest one by one
            items: list[Item] = []
            for row in rows:
                try:
                    items.extend(self.source.decode_rows([row], personal))
                except Exception as e:
                    items.append(_Undecodable(row, f"{type(e).__name__}: {e}"))
            return items, not any(isinstance(i, _Undecodable) for i in items)

    def _apply_page(self, p: Projection, items: list[Item], end: int, *, clean: bool = True) -> int:
        """`clean`: no item is undecodable (the caller checks a page once for all views)."""
        if clean:
            try:
                self._commit_page(p, items, end)  # type: ignore[arg-type]
                return len(items)
            except ProjectionMoved:
                self._load_checkpoints()
                return 0
            except Exception as e:
                if self.db.is_transient(e):
                    raise  # the database, not the event: retried by the caller, never dead-lettered
                log.warning("projection.page_failed", projection=p.name, error=str(e))
        return self._isolate(p, items, end)

    def _commit_page(self, p: Projection, events: list[Envelope[Any]], end: int) -> None:
        cp = self._checkpoints[p.name]
        if end <= cp.position:
            return  # a checkpoint never moves back (another runner took it past `end`)
        try:
            with self.db.transaction() as tx:
                self._check(tx, p.name, cp)
                if events:
                    t = Tables(
                        tx, self.db.dialect, p.owner, cp.generation, p.tables, position=cp.position
                    )
                    p.apply(t, events, self.clock.now())
                    t.flush_timers()
                self._advance(tx, p.name, end, len(events))
        except BaseException:
            p.forget_cache()
            raise
        cp.position = end
        try:
            p.committed(cp.generation, end)
        except Exception:  # a cache hook must never make a committed page look failed
            p.forget_cache()
        if events:
            self._notify(p.name, events, end)

    def _notify(self, name: str, events: list[Envelope[Any]], position: int) -> None:
        """Tell `on_commit` of a committed change; its failure is logged, never raised (the
        page is committed: raising would dead-letter or retry events already applied)."""
        if self.on_commit is None:
            return
        try:
            self.on_commit(name, events, position)
        except Exception:
            log.exception("projection.on_commit_failed", projection=name, position=position)

    def _advance_idle(self, idle: list[Projection], end: int) -> None:
        """Projections with nothing to apply in a page move their checkpoints together, in
        one transaction (a live event handled by one view costs one commit, not six)."""
        idle = [p for p in idle if self._serving(p) and self._checkpoints[p.name].position < end]
        if not idle:
            return
        try:
            with self.db.transaction() as tx:
                for p in idle:
                    self._check(tx, p.name, self._checkpoints[p.name])
                    self._advance(tx, p.name, end, 0)
        except ProjectionMoved:
            self._load_checkpoints()
            return
        for p in idle:
            self._checkpoints[p.name].position = end
            p.committed(self._checkpoints[p.name].generation, end)

    def _isolate(self, p: Projection, items: list[Item], end: int) -> int:
        """The page failed: apply its events one by one, dead-lettering the poison ones."""
        applied = 0
        for item in items:
            cp = self._checkpoints[p.name]
            error: str | None = item.error if isinstance(item, _Undecodable) else None
            if error is None:
                try:
                    self._commit_page(p, [item], item.position)  # type: ignore[list-item]
                    applied += 1
                    continue
                except ProjectionMoved:
                    self._load_checkpoints()
                    return applied
                except Exception as e:
                    if self.db.is_transient(e):
                        raise
                    error = f"{type(e).__name__}: {e}"
            try:
                self._dead_letter(p, cp, item, error)
            except ProjectionMoved:
                self._load_checkpoints()
                return applied
            if cp.state == "stopped":
                return applied
        try:
            self._commit_page(p, [], end)
        except ProjectionMoved:
            self._load_checkpoints()
        return applied

    def _dead_letter(self, p: Projection, cp: _Checkpoint, item: Item, error: str) -> None:
        stream_id = None if isinstance(item, _Undecodable) else item.stream_id
        version = None if isinstance(item, _Undecodable) else item.version
        stop = cp.policy == "stop"
        log.error(
            "projection.dead_letter",
            projection=p.name,
            position=item.position,
            event_type=item.type,
            error=error,
            policy=cp.policy,
        )
        with self.db.transaction() as tx:
            self._check(tx, p.name, cp)
            self._exec(
                tx,
                "DELETE FROM {crm_dead_letters} WHERE projection = ? AND position = ?",
                (p.name, item.position),
            )
            self._exec(
                tx,
                "INSERT INTO {crm_dead_letters} (projection, position, stream_id, version, "
                "event_type, error, at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (p.name, item.position, stream_id, version, item.type, error, self.clock.now()),
            )
            if stop:
                self._exec(
                    tx,
                    "UPDATE {crm_projections} SET state = 'stopped', error = ?, updated_at = ? "
                    "WHERE name = ?",
                    (
                        f"stopped at position {item.position} ({item.type}): {error}",
                        self.clock.now(),
                        p.name,
                    ),
                )
            else:
                self._advance(tx, p.name, item.position, 0)
        if stop:
            cp.state = "stopped"
        else:
            cp.position = item.position

    def _check(self, tx: Tx, name: str, cp: _Checkpoint) -> None:
        lock = " FOR UPDATE" if self.db.dialect.name == "postgresql" else ""
        row = self._fetch(
            tx,
            "SELECT generation, position, state, epoch FROM {crm_projections} WHERE name = ?"
            + lock,
            (name,),
        )
        if not row or tuple(row[0]) != (cp.generation, cp.position, cp.state, cp.epoch):
            raise ProjectionMoved(name)

    def _advance(self, tx: Tx, name: str, position: int, handled: int) -> None:
        self._exec(
            tx,
            "UPDATE {crm_projections} SET position = ?, handled = handled + ?, updated_at = ? "
            "WHERE name = ?",
            (position, handled, self.clock.now(), name),
        )

    # -- timers ---------------------------------------------------------------------------

    def fire_timers(self) -> int:
        """Run every timer whose due time the clock has passed; returns how many fired."""
        now = self.clock.now()
        fired = 0
        due = {
            owner
            for (owner,) in self.db.fetch(
                _resolve(
                    "SELECT DISTINCT projection FROM {crm_timers} WHERE due_at <= ?",
                    self._system_names(),
                    self.db.dialect,
                ),
                (now,),
            )
        }
        if not due:  # the common case: one query, no transaction per projection
            return 0
        self._load_checkpoints()
        for p in self.projections.values():
            cp = self._checkpoints[p.name]
            owner = physical(p.owner, cp.generation)
            if not self._serving(p) or owner not in due:
                continue
            try:
                fired += self._fire(p, cp, owner, now)
            except ProjectionMoved:  # another runner moved it: its turn next time round
                self._load_checkpoints()
        return fired

    def _fire(self, p: Projection, cp: _Checkpoint, owner: str, now: datetime) -> int:
        with self.db.transaction() as tx:
            self._check(tx, p.name, cp)
            rows = self._fetch(
                tx,
                "SELECT key, due_at, payload FROM {crm_timers} WHERE projection = ? "
                "AND due_at <= ? ORDER BY due_at, key",
                (owner, now),
            )
            if not rows:
                return 0
            timers = [Timer(k, self.db.dialect.ts(d) or now, pl) for k, d, pl in rows]
            self._exec(
                tx, "DELETE FROM {crm_timers} WHERE projection = ? AND due_at <= ?", (owner, now)
            )
            t = Tables(tx, self.db.dialect, p.owner, cp.generation, p.tables, position=cp.position)
            p.forget_cache()  # rows change without the checkpoint moving
            try:
                p.on_timers(t, timers, now)
                t.flush_timers()
                self._exec(
                    tx, "UPDATE {crm_projections} SET epoch = epoch + 1 WHERE name = ?", (p.name,)
                )
            except BaseException:
                p.forget_cache()  # what on_timers cached is rolled back with the transaction
                raise
        cp.epoch += 1
        self._notify(p.name, [], cp.position)
        return len(timers)

    def next_timer(self) -> datetime | None:
        rows = self.db.fetch(
            _resolve("SELECT min(due_at) FROM {crm_timers}", self._system_names(), self.db.dialect)
        )
        return self.db.dialect.ts(rows[0][0]) if rows else None

    # -- live -----------------------------------------------------------------------------

    def follow(self, stop: threading.Event, poll: float = 0.2) -> None:
        """Catch up, fire timers, wait for new events (NOTIFY) or the next timer; repeat until
        `stop` is set. Each page commits on its own, so stopping loses nothing."""
        while not stop.is_set():
            try:
                self.catch_up(stop=stop)
                self.fire_timers()
            except Exception as e:
                if not self.db.is_transient(e):
                    raise
                log.warning("projector.database_unavailable", error=str(e), retry_in=poll)
                stop.wait(poll)  # a dropped connection or a lock: try again, lose nothing
                continue
            if stop.is_set():
                return
            timeout = poll
            due = self.next_timer()
            if due is not None:
                timeout = max(0.0, min(poll, (due - self.clock.now()).total_seconds()))
            self.db.wait(timeout)

    def wait_for(self, position: int, timeout: float = 10.0) -> bool:
        """Read-your-writes: wait until every live projection has applied `position`."""
        deadline = time.monotonic() + timeout
        while True:
            self._load_checkpoints()
            if all(
                c.position >= position
                for n, c in self._checkpoints.items()
                if self._serving(self.projections[n])
            ):
                return True
            if time.monotonic() >= deadline:
                return False
            self.db.wait(min(0.05, max(0.0, deadline - time.monotonic())))

    # -- status, control ------------------------------------------------------------------

    def status(self) -> list[ProjectionStatus]:
        head = self.source.head()
        rows = self.db.fetch(
            _resolve(
                "SELECT name, version, generation, position, handled, state, policy, error, "
                "updated_at FROM {crm_projections} ORDER BY name",
                self._system_names(),
                self.db.dialect,
            )
        )
        dead = dict(
            self.db.fetch(
                _resolve(
                    "SELECT projection, count(*) FROM {crm_dead_letters} GROUP BY projection",
                    self._system_names(),
                    self.db.dialect,
                )
            )
        )
        return [
            ProjectionStatus(
                name=n,
                version=v,
                generation=g,
                position=pos,
                head=head,
                lag=max(0, head - pos),
                state="outdated" if v != self.projections[n].version else s,
                policy=pol,
                handled=h,
                dead_letters=int(dead.get(n, 0)),
                error=err,
                updated_at=self.db.dialect.ts(at),
            )
            for n, v, g, pos, h, s, pol, err, at in rows
            if n in self.projections
        ]

    def dead_letters(self, name: str | None = None) -> list[DeadLetter]:
        sql = "SELECT projection, position, event_type, error, at FROM {crm_dead_letters}"
        params: tuple[object, ...] = ()
        if name:
            sql += " WHERE projection = ?"
            params = (name,)
        rows = self.db.fetch(
            _resolve(sql + " ORDER BY position", self._system_names(), self.db.dialect), params
        )
        return [
            DeadLetter(
                projection=p,
                position=pos,
                event_type=t,
                error=e,
                at=self.db.dialect.ts(a) or self.clock.now(),
            )
            for p, pos, t, e, a in rows
        ]

    def resume(self, name: str) -> None:
        """Let a stopped projection try again from where it stopped."""
        self._projection(name)
        with self.db.transaction() as tx:
            self._exec(
                tx,
                "UPDATE {crm_projections} SET state = 'live', error = NULL WHERE name = ?",
                (name,),
            )
        self._load_checkpoints()

    def rebuild(self, name: str, progress: Callable[[int, int], None] | None = None) -> int:
        """Fill a new generation from position 0, then swap views and checkpoint at once.
        The old generation keeps serving (and the live runner keeps feeding it) meanwhile;
        the new one keeps its progress in a checkpoint row of its own (`NAME#rebuild`)."""
        p = self._projection(name)
        self._load_checkpoints()
        cp = self._checkpoints[name]
        new = cp.generation + 1
        shadow = _Shadow(p, new)
        with self.db.transaction() as tx:
            self._drop_tables(tx, p, new)  # a rebuild that crashed left these behind
            self._create_tables(tx, p, new)
            self._exec(
                tx, "DELETE FROM {crm_timers} WHERE projection = ?", (physical(p.name, new),)
            )
            self._exec(tx, "DELETE FROM {crm_projections} WHERE name = ?", (shadow.name,))
            self._exec(tx, "DELETE FROM {crm_dead_letters} WHERE projection = ?", (shadow.name,))
            self._exec(
                tx,
                "INSERT INTO {crm_projections} (name, version, generation, position, handled, "
                "state, policy) VALUES (?, ?, ?, 0, 0, 'live', ?)",
                (shadow.name, p.version, new, cp.policy),
            )
        builder = Runner(self.db, self.source, [shadow], self.clock, page=self.page)
        applied = 0
        while True:
            applied += builder.catch_up(progress=progress)
            built = builder._checkpoints[shadow.name]
            if built.state != "live":
                raise RebuildStopped(name, built.position)
            with self.db.transaction() as tx:
                lock = " FOR UPDATE" if self.db.dialect.name == "postgresql" else ""
                row = self._fetch(
                    tx, "SELECT generation FROM {crm_projections} WHERE name = ?" + lock, (name,)
                )
                if self.source.head() > built.position:
                    continue  # more arrived meanwhile: catch up again, then swap
                self._point_views(tx, p, new)
                self._exec(
                    tx,
                    "UPDATE {crm_projections} SET generation = ?, version = ?, position = ?, "
                    "handled = (SELECT handled FROM {crm_projections} WHERE name = ?), "
                    "state = 'live', error = NULL, updated_at = ? WHERE name = ?",
                    (new, p.version, built.position, shadow.name, self.clock.now(), name),
                )
                self._exec(tx, "DELETE FROM {crm_projections} WHERE name = ?", (shadow.name,))
                self._exec(tx, "DELETE FROM {crm_dead_letters} WHERE projection = ?", (name,))
                self._exec(
                    tx,
                    "UPDATE {crm_dead_letters} SET projection = ? WHERE projection = ?",
                    (name, shadow.name),
                )
                old = int(row[0][0])
                self._exec(
                    tx, "DELETE FROM {crm_timers} WHERE projection = ?", (physical(p.name, old),)
                )
                self._drop_tables(tx, p, old)
            break
        self._load_checkpoints()
        return applied

    def outdated(self) -> list[str]:
        """Projections whose tables another version of their code built: each waits for a
        rebuild (blue/green) and is not fed by this runner meanwhile."""
        self._load_checkpoints()
        return [n for n, p in self.projections.items() if self._outdated(p)]

    def upgrade(self, progress: Callable[[str, int, int], None] | None = None) -> list[str]:
        """Rebuild every outdated projection beside its old generation, swapping each when
        it has caught up; returns their names."""
        names = self.outdated()
        for name in names:
            self.rebuild(
                name, None if progress is None else lambda pos, head, n=name: progress(n, pos, head)
            )
        return names

    def _drop_tables(self, tx: Tx, p: Projection, generation: int) -> None:
        for table in p.tables:
            tx.execute(
                f"DROP TABLE IF EXISTS {self.db.dialect.qualify(physical(table, generation))}"
            )

    # -- helpers --------------------------------------------------------------------------

    def _outdated(self, p: Projection) -> bool:
        """Its tables were built by another version of its code (see the module docstring)."""
        return self._checkpoints[p.name].version != p.version

    def _serving(self, p: Projection) -> bool:
        """This runner feeds it: live, and built by this version of its code."""
        return self._checkpoints[p.name].state == "live" and not self._outdated(p)

    def _projection(self, name: str) -> Projection:
        p = self.projections.get(name)
        if p is None:
            raise UnknownProjection(name, sorted(self.projections))
        return p

    def _load_checkpoints(self) -> None:
        rows = self.db.fetch(
            _resolve(
                "SELECT name, generation, position, state, policy, epoch, version "
                "FROM {crm_projections}",
                self._system_names(),
                self.db.dialect,
            )
        )
        fresh = {
            n: _Checkpoint(int(g), int(pos), s, pol, int(ep), int(v))
            for n, g, pos, s, pol, ep, v in rows
            if n in self.projections
        }
        for name, cp in fresh.items():  # rows changed elsewhere: cached rows are stale
            if self._checkpoints.get(name) != cp:
                self.projections[name].forget_cache()
        self._checkpoints = fresh

    def _system_names(self) -> dict[str, str]:
        d = self.db.dialect
        names = {t: d.qualify(t) for t in SYSTEM_TABLES}
        names.update(
            {
                k: d.ddl_type(k)
                for k in ("uuid", "ts", "json", "int", "real", "text", "date", "bool")
            }
        )
        return names

    def _exec(self, tx: Tx, template: str, params: Sequence[object] = ()) -> None:
        tx.execute(_resolve(template, self._system_names(), self.db.dialect), params)

    def _fetch(self, tx: Tx, template: str, params: Sequence[object] = ()) -> list[tuple[Any, ...]]:
        return tx.fetch(_resolve(template, self._system_names(), self.db.dialect), params)


def _typed(rows: Sequence[Row], topics: frozenset[str]) -> tuple[Sequence[Row], list[str]]:
    """The rows of the `topics` types (a page read ahead for more views holds others) and
    each one's type as the string object `topics` holds: a row's own copy would be compared
    byte by byte in every view's filter, the same object is found by identity."""
    canonical = {t: t for t in topics}
    types = [canonical.get(r.topic) for r in rows]
    if None not in types:
        return rows, types  # type: ignore[return-value]
    kept = [(r, t) for r, t in zip(rows, types, strict=True) if t is not None]
    return [r for r, _ in kept], [t for _, t in kept]  # type: ignore[misc]


def _personal(p: Projection) -> frozenset[str]:
    """The event types whose personal fields `p` reads."""
    wanted = p.reads_personal
    if wanted is True:
        return p.handles
    return frozenset() if wanted is False else p.handles & wanted


class _Shadow(Projection):
    """A projection filling a new generation of another's tables (rebuild)."""

    def __init__(self, inner: Projection, generation: int) -> None:
        self.inner = type(inner)()  # its own instance: caches never cross generations
        self.real_name = inner.name
        self.name = f"{inner.name}#rebuild"  # type: ignore[misc]
        self.handles = inner.handles  # type: ignore[misc]
        self.reads_personal = inner.reads_personal  # type: ignore[misc]
        self.tables = inner.tables  # type: ignore[misc]
        self.indexes = inner.indexes  # type: ignore[misc]
        self.version = inner.version  # type: ignore[misc]
        self.generation = generation

    @property
    def owner(self) -> str:
        return self.real_name

    def apply(self, t: Tables, events: list[Envelope[Any]], now: datetime) -> None:
        self.inner.apply(t, events, now)

    def on_timers(self, t: Tables, timers: list[Timer], now: datetime) -> None:
        self.inner.on_timers(t, timers, now)

    def forget_cache(self) -> None:
        self.inner.forget_cache()

    def committed(self, generation: int, position: int) -> None:
        self.inner.committed(generation, position)
