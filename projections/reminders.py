"""`reminders`: the reminders the rules derive (domain/reminders/rules.py), one row per
occurrence, with its completion and snooze.

- `reminders_subjects`: each subject's compact folded state (equipment, ticket, order, deal,
  survey answer, meeting, the customer's owner), without personal data.
- `reminders_marks`: completions and snoozes by key, kept apart from the rows so that a mark
  outlives its row (a condition that ceases and comes back keeps its snooze or completion).
- `reminders`: every reminder open now, and every one completed.

A page is applied set-based: the subjects of every customer the page touches are read at once,
the page's events folded into them, and those customers' reminders recomputed before and after
the page (subjects stay cached between pages while nothing else writes the tables): only
what changed is written (open rows whose condition ceased are deleted, completed
ones kept; new and changed rows written with their marks). A reminder's due time is a column, so `reminders_list`
finds the ones due as the clock moves with no rescan and no timer: no rule's condition changes
with time alone (each is due at a time fixed by events).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime
from typing import Any
from uuid import UUID

import msgspec

from domain.envelope import Envelope
from domain.reminders import events as rev
from domain.reminders.rules import (
    DEFAULT_POLICY,
    Account,
    Reminder,
    ReminderPolicy,
    account_of,
    account_reminders,
    reminder_id_of,
    subject_reminders,
)
from domain.reminders.subjects import SUBJECT_EVENTS, Subject, advance
from projections.ports import ProjectionDB
from projections.projection import Index, Projection, Tables, _resolve

COLUMNS = (
    "key",
    "reminder_id",
    "rule",
    "customer_id",
    "subject_id",
    "employee",
    "due_at",
    "reason",
    "status",
    "snoozed_until",
    "completed_at",
    "position",
)
SUBJECT_COLUMNS = ("subject_id", "customer_id", "data")
_MARK = (
    "INSERT INTO {reminders_marks} AS m (key, completed_at, snoozed_until, position) "
    "VALUES (?, ?, ?, ?) ON CONFLICT (key) DO UPDATE SET "
    "completed_at = COALESCE(excluded.completed_at, m.completed_at), "
    "snoozed_until = COALESCE(excluded.snoozed_until, m.snoozed_until), "
    "position = excluded.position"
)
_MARK_ROW = (
    "UPDATE {reminders} SET completed_at = COALESCE(?, completed_at), "
    "snoozed_until = COALESCE(?, snoozed_until), "
    "status = CASE WHEN COALESCE(?, completed_at) IS NULL THEN 'open' ELSE 'done' END, "
    "position = ? WHERE key = ?"
)
_enc = msgspec.json.Encoder()
_dec = msgspec.json.Decoder(Subject)
_MARK_EVENTS = (rev.ReminderCompleted, rev.ReminderSnoozed)


class Reminders(Projection):
    clock_dependent = frozenset({"reminders"})
    name = "reminders"
    version = 2  # 2: follows merges (a merged-away customer is no dormant customer)
    reads_personal = False  # subjects keep no names, free text or a gift's recipient
    handles = frozenset(str(t.__struct_config__.tag) for t in (*SUBJECT_EVENTS, *_MARK_EVENTS))
    tables = {
        "reminders": (
            "key {text} PRIMARY KEY, reminder_id {uuid} NOT NULL, rule {text} NOT NULL, "
            "customer_id {uuid} NOT NULL, subject_id {uuid} NOT NULL, employee {text} NOT NULL, "
            "due_at {ts} NOT NULL, reason {text} NOT NULL, status {text} NOT NULL, "
            "snoozed_until {ts}, completed_at {ts}, position {int} NOT NULL"
        ),
        "reminders_subjects": (
            "subject_id {uuid} PRIMARY KEY, customer_id {uuid} NOT NULL, data {text} NOT NULL"
        ),
        "reminders_marks": (
            "key {text} PRIMARY KEY, completed_at {ts}, snoozed_until {ts}, position {int} NOT NULL"
        ),
    }
    indexes = (
        Index("customer", "reminders", "customer_id"),
        Index("due", "reminders", "status, due_at"),
        Index("customer", "reminders_subjects", "customer_id"),
    )

    def __init__(self, policy: ReminderPolicy = DEFAULT_POLICY, cache: int = 500_000) -> None:
        self.policy = policy
        self.capacity = cache
        self._cache: dict[UUID, dict[UUID, Subject]] = {}  # customer -> subject id -> it
        # customer -> the account its cached subjects give (folding every subject of a
        # customer on each page it is touched grew with the customer's history)
        self._accounts: dict[UUID, Account] = {}
        self._at: tuple[int, int] | None = None  # (generation, position) the cache is right at

    def committed(self, generation: int, position: int) -> None:
        self._at = (generation, position)

    def forget_cache(self) -> None:
        self._cache, self._accounts, self._at = {}, {}, None

    def apply(self, t: Tables, events: list[Envelope[Any]], now: datetime) -> None:
        if self._at != (t.generation, t.position) or len(self._cache) > self.capacity:
            self._cache, self._accounts = {}, {}  # rows changed elsewhere, or too many kept
        self._at = None  # until this page commits
        marks: dict[str, list[Any]] = {}  # key -> [completed_at, snoozed_until, position]
        touched: dict[UUID, int] = {}  # customer -> last position of the page
        subject_events = []
        for e in events:
            p = e.payload
            if isinstance(p, _MARK_EVENTS):
                mark = marks.setdefault(p.key, [None, None, 0])
                if isinstance(p, rev.ReminderCompleted):
                    mark[0] = e.occurred_at
                else:
                    mark[1] = p.until
                mark[2] = e.position
            elif e.customer_id is not None:
                subject_events.append(e)
                touched[e.customer_id] = e.position
        if marks:
            rows = [(k, c, s, pos) for k, (c, s, pos) in marks.items()]
            t.executemany(_MARK, rows)
            t.executemany(_MARK_ROW, [(c, s, c, pos, k) for k, c, s, pos in rows])
        if touched:
            self._recompute(t, subject_events, touched)

    def _recompute(self, t: Tables, events: list[Envelope[Any]], touched: dict[UUID, int]) -> None:
        d = t.dialect
        customers = list(touched)
        subjects = self._cache
        missing = [c for c in customers if c not in subjects]
        for c in missing:
            subjects[c] = {}
        for sid, cid, data in t.fetch_in(
            "SELECT subject_id, customer_id, data FROM {reminders_subjects} WHERE {in}",
            "customer_id",
            missing,
        ):
            subjects[d.uuid(cid)][d.uuid(sid)] = _dec.decode(data)  # type: ignore[index]
        known = self._accounts
        accounts = {cid: known.get(cid) or account_of(subjects[cid].values()) for cid in customers}
        prior: dict[UUID, dict[UUID, Subject | None]] = defaultdict(dict)  # as they were
        for e in events:
            mine = subjects[e.customer_id]
            s = advance(
                mine.get(e.stream_id),
                stream_id=e.stream_id,
                version=e.version,
                at=e.occurred_at,
                actor=e.actor,
                payload=e.payload,
            )
            if s is not None:
                prior[e.customer_id].setdefault(e.stream_id, mine.get(e.stream_id))
                mine[e.stream_id] = s
        t.replace_rows(
            "reminders_subjects",
            "subject_id",
            SUBJECT_COLUMNS,
            [
                (sid, cid, _enc.encode(subjects[cid][sid]).decode())
                for cid, changed in prior.items()
                for sid in changed
            ],
        )
        before: dict[str, Reminder] = {}
        after: dict[str, Reminder] = {}
        for cid in customers:
            changed = prior.get(cid, {})
            was = accounts[cid]
            now_ = known[cid] = account_of(subjects[cid].values()) if changed else was
            if (was.owner, was.forgotten) == (now_.owner, now_.forgotten):
                old = [s for s in changed.values() if s is not None]
                new = [subjects[cid][sid] for sid in changed]
            else:  # every reminder of the customer may go elsewhere
                old = [s for sid, s in subjects[cid].items() if sid not in changed]
                old += [s for s in changed.values() if s is not None]
                new = list(subjects[cid].values())
            self._add(before, cid, was, old)
            self._add(after, cid, now_, new)
        gone = [k for k in before if k not in after]
        t.execute_in("DELETE FROM {reminders} WHERE status = 'open' AND {in}", "key", gone)
        fresh = [r for k, r in after.items() if before.get(k) != r]
        marks = {
            k: (d.ts(c), d.ts(s))
            for k, c, s in t.fetch_in(
                "SELECT key, completed_at, snoozed_until FROM {reminders_marks} WHERE {in}",
                "key",
                [r.key for r in fresh],
            )
        }
        rows = []
        for r in fresh:
            completed, snoozed = marks.get(r.key, (None, None))
            rows.append(
                (
                    r.key,
                    reminder_id_of(r.key),
                    r.rule,
                    r.customer_id,
                    r.subject_id,
                    r.employee,
                    r.due_at,
                    r.reason,
                    "open" if completed is None else "done",
                    snoozed,
                    completed,
                    touched[r.customer_id],
                )
            )
        t.replace_rows("reminders", "key", COLUMNS, rows)

    def _add(
        self, into: dict[str, Reminder], cid: UUID, account: Account, subjects: list[Subject]
    ) -> None:
        """The reminders of some of a customer's subjects, and of the customer as a whole.
        The rows stored are what the subjects stored imply, so comparing the rules' answer
        before and after a page finds every row to write or delete."""
        if account.forgotten:
            return
        for r in account_reminders(cid, account, self.policy):
            into[r.key] = r
        for s in subjects:
            for r in subject_reminders(s, cid, account.owner, self.policy):
                into[r.key] = r


# -- queries ----------------------------------------------------------------------------


class ReminderRow(msgspec.Struct, frozen=True, kw_only=True):
    """`effective_at`: when it is due in the lists, the later of `due_at` and a snooze."""

    key: str
    reminder_id: UUID
    rule: str
    customer_id: UUID
    subject_id: UUID
    employee: str
    due_at: datetime
    reason: str
    status: str
    snoozed_until: datetime | None
    completed_at: datetime | None
    position: int
    effective_at: datetime


_EFFECTIVE = "CASE WHEN snoozed_until > due_at THEN snoozed_until ELSE due_at END"


def _rows(db: ProjectionDB, where: str, params: Sequence[object]) -> list[ReminderRow]:
    d = db.dialect
    sql = _resolve(
        f"SELECT {', '.join(COLUMNS)} FROM {{reminders}} WHERE {where} ORDER BY {_EFFECTIVE}, key",
        {"reminders": d.qualify("reminders")},
        d,
    )
    out = []
    for row in db.fetch(sql, params):
        r = dict(zip(COLUMNS, row, strict=True))
        for k in ("reminder_id", "customer_id", "subject_id"):
            r[k] = d.uuid(r[k])
        for k in ("due_at", "snoozed_until", "completed_at"):
            r[k] = d.ts(r[k])
        snoozed = r["snoozed_until"]
        effective = snoozed if snoozed is not None and snoozed > r["due_at"] else r["due_at"]
        r["position"] = int(r["position"])
        out.append(ReminderRow(**r, effective_at=effective))
    return out


def reminders_list(
    db: ProjectionDB,
    *,
    now: datetime,
    employee: str | None = None,
    due_before: datetime | None = None,
    due_after: datetime | None = None,
) -> list[ReminderRow]:
    """Open reminders due at `due_before` (default: now), the later of their due time and
    their snooze, earliest first; one employee's only if `employee` is given; only those
    due after `due_after` if given (a work list leaves out what fell due long ago)."""
    where = f"status = 'open' AND {_EFFECTIVE} <= ?"
    params: list[object] = [due_before if due_before is not None else now]
    if due_after is not None:
        where += f" AND {_EFFECTIVE} > ?"
        params.append(due_after)
    if employee is not None:
        where += " AND employee = ?"
        params.append(employee)
    return _rows(db, where, params)


def customer_reminder_rows(db: ProjectionDB, customer_id: UUID) -> list[ReminderRow]:
    """Every reminder of one customer, open or completed, due or not."""
    return _rows(db, "customer_id = ?", [customer_id])
