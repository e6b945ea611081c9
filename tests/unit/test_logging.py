from __future__ import annotations

import io
import json
import sys

import pytest
import structlog

from infra.logging import configure_logging, renderer_name


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


class TestLogging:
    def test_json_when_not_a_terminal(
        self, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
    ) -> None:
        monkeypatch.setattr(sys, "stderr", io.StringIO())
        configure_logging()
        assert renderer_name() == "JSONRenderer"
        structlog.get_logger().warning("stored", position=5, correlation_id="c-1")
        line = sys.stderr.getvalue().strip()
        assert json.loads(line) | {"timestamp": None} == {
            "event": "stored",
            "position": 5,
            "correlation_id": "c-1",
            "level": "warning",
            "timestamp": None,
        }

    def test_console_in_a_terminal(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setattr(sys, "stderr", _Tty())
        configure_logging()
        assert renderer_name() == "ConsoleRenderer"
