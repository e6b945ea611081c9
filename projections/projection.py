"""What a projection is: event types it handles, tables, a batch `apply`, and the transaction
view (`Tables`) it writes through.

A projection's SQL names its logical tables in braces, `{timeline}`; `Tables` resolves them to
the physical table of the current generation (`timeline__g2`), so a rebuild can fill a new
generation while the old one serves, then swap the stable views (`timeline`) at once.
"""

from __future__ import annotations

import string
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any, ClassVar

import msgspec

from domain.envelope import Envelope
from projections.ports import Dialect, Tx

TYPES = ("uuid", "ts", "json", "int", "real", "text", "date", "bool")


class Timer(msgspec.Struct, frozen=True):
    """A due time a projection asked to be woken at, with what to re-evaluate."""

    key: str
    due_at: datetime
    payload: str = ""


class Index(msgspec.Struct, frozen=True):
    suffix: str
    table: str
    columns: str


def physical(table: str, generation: int) -> str:
    return f"{table}__g{generation}"


class Tables:
    """One transaction as a projection sees it: logical tables resolved, timers at hand.

    `generation` and `position` say which generation it writes and the checkpoint it starts
    from; timers scheduled or cancelled are written once, when the runner flushes them."""

    def __init__(
        self,
        tx: Tx,
        dialect: Dialect,
        owner: str,
        generation: int,
        tables: dict[str, str],
        *,
        position: int = 0,
    ):
        self.tx = tx
        self.dialect = dialect
        self.owner = physical(owner, generation)
        self.generation = generation
        self.position = position
        self._names = {t: dialect.qualify(physical(t, generation)) for t in tables}
        self._names.update({k: dialect.ddl_type(k) for k in TYPES})
        self._columns = {t: column_types(ddl) for t, ddl in tables.items()}
        self._sql: dict[str, str] = {}
        self._scheduled: dict[str, tuple[datetime, str]] = {}
        self._cancelled: set[str] = set()

    def sql(self, template: str) -> str:
        """`{table}` and `{type}` resolved, `?` turned into the driver's parameter mark."""
        found = self._sql.get(template)
        if found is None:
            found = self._sql[template] = _resolve(template, self._names, self.dialect)
        return found

    def execute(self, template: str, params: Sequence[object] = ()) -> None:
        self.tx.execute(self.sql(template), params)

    def executemany(self, template: str, rows: Sequence[Sequence[object]]) -> None:
        if rows:
            self.tx.executemany(self.sql(template), rows)

    def fetch(self, template: str, params: Sequence[object] = ()) -> list[tuple[Any, ...]]:
        return self.tx.fetch(self.sql(template), params)

    def fetch_in(
        self, template: str, column: str, values: Sequence[object], chunk: int = 900
    ) -> list[tuple[Any, ...]]:
        """Rows of `template` (a SELECT with `{in}` where the membership test goes) for
        `column` being any of `values`: one query on PostgreSQL, chunks on SQLite."""
        out: list[tuple[Any, ...]] = []
        for i in range(0, len(values), chunk):
            part = values[i : i + chunk]
            test, as_list = self.dialect.any_of(column, len(part))
            sql = self.sql(template.replace("{in}", test))
            out.extend(self.tx.fetch(sql, [list(part)] if as_list else list(part)))
        return out

    def execute_in(
        self, template: str, column: str, values: Sequence[object], chunk: int = 900
    ) -> None:
        """`template` with `{in}` (the membership test of `column`) for all `values`: one
        statement on PostgreSQL, chunks on SQLite."""
        for i in range(0, len(values), chunk):
            part = values[i : i + chunk]
            test, as_list = self.dialect.any_of(column, len(part))
            sql = self.sql(template.replace("{in}", test))
            self.tx.execute(sql, [list(part)] if as_list else list(part))

    def insert_many(
        self, table: str, columns: Sequence[str], rows: Iterable[Sequence[object]]
    ) -> int:
        kinds = self._columns[table]
        return self.tx.insert_many(self._names[table], columns, rows, [kinds[c] for c in columns])

    def replace_rows(
        self, table: str, key: str, columns: Sequence[str], rows: Sequence[Sequence[object]]
    ) -> None:
        """Write whole rows by primary key (insert or replace), set-based: on PostgreSQL a
        DELETE of the keys then COPY, on SQLite INSERT OR REPLACE."""
        if not rows:
            return
        name = self._names[table]
        at = columns.index(key)
        if self.dialect.name == "postgresql":
            self.tx.execute(f"DELETE FROM {name} WHERE {key} = ANY(%s)", ([r[at] for r in rows],))
            self.insert_many(table, columns, rows)
            return
        marks = ", ".join("?" * len(columns))
        self.tx.executemany(
            f"INSERT OR REPLACE INTO {name} ({', '.join(columns)}) VALUES ({marks})", rows
        )

    def schedule(self, key: str, due_at: datetime, payload: str = "") -> None:
        """Wake this projection (`on_timers`) when the clock passes `due_at`; replaces the
        timer of the same key. Written when the transaction's apply is done."""
        self._cancelled.discard(key)
        self._scheduled[key] = (due_at, payload)

    def cancel(self, key: str) -> None:
        self._scheduled.pop(key, None)
        self._cancelled.add(key)

    def flush_timers(self) -> None:
        """One DELETE and one bulk insert for every timer the apply touched."""
        keys = [*self._cancelled, *self._scheduled]
        if not keys:
            return
        timers = self.dialect.qualify("crm_timers")
        for i in range(0, len(keys), 900):
            part = keys[i : i + 900]
            test, as_list = self.dialect.any_of("key", len(part))
            self.tx.execute(
                _resolve(f"DELETE FROM {timers} WHERE projection = ? AND {test}", {}, self.dialect),
                [self.owner, part] if as_list else [self.owner, *part],
            )
        self.tx.insert_many(
            timers,
            ("projection", "key", "due_at", "payload"),
            [(self.owner, k, due, payload) for k, (due, payload) in self._scheduled.items()],
            ["text", "text", "ts", "text"],
        )
        self._scheduled.clear()
        self._cancelled.clear()


