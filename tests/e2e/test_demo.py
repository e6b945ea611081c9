"""`crm demo` as a newcomer runs it: its own store, built from empty, twice in a row."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

CRM = [sys.executable, "-m", "infra.cli"]
ROOT = Path(__file__).resolve().parents[2]


def demo(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "COLUMNS": "200"}
    env.pop("CRM_STORE_URL", None)
    env.pop("CRM_MASTER_KEY", None)
    return subprocess.run(
        [*CRM, "demo", "--customers", "60", "--years", "0.5", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def test_demo_builds_its_store_projects_it_and_runs_again(tmp_path: Path) -> None:
    first = demo(tmp_path)
    assert first.returncode == 0, first.stderr
    assert (tmp_path / "demo-out" / "crm-demo.db").exists()
    for expected in ("customer_profile: position", "timeline, newest first", "crm customer show"):
        assert expected in first.stdout
    assert "0 dead letters" in first.stdout
    second = demo(tmp_path)
    assert second.returncode == 0, second.stderr


def test_demo_never_wipes_a_store_it_did_not_create(tmp_path: Path) -> None:
    (tmp_path / "demo-out").mkdir()
    (tmp_path / "demo-out" / "crm-demo.db").write_bytes(b"someone's data")
    refused = demo(tmp_path)
    assert refused.returncode == 2
    assert (tmp_path / "demo-out" / "crm-demo.db").read_bytes() == b"someone's data"
