"""NATS queries: `<prefix>.query.<projection>` answers rows of a view (nats.micro `crm-query`).

One endpoint per projection (named after it) in queue group `crm-query`, so several query
processes share the load, plus a catch-all endpoint `unknown` on `<prefix>.query.>` that answers
only subjects naming no projection here (with `unknown_projection`; for known names it stays
silent and the projection's own endpoint answers; it has a queue group of its own, since NATS
delivers a message to one member per queue group name, whatever subject each subscribed to). A request is JSON `QueryRequest` (an empty
body is the default query); the reply is `QueryReply` or `ErrorReply` with micro's error headers
(`Nats-Service-Error-Code` is an HTTP-like status: 400 bad request, 404 unknown projection or
table, 408 not caught up, 503 view unavailable, 500 otherwise; the body's `error.code` is ours).

Reads go through the stable views (never a generation's table), with parameterised SQL whose
column names come from the projection's declared columns only. The rows and the checkpoint are
read in one statement, so `position` is exactly the log position the rows reflect.

nats-py runs one subscription's callbacks one at a time: a request is answered on a task of
its own (at most `max_concurrent` at once), and database work runs on worker threads, so a
request waiting for `min_position` holds up neither the loop nor the other requests.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Sequence
from datetime import UTC, date, datetime
from typing import Annotated, Any, Literal
from uuid import UUID

import msgspec
import structlog
from nats.aio.client import Client
from nats.micro import add_service
from nats.micro.request import Request
from nats.micro.service import Service

from handlers.replies import ErrorBody, ErrorReply
from infra.errors import InfraError
from infra.nats.connect import NatsSettings, connect
from infra.projection_db import projection_db
from infra.store.backends import open_store
from projections.catalogue import all_projections
from projections.freshness import applied
from projections.ports import Dialect, ProjectionDB
from projections.projection import Projection, column_types

log = structlog.get_logger("crm.nats.queries")

SERVICE_NAME = "crm-query"
SERVICE_VERSION = "1.0.0"
MAX_LIMIT = 1000
MAX_TIMEOUT_MS = 60_000
POLL = 0.02  # seconds between two checkpoint reads while waiting for `min_position`

Scalar = str | int | float | bool | None


class QueryRequest(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """`order_by` is a column, `-column` for descending; rows are then ordered by the table's
    key too, so paging with `offset` is stable. `filters` are equalities (`null`: IS NULL)."""

    table: str | None = None
    filters: dict[str, Scalar] = {}
    order_by: str | None = None
    limit: Annotated[int, msgspec.Meta(ge=1, le=MAX_LIMIT)] = 100
    offset: Annotated[int, msgspec.Meta(ge=0)] = 0
    min_position: Annotated[int, msgspec.Meta(ge=0)] = 0
    timeout_ms: Annotated[int, msgspec.Meta(ge=0, le=MAX_TIMEOUT_MS)] = 5000


class QueryReply(msgspec.Struct, frozen=True, kw_only=True):
    ok: Literal[True] = True
    projection: str
    table: str
    position: int
    rows: list[dict[str, Any]]
    next_offset: int | None = None


class QueryError(InfraError):
    """A query this service cannot answer; `status` goes to micro's error-code header."""

    code = "invalid_query"
    status = "400"

    def __init__(self, message: str, **details: Any) -> None:
        super().__init__(message)
        self.details = details


class UnknownProjection(QueryError):
    code = "unknown_projection"
    status = "404"


class UnknownTable(QueryError):
    code = "unknown_table"
    status = "404"


class UnknownColumn(QueryError):
    code = "unknown_column"


class InvalidFilter(QueryError):
    code = "invalid_filter"


class NotCaughtUp(QueryError):
    """The view did not reach `min_position` within the request's timeout."""

    code = "not_caught_up"
    status = "408"


class ViewUnavailable(QueryError):
    """The view cannot be read (not set up yet, or the database is down)."""

    code = "view_unavailable"
    status = "503"


