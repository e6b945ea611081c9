"""The `crm` command as a user runs it: real processes, real stores."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from uuid import uuid4

import pytest

CRM = [sys.executable, "-m", "infra.cli"]
ROOT = Path(__file__).resolve().parents[2]


def crm(
    *args: str, url: str, cwd: Path | None = None, check: bool = True
) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "CRM_STORE_URL": url, "CRM_ENV": "development", "PYTHONPATH": str(ROOT)}
    env.pop("CRM_MASTER_KEY", None)
    proc = subprocess.run(
        [*CRM, *args],
        check=False,
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd or ROOT,
        timeout=120,
    )
    if check and proc.returncode not in (0, 1):
        raise AssertionError(f"crm {args} exited {proc.returncode}: {proc.stderr}")
    return proc


class TestManualEntry:
    def test_do_records_the_actor_and_answers_json(self, store_url: str) -> None:
        cid = str(uuid4())
        out = crm(
            "do",
            "customer.register",
            f"customer_id={cid}",
            "name=Ada Lovelace",
            "--actor",
            "employee:e-9",
            "--command-id",
            "m-1",
            url=store_url,
        )
        reply = json.loads(out.stdout)
        assert reply["ok"] is True and reply["streams"] == [{"id": cid, "version": 1}]
        again = json.loads(
            crm(
                "do",
                "customer.register",
                f"customer_id={cid}",
                "name=Ada Lovelace",
                "--command-id",
                "m-1",
                url=store_url,
            ).stdout
        )
        assert again == reply
        call = crm(
            "do",
            "interaction.log_call",
            f"customer_id={cid}",
            "direction=in",
            "duration_min=12.5",
            url=store_url,
        )
        assert json.loads(call.stdout)["ok"] is True

        from infra.store.backends import open_store

        store = open_store(store_url, env={})
        try:
            events = store.read(0)
        finally:
            store.close()
        assert (events[0].type, events[0].actor, events[0].channel) == (
            "customer.registered",
            "employee:e-9",
            "manual",
        )
        assert events[1].payload.duration_min == 12.5  # type: ignore[attr-defined]

    def test_a_rejected_command_exits_1_with_a_typed_error(self, store_url: str) -> None:
        out = crm(
            "do",
            "interaction.log_call",
            "customer_id=not-a-uuid",
            "direction=in",
            "duration_min=1",
            url=store_url,
        )
        assert out.returncode == 1
        assert json.loads(out.stdout)["error"] == {
            "code": "invalid_command",
            "message": "interaction.log_call: field 'customer_id': Invalid UUID - at `$.customer_id`",
            "details": {"command": "interaction.log_call", "field": "customer_id"},
        }


@pytest.mark.parametrize("store_url", ["sqlite"], indirect=True)
class TestImportCommand:
    def test_import_reports_bad_lines_and_a_re_run_appends_nothing(
        self, store_url: str, tmp_path: Path
    ) -> None:
        cid = str(uuid4())
        lines = [
            {"command": "customer.register", "data": {"customer_id": cid, "name": "A"}},
            {
                "command": "interaction.log_meeting",
                "data": {"customer_id": cid, "duration_min": 45},
            },
            {
                "command": "interaction.log_meeting",
                "data": {"customer_id": cid, "duration_min": -5},
            },
        ]
        file = tmp_path / "in.jsonl"
        file.write_text("\n".join(json.dumps(x) for x in lines) + "\n")
        first = crm("import", str(file), "--format", "json", url=store_url)
        assert first.returncode == 1
        assert "2 commands appended" in first.stderr
        [rejected] = json.loads(first.stdout)
        assert (rejected["line"], rejected["field"], rejected["code"]) == (
            3,
            "duration_min",
            "invalid_command",
        )
        second = crm("import", str(file), url=store_url)
        assert "0 commands appended" in second.stderr and "2 already imported" in second.stderr


class TestSchema:
    def test_schema_lists_commands_events_and_replies(self) -> None:
        out = crm("schema", url="sqlite:///:memory:")
        doc = json.loads(out.stdout)
        assert {"customer.register", "interaction.log_call", "customer.forget"} <= set(
            doc["commands"]
        )
        assert doc["events"]["customer.registered"]["schema_version"] == 1
        assert set(doc["replies"]) == {"ok", "error"}
