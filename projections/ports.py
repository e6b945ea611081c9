"""What projections and their runner need from outside: the log, a SQL database, the clock.

infra implements these for PostgreSQL and SQLite. Projections write SQL templates once for
both: `{table}` names a logical table (resolved to the physical, generation-numbered one) and
`{uuid}`, `{ts}`, `{json}`, `{int}`, `{real}`, `{text}`, `{date}`, `{bool}` name column
types in DDL; parameters are `?`.
"""

from __future__ import annotations

from collections.abc import Container, Iterable, Sequence
from contextlib import AbstractContextManager
from datetime import datetime
from typing import Any, Protocol
from uuid import UUID

from domain.envelope import Envelope


class Row(Protocol):
    """A stored row of the log, not yet decoded."""

    @property
    def position(self) -> int: ...

    @property
    def topic(self) -> str: ...


class LogSource(Protocol):
    def read_rows(
        self, after: int = 0, limit: int = 1000, types: Sequence[str] = (), stop: int | None = None
    ) -> Sequence[Row]: ...

    def decode_rows(
        self, rows: Sequence[Row], unseal: Container[str] | None = None
    ) -> list[Envelope[Any]]:
        """Decode a page at once; raises on the first row that does not decode. Personal
        fields are opened for the `unseal` types only (None: all); the others carry
        placeholders."""
        ...

    def head(self) -> int: ...


class Tx(Protocol):
    """One database transaction; values are Python objects (UUID, datetime, ...)."""

    def execute(self, sql: str, params: Sequence[object] = ()) -> None: ...

    def executemany(self, sql: str, rows: Sequence[Sequence[object]]) -> None: ...

    def fetch(self, sql: str, params: Sequence[object] = ()) -> list[tuple[Any, ...]]: ...

    def insert_many(
        self,
        table: str,
        columns: Sequence[str],
        rows: Iterable[Sequence[object]],
        kinds: Sequence[str],
    ) -> int:
        """Bulk insert (binary COPY on PostgreSQL, `kinds` being the columns' `{type}`
        names); returns the number of rows."""
        ...


class Dialect(Protocol):
    name: str

    def ddl_type(self, kind: str) -> str:
        """The column type for `uuid`, `ts`, `json`, `int`, `real`, `text`, `date`, `bool`."""
        ...

    def qualify(self, table: str) -> str:
        """The table's name as SQL spells it (schema-qualified, quoted)."""
        ...

    def any_of(self, column: str, count: int) -> tuple[str, bool]:
        """SQL for `column` being one of `count` values: (`col = ANY(?)`, True) to pass the
        values as one list, or (`col IN (?, ?, ...)`, False) to pass them spread out."""
        ...

    def uuid(self, value: object) -> UUID | None: ...

    def ts(self, value: object) -> datetime | None: ...


class ProjectionDB(Protocol):
    dialect: Dialect

    def transaction(self) -> AbstractContextManager[Tx]: ...

    def fetch(self, sql: str, params: Sequence[object] = ()) -> list[tuple[Any, ...]]: ...

    def wait(self, timeout: float) -> bool:
        """Block until new events may be in the log (NOTIFY) or `timeout` seconds pass."""
        ...

    def is_transient(self, error: BaseException) -> bool:
        """A failure of the database (dropped connection, lock timeout), not of the data:
        retry it, never dead-letter the event at hand."""
        ...

    def close(self) -> None: ...


class Clock(Protocol):
    def now(self) -> datetime: ...