class QueryFailed(QueryError):
    """A bug or an unexpected failure (logged with its traceback); the client may retry."""

    code = "internal_error"
    status = "500"


class TableSpec(msgspec.Struct, frozen=True):
    columns: dict[str, str]  # column -> kind (`uuid`, `ts`, `json`, ...)
    key: tuple[str, ...]  # the primary key, or every column when there is none


_PK_COLUMN = re.compile(r"^\s*(\w+)\s+\{\w+\}[^,]*PRIMARY KEY", re.M)
_PK_TABLE = re.compile(r"PRIMARY KEY\s*\(([^)]*)\)")


def table_spec(ddl: str) -> TableSpec:
    columns = column_types(ddl)
    key: tuple[str, ...] = ()
    if found := _PK_TABLE.search(ddl):
        key = tuple(c.strip() for c in found.group(1).split(","))
    else:
        for part in ddl.split(","):
            if found := _PK_COLUMN.match(part):
                key = (found.group(1),)
                break
    return TableSpec(columns, key or tuple(c for c, k in columns.items() if k != "json"))


def catalogue(projections: Sequence[Projection]) -> dict[str, dict[str, TableSpec]]:
    """Projection -> its tables (the first one is the default) -> their columns and key."""
    return {p.name: {t: table_spec(ddl) for t, ddl in p.tables.items()} for p in projections}


# -- the query ---------------------------------------------------------------------------------


def _filter_value(column: str, kind: str, value: Scalar) -> object:
    """A filter's JSON value as the column's type; InvalidFilter when it cannot be one."""
    try:
        if kind == "json":
            raise InvalidFilter(f"{column} holds JSON and cannot be filtered", column=column)
        if kind == "uuid" and isinstance(value, str):
            return UUID(value)
        if kind == "ts" and isinstance(value, str):
            at = datetime.fromisoformat(value)
            return at if at.tzinfo else at.replace(tzinfo=UTC)
        if kind == "date" and isinstance(value, str):
            return date.fromisoformat(value)
        if kind == "int" and isinstance(value, int) and not isinstance(value, bool):
            return value
        if kind == "real" and isinstance(value, int | float) and not isinstance(value, bool):
            return value
        if (kind == "text" and isinstance(value, str)) or (
            kind == "bool" and isinstance(value, bool)
        ):
            return value
    except ValueError as e:
        raise InvalidFilter(f"{column}: {e}", column=column, kind=kind) from e
    raise InvalidFilter(
        f"{column} is of type {kind}; {value!r} is not", column=column, kind=kind, value=value
    )


def _order(spec: TableSpec, order_by: str | None, table: str) -> list[tuple[str, bool]]:
    """(column, descending) pairs: the asked column first, then the key for a stable order."""
    out: list[tuple[str, bool]] = []
    if order_by:
        column, desc = order_by.removeprefix("-"), order_by.startswith("-")
        if column not in spec.columns:
            raise UnknownColumn(
                f"{table} has no column {column!r} to order by",
                column=column,
                table=table,
                columns=list(spec.columns),
            )
        out.append((column, desc))
    out.extend((c, False) for c in spec.key if c not in {o for o, _ in out})
    return out


def build_sql(
    dialect: Dialect, projection: str, table: str, spec: TableSpec, q: QueryRequest
) -> tuple[str, list[object]]:
    """One statement for the checkpoint and the page of rows (one snapshot on both backends):
    the checkpoint row LEFT JOIN the page, so an empty page still gives the position."""

    def name(column: str) -> str:
        return '"' + column + '"'  # declared column names only: \\w+, checked by the caller

    where, params = [], []
    for column, value in q.filters.items():
        kind = spec.columns.get(column)
        if kind is None:
            raise UnknownColumn(
                f"{table} has no column {column!r}",
                column=column,
                table=table,
                columns=list(spec.columns),
            )
        if value is None:
            where.append(f"{name(column)} IS NULL")
        else:
            where.append(f"{name(column)} = ?")
            params.append(_filter_value(column, kind, value))
    order = _order(spec, q.order_by, table)
    columns = ", ".join(name(c) for c in spec.columns)
    inner = f"SELECT 1 AS crm_hit, {columns} FROM {dialect.qualify(table)}"
    if where:
        inner += " WHERE " + " AND ".join(where)
    inner += " ORDER BY " + ", ".join(f"{name(c)}{' DESC' if d else ''}" for c, d in order)
    inner += " LIMIT ? OFFSET ?"
    params += [q.limit + 1, q.offset, projection]
    sql = (
        f"SELECT cp.position, t.* FROM {dialect.qualify('crm_projections')} cp "
        f"LEFT JOIN ({inner}) t ON 1 = 1 WHERE cp.name = ? ORDER BY "
        + ", ".join(f"t.{name(c)}{' DESC' if d else ''}" for c, d in order)
    )
    return (sql.replace("?", "%s") if dialect.name == "postgresql" else sql), params


