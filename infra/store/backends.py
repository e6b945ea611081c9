"""Store selection by URL: the one place that maps a scheme to its backend."""

from __future__ import annotations

from collections.abc import Callable, Mapping

from domain.catalogue import EVENTS
from domain.events import EventRegistry
from infra.codec import EventCodec
from infra.crypto import BlindIndex, KeyRing, load_master_key
from infra.store.event_store import Backend, EventStore
from infra.store.postgres import PostgresBackend
from infra.store.sqlite import SqliteBackend
from infra.store.url import DEFAULT_STORE_URL, StoreURL, parse_store_url

BACKENDS: dict[str, Callable[[StoreURL], Backend]] = {
    "sqlite": SqliteBackend,
    "postgresql": PostgresBackend,
}


def open_backend(url: str) -> Backend:
    parsed = parse_store_url(url)
    return BACKENDS[parsed.scheme](parsed)


def open_store(
    url: str | None = None,
    env: Mapping[str, str] | None = None,
    registry: EventRegistry = EVENTS,
) -> EventStore:
    """The composition of a store from settings: backend by URL, keys from the master key."""
    import os

    env = os.environ if env is None else env
    backend = open_backend(url or env.get("CRM_STORE_URL") or DEFAULT_STORE_URL)
    try:
        master = load_master_key(env)
        keyring = KeyRing(backend.vault, master)
    except BaseException:
        backend.close()
        raise
    return EventStore(backend, EventCodec(registry, keyring), keyring, BlindIndex(master))