def column_types(ddl: str) -> dict[str, str]:
    """`position {int} PRIMARY KEY, name {text}` -> {"position": "int", "name": "text"}."""
    found = {}
    for part in ddl.split(","):
        words = part.split()
        if len(words) >= 2 and words[1].startswith("{") and words[1].endswith("}"):
            found[words[0]] = words[1][1:-1]
    return found


def _resolve(template: str, names: dict[str, str], dialect: Dialect) -> str:
    sql = string.Formatter().vformat(template, (), names)
    return sql.replace("?", "%s") if dialect.name == "postgresql" else sql


class Projection:
    """Subclass and fill in: one module per projection."""

    name: ClassVar[str]
    version: ClassVar[int] = 1
    handles: ClassVar[frozenset[str]]
    tables: ClassVar[dict[str, str]]  # logical name -> column definitions (a DDL template)
    indexes: ClassVar[tuple[Index, ...]] = ()
    # Whether `apply` reads personal fields (names, free text, ...): True, False, or the event
    # types whose personal fields it reads. The others come with placeholders, and the runner
    # skips their decryption.
    reads_personal: ClassVar[bool | frozenset[str]] = True
    # For `crm verify`'s comparison with a fresh rebuild: tables whose rows depend on when the
    # clock fired the timers (compared only when the clock is fixed, `CRM_NOW`), and working
    # tables whose layout depends on how the log was paged (never compared; the rows the
    # consumers read are derived from them and are compared).
    clock_dependent: ClassVar[frozenset[str]] = frozenset()
    working: ClassVar[frozenset[str]] = frozenset()

    @property
    def owner(self) -> str:
        """Whose tables and timers these are (a rebuild's shadow answers for the real one)."""
        return self.name

    def apply(self, t: Tables, events: list[Envelope[Any]], now: datetime) -> None:
        """Apply a batch of events (log order, only handled types) inside one transaction.
        The list is read-only: the runner may hand the same one to several projections."""
        raise NotImplementedError

    def on_timers(self, t: Tables, timers: list[Timer], now: datetime) -> None:
        """Timers this projection scheduled whose due time the clock has passed."""
        return None

    def committed(self, generation: int, position: int) -> None:
        """The transaction of the last `apply` committed at this checkpoint (cache hook)."""
        return None

    def forget_cache(self) -> None:
        """The last `apply` rolled back, or rows changed elsewhere: drop any cached rows."""
        return None
