"""`crm pipeline report` and `crm orders report` as a user runs them, as of a date, with charts."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

from infra.clock import FixedClock
from infra.engine import open_engine
from tests.integration.test_commerce_views import NOW, START, History

CRM = [sys.executable, "-m", "infra.cli"]
ROOT = Path(__file__).resolve().parents[2]


def crm(url: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "CRM_STORE_URL": url, "CRM_NOW": NOW.isoformat(), "PYTHONPATH": str(ROOT)}
    env.pop("CRM_MASTER_KEY", None)
    return subprocess.run(
        [*CRM, *args], env=env, cwd=ROOT, capture_output=True, text=True, timeout=120, check=False
    )


def test_reports_as_json_and_charts_as_of_a_date(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/crm.db"
    history = History(seed=9)
    with open_engine(url, env={}, clock=FixedClock(NOW)) as engine:
        history.feed(engine)
    cut = (START + timedelta(days=60)).date().isoformat()
    out = crm(url, "orders", "report", "--format", "json", "--as-of", cut)
    assert out.returncode == 0, out.stderr
    tables = [json.loads(line) for line in out.stdout.splitlines() if line.strip()]
    assert tables[0][0]["currency"] == "EUR" and tables[0][0]["orders"] > 0
    chart = tmp_path / "funnel.png"
    out = crm(url, "pipeline", "report", "--chart", str(chart))
    assert out.returncode == 0, out.stderr
    assert "conversion" in out.stdout and chart.stat().st_size > 10_000
    spend = tmp_path / "spend.png"
    assert crm(url, "orders", "report", "--chart", str(spend)).returncode == 0
    assert spend.stat().st_size > 10_000
    heat = tmp_path / "cohorts.png"
    out = crm(url, "retention", "report", "--chart", str(heat), "--as-of", cut)
    assert out.returncode == 0, out.stderr
    assert "repeat buyers" in out.stdout and heat.stat().st_size > 10_000
    forecast = tmp_path / "demand.png"
    out = crm(url, "demand", "report", "--period", "month", "--chart", str(forecast))
    assert out.returncode == 0, out.stderr
    assert "forecast (" in out.stdout and forecast.stat().st_size > 10_000
    bad = crm(url, "orders", "report", "--as-of", "last tuesday")
    assert bad.returncode == 2 and "--as-of" in bad.stderr