_json = msgspec.json.Decoder()


def _value(kind: str, value: Any) -> Any:
    """A column's value as JSON will carry it, the same on both backends."""
    if value is None:
        return None
    if kind == "json":
        return _json.decode(value) if isinstance(value, str | bytes) else value
    if kind == "bool":
        return bool(value)
    if kind == "uuid":
        return str(value)
    if kind == "ts":
        at = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
        return at.astimezone(UTC) if at.tzinfo else at.replace(tzinfo=UTC)
    if kind == "date":
        return value.isoformat() if isinstance(value, date) else str(value)
    return value


def run_query(
    db: ProjectionDB, projection: str, table: str, spec: TableSpec, q: QueryRequest
) -> QueryReply:
    """The page of rows and the checkpoint they reflect (blocking: call on a worker thread)."""
    sql, params = build_sql(db.dialect, projection, table, spec, q)
    try:
        found = db.fetch(sql, params)
    except Exception as e:
        log.warning("query.view_unavailable", projection=projection, table=table, error=str(e))
        raise ViewUnavailable(
            f"{table} cannot be read: {type(e).__name__}; is `crm serve projector` set up?",
            projection=projection,
            table=table,
        ) from e
    if not found:
        raise ViewUnavailable(
            f"{projection} has no checkpoint yet; run `crm serve projector`",
            projection=projection,
        )
    kinds = list(spec.columns.values())
    names = list(spec.columns)
    rows = [
        {n: _value(k, v) for n, k, v in zip(names, kinds, r[2:], strict=True)}
        for r in found
        if r[1] is not None
    ]
    more = len(rows) > q.limit
    return QueryReply(
        projection=projection,
        table=table,
        position=int(found[0][0]),
        rows=rows[: q.limit],
        next_offset=q.offset + q.limit if more else None,
    )


# -- the service -------------------------------------------------------------------------------

_request = msgspec.json.Decoder(QueryRequest)
_enc = msgspec.json.Encoder()


