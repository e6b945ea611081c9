from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from infra.store.backends import open_store
from infra.store.event_store import EventStore
from projections import audiences
from tests.pg import fresh_schema, pg_url_with_schema

BACKENDS = ["sqlite", "postgresql"]


@pytest.fixture(params=BACKENDS)
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A URL to an empty store; every test that uses it runs on both backends."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path}/crm.db"
    else:
        with fresh_schema("store") as schema:
            yield pg_url_with_schema(schema)


@pytest.fixture
def store(store_url: str) -> Iterator[EventStore]:
    s = open_store(store_url, env={})
    try:
        yield s
    finally:
        s.close()


@pytest.fixture(scope="module")
def typed_facts_on_sqlite() -> Iterator[None]:
    """Audiences keep their typed fact rows (the compiled path) on SQLite too, for a module
    that checks the compiled path on both backends; the engine keeps them on PostgreSQL only."""
    added = "sqlite" not in audiences.TYPED_FACTS
    audiences.TYPED_FACTS.add("sqlite")
    yield
    if added:
        audiences.TYPED_FACTS.discard("sqlite")
