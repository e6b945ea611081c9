"""The composition root: one store, the command bus over it, the clock."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from domain.catalogue import EVENTS
from handlers.bus import CommandBus
from handlers.deps import Deps
from handlers.ports import Clock
from infra.clock import clock_from_env
from infra.store.backends import open_store
from infra.store.event_store import EventStore


@dataclass
class Engine:
    store: EventStore
    bus: CommandBus
    clock: Clock

    def close(self) -> None:
        self.store.close()

    def __enter__(self) -> Engine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def open_engine(
    url: str | None = None, env: Mapping[str, str] | None = None, clock: Clock | None = None
) -> Engine:
    env = os.environ if env is None else env
    store = open_store(url, env, EVENTS)
    clock = clock or clock_from_env(env)
    return Engine(store=store, bus=CommandBus(Deps(log=store, clock=clock)), clock=clock)
