from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from infra.store.backends import open_store
from infra.store.event_store import EventStore
from tests.pg import fresh_schema, pg_url_with_schema

BACKENDS = ["sqlite", "postgresql"]


@pytest.fixture
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A URL to an empty store on the backend the test is parametrised with."""
    backend = getattr(request, "param", "sqlite")
    if backend == "sqlite":
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


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Every test that uses a store runs on both backends, unless it picks one itself."""
    if "store_url" in metafunc.fixturenames and "store_url" not in metafunc.fixturenames[:0]:
        marker = metafunc.definition.get_closest_marker("backends")
        backends = marker.args if marker else BACKENDS
        if not any(
            p
            for p in metafunc.definition.iter_markers("parametrize")
            if "store_url" in str(p.args[0])
        ):
            metafunc.parametrize("store_url", backends, indirect=True)
