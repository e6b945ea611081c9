"""The command service: a `nats.micro` service `crm`, one endpoint per registered command.

Each endpoint listens on `crm.cmd.<command>` in the queue group `crm-handlers`, so several
handler processes share the load. The callback validates the body (msgspec) and hands the
command to a bounded queue; it never awaits the commit (nats-py runs one subscription's
callbacks one at a time). A batcher task takes what has queued up, decides and appends it as
one group commit on a worker thread, and only then replies: an answered command is committed.
A full queue answers `busy` at once (back-pressure, never unbounded memory).

Replies are `{"ok": true, "streams": [...], "positions": [...]}` or
`{"ok": false, "error": {"code", "message", "details"}}` with micro's error headers
(`Nats-Service-Error`, `Nats-Service-Error-Code`) and `Crm-Error-Code`. A `command_id` in the
body or the `Nats-Msg-Id` header makes a retry return the first answer and append nothing.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from importlib.metadata import PackageNotFoundError, version
from typing import Any

import msgspec
import structlog
from nats import micro
from nats.aio.client import Client
from nats.micro.request import Request
from nats.micro.service import Service
from nats.nuid import NUID

from domain.errors import DomainError
from handlers.decision import CommandContext
from handlers.errors import CommandRejected, ConcurrencyExhausted
from handlers.group_commit import GroupCommitter, Outcome, Submitted
from handlers.parsing import parse_command, parse_message
from handlers.ports import CommandResult
from handlers.replies import ErrorBody, ErrorReply, error_reply, ok_reply
from infra.engine import Engine
from infra.errors import InfraError

log = structlog.get_logger("crm.nats.service")

SERVICE_NAME = "crm"
QUEUE_GROUP = "crm-handlers"
_encode = msgspec.json.Encoder().encode
_nuid = NUID()


class ServiceBusy(InfraError):
    """More commands are waiting than the service holds: retry after a short pause."""

    code = "busy"


def _version() -> str:
    try:
        return version("crm-engine")
    except PackageNotFoundError:  # running from a checkout that is not installed
        return "0.0.0"


def status_of(error: Exception) -> str:
    """micro's error code header: HTTP-like numbers clients already know how to treat."""
    if isinstance(error, ServiceBusy):
        return "503"
    if isinstance(error, ConcurrencyExhausted):
        return "409"
    if isinstance(error, CommandRejected):
        return "400"
    if isinstance(error, DomainError):
        return "422"
    return "500"


def reply_for(error: Exception) -> ErrorReply:
    """A typed error as is; anything else as `internal_error` without internals to act on."""
    if isinstance(error, DomainError | CommandRejected | InfraError):
        return error_reply(error)
    return ErrorReply(
        error=ErrorBody(code="internal_error", message=f"{type(error).__name__}: {error}")
    )


@dataclass(slots=True)
class _Job:
    request: Request
    submitted: Submitted
    received: float = field(default_factory=time.perf_counter)


