"""The generated demo history, commerce included, imports through the bulk path with no
line refused (the domain's invariants are the judge), batch by batch and one by one."""

from __future__ import annotations

import tempfile
from datetime import UTC, datetime

import pytest

from handlers.decision import CommandContext
from handlers.importer import Importer
from infra.engine import open_engine
from infra.history import HistoryConfig, history

NOW = datetime(2026, 5, 1, 12, tzinfo=UTC)
COMMERCE = (b'{"command":"order.', b'{"command":"deal.', b'{"command":"subscription.')


@pytest.fixture(scope="module")
def small() -> list[bytes]:
    return list(history(HistoryConfig(now=NOW, customers=150, years=1.0, seed=11)))


def run_import(lines: list[bytes], batch_size: int, *, pipeline: bool) -> list[object]:
    with (
        tempfile.TemporaryDirectory() as tmp,
        open_engine(f"sqlite:///{tmp}/crm.db", env={}) as engine,
    ):
        importer = Importer(engine.bus, engine.store, batch_size=batch_size, pipeline=pipeline)
        report = importer.run(lines, CommandContext(actor="import", channel="import"))
        return list(report.errors)


class TestImport:
    def test_a_small_history_imports_through_the_bulk_path(self, small: list[bytes]) -> None:
        assert run_import(small, 5000, pipeline=True) == []

    def test_every_line_of_a_small_history_is_accepted_one_by_one(self) -> None:
        """The always-correct path (each batch lands before the next is decided): the
        domain's invariants accept every line."""
        lines = list(history(HistoryConfig(now=NOW, customers=40, years=1.0, seed=3)))
        assert sum(x.startswith(COMMERCE) for x in lines) > 200
        assert run_import(lines, 1, pipeline=False) == []