class QueryService:
    """The `crm-query` micro service over one projections database."""

    def __init__(
        self,
        db: ProjectionDB,
        projections: Sequence[Projection] | None = None,
        *,
        prefix: str = "crm",
        name: str = SERVICE_NAME,
        max_concurrent: int = 64,
    ) -> None:
        self.db = db
        self.tables = catalogue(projections if projections is not None else all_projections())
        self.prefix = prefix
        self.name = name
        self._slots = asyncio.Semaphore(max_concurrent)
        self._tasks: set[asyncio.Task[None]] = set()
        self._service: Service | None = None

    def subject(self, projection: str) -> str:
        return f"{self.prefix}.query.{projection}"

    async def start(self, nc: Client) -> Service:
        service = await add_service(
            nc,
            name=self.name,
            version=SERVICE_VERSION,
            description="rows of the CRM's views, read-your-writes with min_position",
            queue_group=SERVICE_NAME,
            metadata={"prefix": self.prefix},
        )
        for projection in self.tables:
            await service.add_endpoint(
                name=projection, subject=self.subject(projection), handler=self._handler(projection)
            )
        await service.add_endpoint(  # a group of its own: NATS picks one member per group name
            name="unknown",
            subject=f"{self.prefix}.query.>",
            handler=self._unknown,
            queue_group=f"{SERVICE_NAME}-unknown",
        )
        await nc.flush()
        self._service = service
        log.info("queries.started", service=self.name, prefix=self.prefix, views=len(self.tables))
        return service

    async def stop(self, grace: float = 5.0) -> None:
        """Stop taking requests, then let the ones under way answer (up to `grace` s)."""
        if self._service is not None:
            await self._service.stop()
            self._service = None
        if self._tasks:
            _, late = await asyncio.wait(set(self._tasks), timeout=grace)
            for task in late:
                task.cancel()

    def _handler(self, projection: str) -> Any:
        async def handle(request: Request) -> None:
            await self._slots.acquire()
            task = asyncio.create_task(self._answer(request, projection))
            self._tasks.add(task)
            task.add_done_callback(self._done)

        return handle

    def _done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        self._slots.release()

    async def _unknown(self, request: Request) -> None:
        projection = request.subject.removeprefix(f"{self.prefix}.query.")
        if projection in self.tables:
            return  # its own endpoint answers
        error = UnknownProjection(
            f"no projection {projection!r}", projection=projection, known=sorted(self.tables)
        )
        await self._respond_error(request, error)

    async def _answer(self, request: Request, projection: str) -> None:
        try:
            q = _request.decode(request.data or b"{}")
            table = q.table or next(iter(self.tables[projection]))
            spec = self.tables[projection].get(table)
            if spec is None:
                raise UnknownTable(
                    f"{projection} has no table {table!r}",
                    table=table,
                    tables=list(self.tables[projection]),
                )
            build_sql(self.db.dialect, projection, table, spec, q)  # bad input fails first
            if q.min_position:
                await self._wait(projection, q.min_position, q.timeout_ms / 1000)
            reply = await asyncio.to_thread(run_query, self.db, projection, table, spec, q)
            await request.respond(_enc.encode(reply))
        except msgspec.ValidationError as e:
            await self._respond_error(request, QueryError(f"bad query: {e}"))
        except msgspec.DecodeError as e:
            await self._respond_error(request, QueryError(f"the body is not JSON: {e}"))
        except QueryError as e:
            await self._respond_error(request, e)
        except Exception as e:
            log.exception("query.failed", projection=projection)
            await self._respond_error(request, QueryFailed(f"internal error: {type(e).__name__}"))

    async def _wait(self, projection: str, position: int, timeout: float) -> None:
        """Read-your-writes: poll the checkpoint (on a worker thread) until it has `position`."""
        deadline = time.monotonic() + timeout
        while (reached := await asyncio.to_thread(applied, self.db, [projection])) < position:
            left = deadline - time.monotonic()
            if left <= 0:
                raise NotCaughtUp(
                    f"{projection} reached position {reached}, not {position}, in "
                    f"{timeout:g} s; is `crm serve projector` running?",
                    projection=projection,
                    position=position,
                    reached=reached,
                )
            await asyncio.sleep(min(POLL, left))

    async def _respond_error(self, request: Request, error: QueryError) -> None:
        body = ErrorReply(
            error=ErrorBody(code=error.code, message=str(error), details=error.details)
        )
        try:
            await request.respond_error(error.status, str(error), data=_enc.encode(body))
        except Exception as e:  # no reply subject, connection closed
            log.warning("query.reply_failed", error=str(e), code=error.code)


async def serve_queries(
    store_url: str | None,
    settings: NatsSettings,
    stop: asyncio.Event,
    *,
    prefix: str = "crm",
    env: dict[str, str] | None = None,
) -> None:
    """Run the query service until `stop` is set (its own NATS connection and store)."""
    store = await asyncio.to_thread(open_store, store_url, env)
    db = projection_db(store)
    try:
        nc = await connect(settings)
        service = QueryService(db, prefix=prefix)
        try:
            await service.start(nc)
            await stop.wait()
        finally:
            await service.stop()
            await nc.drain()
    finally:
        db.close()
        store.close()
