"""Every table command can print a table, JSON or CSV (`--format`)."""

from __future__ import annotations

import csv
import enum
import io
import json
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import msgspec
import typer
from rich.console import Console
from rich.table import Table

from domain.errors import DomainError
from handlers.errors import CommandRejected
from handlers.replies import error_reply


class Format(enum.StrEnum):
    table = "table"
    json = "json"
    csv = "csv"


def emit(
    console: Console, title: str, columns: Sequence[str], rows: Sequence[Sequence[Any]], fmt: Format
) -> None:
    if fmt is Format.json:
        sys.stdout.write(
            json.dumps([dict(zip(columns, r, strict=True)) for r in rows], default=str) + "\n"
        )
    elif fmt is Format.csv:
        buf = io.StringIO()
        writer = csv.writer(buf)
        writer.writerow(columns)
        writer.writerows(rows)
        sys.stdout.write(buf.getvalue())
    else:
        table = Table(title=title)
        for c in columns:
            table.add_column(c)
        for r in rows:
            table.add_row(*("" if v is None else str(v) for v in r))
        console.print(table)


def pct(x: float | None) -> str:
    """A share as a percentage with one decimal; blank when there is none."""
    return "" if x is None else f"{x:.1%}"


@contextmanager
def refusals_as_replies() -> Iterator[None]:
    """A refused command or query prints its typed error reply as JSON and exits with 1."""
    try:
        yield
    except (DomainError, CommandRejected) as e:
        sys.stdout.write(msgspec.json.encode(error_reply(e)).decode() + "\n")
        raise typer.Exit(1) from None
