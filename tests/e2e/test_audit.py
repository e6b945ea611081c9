"""`crm audit stream|customer` as a user runs it: who changed what, when (business and record
time), through which command and chain of commands; never a customer's personal data.

Runs `python -m infra.cli audit ...` in a real process once `crm` has the `audit` group, and
the audit app in-process before that."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

import pytest
from typer.testing import CliRunner

from handlers.decision import CommandContext
from infra.clock import FixedClock
from infra.engine import Engine, open_engine

ROOT = Path(__file__).resolve().parents[2]
NOW = datetime(2026, 6, 1, 12, tzinfo=UTC)
NAME, EMAIL, PHONE = "Zelda Quixwhirl", "zelda.quixwhirl@example.org", "+49 30 5550 1234"
OTHER_NAME = "Quentin Vasterlund"
NEW_NAME = "Zelda Marrowind-Quixwhirl"
SECRETS = (NAME, EMAIL, PHONE, OTHER_NAME, NEW_NAME, "Quixwhirl", "Vasterlund", "5550 1234")


def _registered() -> bool:
    from infra.cli import app

    return any(g.name == "audit" for g in app.registered_groups)


def audit(url: str, *args: str) -> tuple[int, str]:
    """Exit code and output (stdout, then stderr) of `crm audit ARGS`."""
    env = {
        **os.environ,
        "CRM_STORE_URL": url,
        "CRM_ENV": "development",
        "CRM_NOW": NOW.isoformat(),
        "PYTHONPATH": str(ROOT),
        "COLUMNS": "300",
    }
    env.pop("CRM_MASTER_KEY", None)
    if _registered():
        proc = subprocess.run(
            [sys.executable, "-m", "infra.cli", "audit", *args],
            env=env,
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        return proc.returncode, proc.stdout + proc.stderr
    from infra.cli.audit import audit_app

    result = CliRunner().invoke(audit_app, list(args), env=env)
    if result.exception and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.output


class Story:
    """A customer registered on the web, a call, a stage change the call caused (same
    correlation), a meeting recorded late, a profile change, a duplicate merged in."""

    def __init__(self, engine: Engine) -> None:
        bus = engine.bus
        self.customer = uuid4()
        self.duplicate = uuid4()
        anna = CommandContext(actor="employee:anna", channel="web")

        def run(name: str, data: dict[str, Any], ctx: CommandContext) -> list[int]:
            return bus.execute_json(name, data, ctx).positions

        c = str(self.customer)
        run(
            "customer.register",
            {
                "customer_id": c,
                "name": NAME,
                "email": EMAIL,
                "phone": PHONE,
                "occurred_at": "2026-05-01T09:00:00Z",
            },
            CommandContext(actor="employee:anna", channel="web", command_id="reg-1"),
        )
        self.call = run(
            "interaction.log_call",
            {
                "customer_id": c,
                "direction": "in",
                "duration_min": 12,
                "notes": f"{NAME} called about the invoice",
                "occurred_at": "2026-05-10T10:00:00Z",
            },
            CommandContext(
                actor="employee:bob", channel="call", command_id="call-1", correlation_id="case-7"
            ),
        )
        run(
            "customer.change_stage",
            {"customer_id": c, "stage": "prospect", "occurred_at": "2026-05-10T10:05:00Z"},
            CommandContext(
                actor="service:qualifier",
                channel="system",
                command_id="stage-1",
                correlation_id="case-7",
                causation_id="call-1",
            ),
        )
        self.late = run(
            "interaction.log_meeting",
            {"customer_id": c, "duration_min": 45, "occurred_at": "2026-05-03T15:00:00Z"},
            CommandContext(actor="import:calendar", channel="import", command_id="meet-1"),
        )
        run(
            "customer.update_profile",
            {"customer_id": c, "name": NEW_NAME, "income_band": "B"},
            CommandContext(actor="employee:anna", channel="manual", command_id="prof-1"),
        )
        run(
            "customer.register",
            {"customer_id": str(self.duplicate), "name": OTHER_NAME},
            anna,
        )
        self.duplicate_call = run(
            "interaction.log_call",
            {"customer_id": str(self.duplicate), "direction": "out", "duration_min": 3},
            anna,
        )
        run(
            "customer.merge",
            {"survivor_id": c, "merged_id": str(self.duplicate)},
            CommandContext(actor="employee:anna", channel="manual", command_id="merge-1"),
        )


@pytest.fixture
def story(store_url: str) -> Iterator[tuple[str, Story]]:
    with open_engine(store_url, env={}, clock=FixedClock(NOW)) as engine:
        story = Story(engine)
    yield store_url, story


def _no_secrets(output: str) -> None:
    for secret in SECRETS:
        assert secret not in output, f"{secret!r} printed by the audit"


class TestAuditCustomer:
    def test_json_has_who_how_when_command_and_chain(self, story: tuple[str, Story]) -> None:
        url, s = story
        code, out = audit(url, "customer", str(s.customer), "--format", "json")
        assert code == 0, out
        _no_secrets(out)
        trail = json.loads(out.splitlines()[0])
        assert set(trail["customers"]) == {str(s.customer), str(s.duplicate)}
        assert any("merged into" in n for n in trail["notes"])
        entries = trail["entries"]
        positions = [e["position"] for e in entries]
        assert positions == sorted(positions)
        by_type = {e["event_type"]: e for e in entries if e["customer_id"] == str(s.customer)}
        reg = by_type["customer.registered"]
        assert (reg["actor"], reg["channel"], reg["command"], reg["command_id"]) == (
            "employee:anna",
            "web",
            "customer.register",
            "reg-1",
        )
        assert reg["occurred_at"].startswith("2026-05-01T09:00:00")
        assert reg["recorded_at"] and reg["recorded_at"] > "2026-06"  # record time: the wall clock
        assert "name (personal)" in reg["changes"] and "email (personal)" in reg["changes"]
        stage = by_type["customer.stage_changed"]
        assert (stage["correlation_id"], stage["causation_id"], stage["depth"]) == (
            "case-7",
            "call-1",
            1,
        )
        assert stage["caused_by"] == "command interaction.log_call (call-1)"
        assert "stage=prospect" in stage["changes"]
        meeting = by_type["interaction.meeting_logged"]
        assert meeting["late"] is True and meeting["position"] == s.late[0]
        assert by_type["customer.profile_updated"]["changes"] == [
            "name (personal)",
            "income_band=B",
        ]
        assert s.duplicate_call[0] in positions  # the merged-in customer's own streams
        [chain] = [c for c in trail["chains"] if c["correlation_id"] == "case-7"]
        assert chain["commands"] == [
            "interaction.log_call (call-1)",
            "customer.change_stage (stage-1) <- command interaction.log_call (call-1)",
        ]

    def test_table_and_csv_never_show_personal_data_and_say_forgotten(
        self, story: tuple[str, Story]
    ) -> None:
        url, s = story
        for fmt in ("table", "csv"):
            code, out = audit(url, "customer", str(s.customer), "--format", fmt)
            assert code == 0, out
            _no_secrets(out)
            assert "customer.change_stage" in out and "employee:bob" in out
        with open_engine(url, env={}, clock=FixedClock(NOW)) as engine:
            engine.bus.execute_json(
                "customer.forget",
                {"customer_id": str(s.customer)},
                CommandContext(actor="employee:dpo", channel="manual", command_id="forget-1"),
            )
        code, out = audit(url, "customer", str(s.customer), "--format", "json")
        assert code == 0, out
        _no_secrets(out)
        trail = json.loads(out.splitlines()[0])
        assert any(
            n.endswith("forgotten at position " + str(trail["entries"][-1]["position"]))
            for n in trail["notes"]
        )
        reg = next(e for e in trail["entries"] if e["event_type"] == "customer.registered")
        assert reg["forgotten"] is True and "name: forgotten" in reg["changes"]
        code, out = audit(url, "customer", str(s.customer))
        assert code == 0 and "forgotten" in out
        _no_secrets(out)

    def test_paging_with_after_and_limit(self, story: tuple[str, Story]) -> None:
        url, s = story
        _, out = audit(url, "customer", str(s.customer), "--format", "json", "--limit", "3")
        first = json.loads(out.splitlines()[0])
        assert (
            len(first["entries"]) == 3 and first["next_after"] == first["entries"][-1]["position"]
        )
        _, out = audit(
            url,
            "customer",
            str(s.customer),
            "--format",
            "json",
            "--after",
            str(first["next_after"]),
        )
        rest = json.loads(out.splitlines()[0])
        assert rest["next_after"] is None
        assert min(e["position"] for e in rest["entries"]) > first["next_after"]
        _, out = audit(url, "customer", str(s.customer), "--format", "json")
        whole = json.loads(out.splitlines()[0])
        assert whole["entries"] == first["entries"] + rest["entries"]


class TestAuditStream:
    def test_a_stream_alone_in_version_order(self, story: tuple[str, Story]) -> None:
        url, s = story
        code, out = audit(url, "stream", str(s.customer), "--format", "json")
        assert code == 0, out
        _no_secrets(out)
        trail = json.loads(out.splitlines()[0])
        assert {e["stream_id"] for e in trail["entries"]} == {str(s.customer)}
        assert [e["version"] for e in trail["entries"]] == list(range(1, len(trail["entries"]) + 1))
        assert [e["event_type"] for e in trail["entries"]][:2] == [
            "customer.registered",
            "customer.stage_changed",
        ]
        assert trail["entries"][0]["stream_type"] == "customer"
        code, out = audit(url, "stream", str(UUID(int=0)))
        assert code == 0 and "0 changes" in out
