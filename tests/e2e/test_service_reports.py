"""`crm satisfaction|service|equipment report`, `crm reminders list` and `crm recommend` as a
user runs them, over a small generated history with service in it."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from handlers.decision import CommandContext
from handlers.importer import Importer
from infra.clock import FixedClock
from infra.engine import open_engine
from infra.history import HistoryConfig, history, population
from infra.projector import open_runner
from projections.offers_view import recommend
from tests.e2e.test_reports import CRM, ROOT

NOW = datetime(2026, 5, 1, 12, tzinfo=UTC)


def crm(url: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "CRM_STORE_URL": url, "CRM_NOW": NOW.isoformat(), "PYTHONPATH": str(ROOT)}
    env.pop("CRM_MASTER_KEY", None)
    return subprocess.run(
        [*CRM, *args], env=env, cwd=ROOT, capture_output=True, text=True, timeout=120, check=False
    )


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    """A store with a year of history for 150 customers, and one customer who gets offers."""
    url = f"sqlite:///{tmp_path_factory.mktemp('svc')}/crm.db"
    config = HistoryConfig(now=NOW, customers=150, years=1.0, seed=3)
    with open_engine(url, env={}, clock=FixedClock(NOW)) as engine:
        report = Importer(engine.bus, engine.store, batch_size=2000).run(
            history(config), CommandContext(actor="import:test", channel="import")
        )
        assert not report.errors, report.errors[:3]
        with open_runner(engine) as runner:
            runner.catch_up()
            chosen = next(
                c.customer_id
                for c in population(config)
                if recommend(runner.db, c.customer_id, now=NOW, top=3)
            )
    yield url, str(chosen)


def tables(stdout: str) -> list[list[dict[str, Any]]]:
    return [json.loads(line) for line in stdout.splitlines() if line.strip()]


def test_satisfaction_service_and_equipment_reports_with_charts(
    store: tuple[str, str], tmp_path: Path
) -> None:
    url, _ = store
    out = crm(url, "satisfaction", "report", "--format", "json")
    assert out.returncode == 0, out.stderr
    per_month = tables(out.stdout)[0]
    assert per_month and all(-100 <= (r["nps"] or 0) <= 100 for r in per_month)
    assert sum(r["nps answers"] for r in per_month) > 0
    nps = tmp_path / "nps.png"
    out = crm(url, "satisfaction", "report", "--period", "week", "--chart", str(nps))
    assert out.returncode == 0, out.stderr
    assert "per week" in out.stdout and nps.stat().st_size > 10_000
    sla = tmp_path / "sla.png"
    out = crm(url, "service", "report", "--chart", str(sla))
    assert out.returncode == 0, out.stderr
    assert "SLA compliance" in out.stdout and sla.stat().st_size > 10_000
    out = crm(url, "service", "report", "--format", "csv", "--as-of", "2026-01-31")
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("agent,open,by severity")
    fails = tmp_path / "failures.png"
    out = crm(url, "equipment", "report", "--chart", str(fails))
    assert out.returncode == 0, out.stderr
    assert "failures per model" in out.stdout and fails.stat().st_size > 10_000
    bad = crm(url, "satisfaction", "report", "--period", "fortnight")
    assert bad.returncode == 2 and "--period" in bad.stderr


def test_reminders_list_filter_and_complete(store: tuple[str, str]) -> None:
    url, _ = store
    out = crm(url, "reminders", "list", "--format", "json")
    assert out.returncode == 0, out.stderr
    (rows,) = tables(out.stdout)
    assert rows and all(r["due"] <= NOW.isoformat().replace("T", " ") for r in rows)
    employee = next(r["employee"] for r in rows if r["employee"] != "unassigned")
    out = crm(url, "reminders", "list", "--employee", employee, "--format", "json")
    (mine,) = tables(out.stdout)
    assert mine and {r["employee"] for r in mine} == {employee}
    key = mine[0]["key"]
    done = crm(url, "do", "reminder.complete", f"key={key}", "--actor", employee)
    assert done.returncode == 0, done.stderr
    out = crm(url, "reminders", "list", "--employee", employee, "--format", "json")
    assert key not in {r["key"] for r in tables(out.stdout)[0]}
    again = crm(url, "do", "reminder.complete", f"key={key}")
    assert again.returncode != 0 and "reminder_already_completed" in again.stderr + again.stdout
    later = crm(url, "reminders", "list", "--due-before", "2026-06-30", "--format", "json")
    assert len(tables(later.stdout)[0]) >= len(rows) - 1  # more fall due as time goes on


def test_recommend_with_reasons_and_presented_offers(store: tuple[str, str]) -> None:
    url, customer = store
    out = crm(url, "recommend", customer, "--top", "3", "--format", "json")
    assert out.returncode == 0, out.stderr
    (offers,) = tables(out.stdout)
    assert 1 <= len(offers) <= 3 and all(o["reasons"] and o["channel"] for o in offers)
    out = crm(url, "recommend", customer, "--top", "3", "--present")
    assert out.returncode == 0, out.stderr
    assert f"{len(offers)} offers recorded as presented" in out.stdout