class CommandService:
    """Serves every command of the engine's registry over NATS until `stop()`."""

    def __init__(
        self,
        engine: Engine,
        nc: Client,
        *,
        prefix: str = "crm",
        queue_group: str = QUEUE_GROUP,
        max_batch: int = 128,
        max_pending: int = 8192,
        committers: int = 2,
        name: str = SERVICE_NAME,
    ) -> None:
        self.engine = engine
        self.nc = nc
        self.prefix = prefix
        self.queue_group = queue_group
        self.max_batch = max_batch
        self.name = name
        # Each committer decides its batch while another one's waits on the database; each
        # keeps its own customer states, so one never decides on another's unlanded events.
        self._free: asyncio.Queue[GroupCommitter] = asyncio.Queue()
        for _ in range(committers):
            self._free.put_nowait(GroupCommitter(engine.bus, engine.store))  # type: ignore[arg-type]
        self._in_flight: set[asyncio.Task[None]] = set()
        self._queue: asyncio.Queue[_Job | None] = asyncio.Queue(maxsize=max_pending)
        self._service: Service | None = None
        self._batcher: asyncio.Task[None] | None = None
        self._subject_offset = len(f"{prefix}.cmd.")
        self.batches = 0
        self.commands = 0

    async def start(self) -> None:
        self._batcher = asyncio.create_task(self._run_batches(), name="crm-batcher")
        self._service = await micro.add_service(
            self.nc,
            name=self.name,
            version=_version(),
            description="crm-engine commands: one endpoint per command, replies after commit",
            metadata={"prefix": self.prefix},
            queue_group=self.queue_group,
        )
        for spec in self.engine.bus.registry:
            await self._service.add_endpoint(
                name=spec.name.replace(".", "-"),
                subject=f"{self.prefix}.cmd.{spec.name}",
                handler=self._on_request,
                queue_group=self.queue_group,
                metadata={"command": spec.name},
            )
        log.info(
            "handlers.started", service=self.name, endpoints=len(self.engine.bus.registry.names())
        )

    async def stop(self) -> None:
        """Stop taking commands, then answer every one already taken."""
        if self._service is not None:
            await self._service.stop()
            self._service = None
        if self._batcher is not None:
            await self._queue.put(None)
            await self._batcher
            self._batcher = None
        log.info("handlers.stopped", batches=self.batches, commands=self.commands)

    # -- the callback: validate and hand over, never wait for the store ------------------

    async def _on_request(self, request: Request) -> None:
        name = request.subject[self._subject_offset :]
        headers = request.headers or {}
        try:
            message = parse_message(request.data)
            command = parse_command(name, message.data)
        except CommandRejected as e:
            await self._reply(request, e)
            return
        ctx = CommandContext(
            actor=message.actor or headers.get("Crm-Actor") or "service",
            channel="nats",
            # without one, a generated id still keeps a store retry from appending twice
            command_id=message.command_id
            or headers.get("Nats-Msg-Id")
            or f"nats:{_nuid.next().decode()}",
            correlation_id=message.correlation_id or headers.get("Crm-Correlation"),
            causation_id=message.causation_id or headers.get("Crm-Causation"),
        )
        try:
            self._queue.put_nowait(_Job(request, Submitted(command, ctx)))
        except asyncio.QueueFull:
            await self._reply(
                request,
                ServiceBusy(f"{self._queue.qsize()} commands are waiting; retry after a pause"),
            )

    # -- the batcher: one group commit per batch, on a worker thread -----------------------

    async def _run_batches(self) -> None:
        queue = self._queue
        while True:
            committer = await self._free.get()  # take the next batch when a committer is free
            job = await queue.get()
            if job is None:
                break
            batch = [job]
            stopping = False
            while len(batch) < self.max_batch and not queue.empty():
                more = queue.get_nowait()
                if more is None:
                    stopping = True
                    break
                batch.append(more)
            task = asyncio.create_task(self._commit(committer, batch))
            self._in_flight.add(task)
            task.add_done_callback(self._in_flight.discard)
            if stopping:
                break
        if self._in_flight:
            await asyncio.gather(*self._in_flight)

    async def _commit(self, committer: GroupCommitter, batch: list[_Job]) -> None:
        try:
            outcomes: list[Outcome] = await asyncio.to_thread(
                committer.run, [j.submitted for j in batch]
            )
        except Exception as e:  # the committer itself failed: nothing is answered as done
            log.exception("handlers.batch_failed", size=len(batch))
            outcomes = [e] * len(batch)
        finally:
            self._free.put_nowait(committer)
        self.batches += 1
        self.commands += len(batch)
        for j, outcome in zip(batch, outcomes, strict=True):
            await self._reply(j.request, outcome, j)

    async def _reply(self, request: Request, outcome: Outcome, job: _Job | None = None) -> None:
        try:
            if isinstance(outcome, CommandResult):
                await request.respond(_encode(ok_reply(outcome)))
                if job is not None:
                    log.debug(
                        "command.done",
                        command=job.submitted.command.command_name(),
                        command_id=job.submitted.ctx.command_id,
                        correlation_id=job.submitted.ctx.correlation_id,
                        positions=outcome.positions,
                        ms=round((time.perf_counter() - job.received) * 1000, 2),
                    )
                return
            body = reply_for(outcome)
            if job is not None:
                log.info(
                    "command.refused",
                    command=job.submitted.command.command_name(),
                    code=body.error.code,
                    command_id=job.submitted.ctx.command_id,
                    correlation_id=job.submitted.ctx.correlation_id,
                )
            await request.respond_error(
                status_of(outcome),
                body.error.message.replace("\r", " ").replace("\n", " ")[:500],
                _encode(body),
                headers={"Crm-Error-Code": body.error.code},
            )
        except Exception as e:  # the client went away; the command's outcome stands
            log.warning("command.reply_failed", error=str(e))


async def serve_handlers(
    engine: Engine, nc: Client, stop: asyncio.Event, **options: Any
) -> CommandService:
    """Run the command service until `stop` is set; every taken command is answered."""
    service = CommandService(engine, nc, **options)
    await service.start()
    await stop.wait()
    await service.stop()
    return service
