"""`crm serve handlers|projector|relay|all`: the engine's roles as long-running processes.

Every role reads `CRM_STORE_URL`, `CRM_NATS_URL` and the NATS credentials (infra/nats/connect.py),
`CRM_NATS_PREFIX` (default `crm`: subjects `crm.cmd.>`, `crm.query.>`, `crm.view.>`,
`crm.evt.>`), `CRM_EVENTS_STREAM` (default `CRM_EVENTS`) and, for handlers, `CRM_COMMITTERS`
(batches decided and committed at once, default 2) and `CRM_MAX_BATCH` (default 128),
runs until SIGTERM or SIGINT and then stops cleanly: handlers answer every command they took,
the projector finishes its page (each page commits with its checkpoint), the relay waits for
the acknowledgements of what it published, the sealer seals what it read (and anchors its head
in JetStream `CRM_SEALS` when `CRM_NATS_URL` is set; it is the only role that runs without NATS).
"""

from __future__ import annotations

import asyncio
import gc
import os
import signal
import sys
from collections.abc import Awaitable, Callable, Mapping

import structlog

from infra.engine import open_engine
from infra.errors import ConfigurationError
from infra.nats.connect import NatsSettings, connect
from infra.nats.feed import run_projector_with_feed
from infra.nats.queries import QueryService
from infra.nats.relay import Relay, RelayConfig
from infra.nats.service import CommandService
from infra.projection_db import projection_db
from infra.projector import open_runner
from infra.sealer import SealerConfig, run_sealer

log = structlog.get_logger("crm.serve")

ROLES = ("handlers", "projector", "relay", "sealer")
NEEDS_NATS = ("handlers", "projector", "relay")  # the sealer anchors only when CRM_NATS_URL is set


def roles_of(role: str) -> tuple[str, ...]:
    if role == "all":
        return ROLES
    if role not in ROLES:
        raise ConfigurationError(f"unknown role {role!r}: one of {', '.join((*ROLES, 'all'))}")
    return (role,)


async def serve(roles: tuple[str, ...], env: Mapping[str, str] | None = None) -> None:
    """Run the roles in this process until a signal stops them."""
    env = os.environ if env is None else env
    tune_interpreter()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await run_roles(roles, stop, env)


def tune_interpreter() -> None:
    """Settings for a long-running server process, measured with bench/commands_nats.py.

    A thread that waits on the database or NATS gives up the interpreter lock and must take
    it back from a busy one: at the default switch interval (5 ms) each round trip of a group
    commit can cost milliseconds more; 1 ms keeps batches short. The collector is set to run
    its young passes less often and its full passes rarely: the objects built per command die
    young, and a full pass over a warm process (cached states) paused every reply (p99).
    """
    sys.setswitchinterval(0.001)
    gc.freeze()
    gc.set_threshold(50_000, 50, 100)


async def run_roles(roles: tuple[str, ...], stop: asyncio.Event, env: Mapping[str, str]) -> None:
    settings = NatsSettings.from_env(env, name=f"crm-{'-'.join(roles)}")
    engine = open_engine(env=env)
    bus = any(r in NEEDS_NATS for r in roles) or bool(env.get("CRM_NATS_URL"))
    nc = await connect(settings) if bus else None
    prefix = env.get("CRM_NATS_PREFIX") or "crm"
    structlog.contextvars.bind_contextvars(roles=",".join(roles))
    try:
        tasks: list[asyncio.Task[object]] = []
        if "sealer" in roles:
            anchor = nc if env.get("CRM_NATS_URL") else None
            tasks.append(
                asyncio.create_task(
                    run_sealer(engine.store, stop, anchor, SealerConfig.from_env(env))
                )
            )
        if "handlers" in roles:
            assert nc is not None
            service = CommandService(
                engine,
                nc,
                prefix=prefix,
                name="crm" if prefix == "crm" else prefix,
                committers=int(env.get("CRM_COMMITTERS") or 2),
                max_batch=int(env.get("CRM_MAX_BATCH") or 128),
            )
            await service.start()
            tasks.append(asyncio.create_task(_until(stop, service.stop)))
        if "projector" in roles:
            assert nc is not None
            runner = open_runner(engine)
            upgraded = await asyncio.to_thread(runner.upgrade)  # blue/green: new view versions
            if upgraded:
                log.info("projector.upgraded", projections=upgraded)
            tasks.append(
                asyncio.create_task(run_projector_with_feed(runner, nc, stop, prefix=prefix))
            )
            queries = QueryService(projection_db(engine.store), prefix=prefix)
            await queries.start(nc)
            tasks.append(asyncio.create_task(_until(stop, queries.stop)))
        if "relay" in roles:
            assert nc is not None
            stream = env.get("CRM_EVENTS_STREAM") or (
                "CRM_EVENTS" if prefix == "crm" else f"{prefix.upper()}_EVENTS"
            )
            relay = Relay(
                engine.store, nc, RelayConfig(stream=stream, subject_prefix=f"{prefix}.evt")
            )
            tasks.append(asyncio.create_task(relay.run(stop)))
        log.info("serve.started", roles=list(roles), nats=list(settings.servers) if nc else None)
        await asyncio.gather(*tasks)
    finally:
        if nc is not None:
            await nc.drain()
        engine.close()
        log.info("serve.stopped", roles=list(roles))


async def _until(stop: asyncio.Event, then: Callable[[], Awaitable[None]]) -> None:
    await stop.wait()
    await then()
