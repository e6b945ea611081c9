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
    """One transaction as a projection sees it: logical tables resolved, timers at hand."""

    def __init__(
        self, tx: Tx, dialect: Dialect, owner: str, generation: int, tables: Iterable[str]
    ):
        self.tx = tx
        self.dialect = dialect
        self.owner = physical(owner, generation)
        self._names = {t: dialect.qualify(physical(t, generation)) for t in tables}
        self._names.update({k: dialect.ddl_type(k) for k in TYPES})
        self._sql: dict[str, str] = {}

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

    def insert_many(
        self, table: str, columns: Sequence[str], rows: Iterable[Sequence[object]]
    ) -> int:
        return self.tx.insert_many(self._names[table], columns, rows)

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
            self.tx.insert_many(name, columns, rows)
            return
        marks = ", ".join("?" * len(columns))
        self.tx.executemany(
            f"INSERT OR REPLACE INTO {name} ({', '.join(columns)}) VALUES ({marks})", rows
        )

    def cancel(self, key: str) -> None:
        self.tx.execute(
            _resolve(
                "DELETE FROM {crm_timers} WHERE projection = ? AND key = ?",
                {"crm_timers": self.dialect.qualify("crm_timers")},
                self.dialect,
            ),
            (self.owner, key),
        )

    def schedule(self, key: str, due_at: datetime, payload: str = "") -> None:
        """Wake this projection (`on_timers`) when the clock passes `due_at`; replaces the
        timer of the same key."""
        self.cancel(key)
        self.tx.execute(
            _resolve(
                "INSERT INTO {crm_timers} (projection, key, due_at, payload) VALUES (?, ?, ?, ?)",
                {"crm_timers": self.dialect.qualify("crm_timers")},
                self.dialect,
            ),
            (self.owner, key, due_at, payload),
        )


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

    @property
    def owner(self) -> str:
        """Whose tables and timers these are (a rebuild's shadow answers for the real one)."""
        return self.name

    def apply(self, t: Tables, events: list[Envelope[Any]], now: datetime) -> None:
        """Apply a batch of events (log order, only handled types) inside one transaction."""
        raise NotImplementedError

    def on_timers(self, t: Tables, timers: list[Timer], now: datetime) -> None:
        """Timers this projection scheduled whose due time the clock has passed."""
        return None
