"""structlog set-up: a console renderer in a terminal, JSON lines otherwise."""

from __future__ import annotations

import logging
import sys

import structlog


def _stderr_logger(*_args: object) -> structlog.PrintLogger:
    """A logger on whatever `sys.stderr` is when a line is written, not the stream that was
    there at configuration (a CLI invoked in-process, as tests do, closes its own)."""
    return structlog.PrintLogger(file=sys.stderr)


def configure_logging(level: str = "INFO", *, json: bool | None = None) -> None:
    """Call once at process start. `json=None` picks JSON unless stderr is a terminal."""
    as_json = not sys.stderr.isatty() if json is None else json
    renderer: structlog.types.Processor = (
        structlog.processors.JSONRenderer() if as_json else structlog.dev.ConsoleRenderer()
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.StackInfoRenderer(),
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level.upper())),
        logger_factory=_stderr_logger,
        cache_logger_on_first_use=False,
    )


def renderer_name() -> str:
    """Which renderer is configured (for tests and `crm` diagnostics)."""
    processors = structlog.get_config()["processors"]
    return type(processors[-1]).__name__
