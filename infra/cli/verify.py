"""`crm verify`: the seal chain, the unsealed tail, stream versions, decoding, anchors and the
views against a fresh rebuild (replay/verify.py says what each check does).

The rebuild goes into a scratch database of the store's own kind, so values compare as the
same driver returns them: a schema of its own on PostgreSQL (dropped afterwards), a temporary
file on SQLite. Exit 1 on any failure, naming the first bad position.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from uuid import uuid4

import psycopg
import typer
from eventsourcing.postgres import PostgresDatastore
from eventsourcing.sqlite import SQLiteDatastore
from psycopg.sql import SQL, Identifier
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from infra.cli.output import Format, emit
from infra.engine import open_engine
from infra.logging import configure_logging
from infra.nats.connect import NatsSettings
from infra.projection_db import PostgresProjectionDB, SqliteProjectionDB, projection_db
from infra.sealer import SealerConfig, fetch_anchors
from infra.store.event_store import EventStore
from infra.store.seal import seal_store
from projections.catalogue import all_projections
from replay.verify import Check, compare_projections, first_bad, scan_log

console = Console()
err_console = Console(stderr=True)


@contextmanager
def scratch_db(store: EventStore) -> Iterator[PostgresProjectionDB | SqliteProjectionDB]:
    """An empty projection database of the store's kind, removed afterwards."""
    backend: Any = store.backend
    if backend.name == "postgresql":
        live: PostgresDatastore = backend.datastore
        kwargs = dict(getattr(live.pool, "kwargs", {}) or {})
        schema = f"crm_verify_{uuid4().hex[:12]}"
        params = {
            k: str(kwargs[k])
            for k in ("dbname", "host", "port", "user", "password")
            if kwargs.get(k)
        }
        with psycopg.connect(autocommit=True, **params) as conn:  # type: ignore[arg-type]
            conn.execute(SQL("CREATE SCHEMA {0}").format(Identifier(schema)))
        datastore = PostgresDatastore(
            dbname=params.get("dbname", "postgres"),
            host=params.get("host", "127.0.0.1"),
            port=params.get("port", "5432"),
            user=params.get("user", ""),
            password=params.get("password", ""),
            schema=schema,
            pool_size=2,
        )
        try:
            yield PostgresProjectionDB(datastore, backend.standard.channel_name)
        finally:
            datastore.close()
            with psycopg.connect(autocommit=True, **params) as conn:  # type: ignore[arg-type]
                conn.execute(SQL("DROP SCHEMA IF EXISTS {0} CASCADE").format(Identifier(schema)))
        return
    with tempfile.TemporaryDirectory(prefix="crm-verify-") as tmp:
        datastore_ = SQLiteDatastore(str(Path(tmp) / "scratch.db"), lock_timeout=30)
        try:
            yield SqliteProjectionDB(datastore_)
        finally:
            datastore_.close()


def run_checks(
    store: EventStore,
    clock: Any,
    *,
    anchors: dict[int, bytes] | None,
    projections: bool = True,
    page: int = 20_000,
    progress: Progress | None = None,
) -> list[Check]:
    tasks: dict[str, Any] = {}

    def tick(step: str, done: int, total: int) -> None:
        if progress is None:
            return
        if step not in tasks:
            tasks[step] = progress.add_task(step, total=total)
        progress.update(tasks[step], completed=done, total=total)

    checks = scan_log(store, seal_store(store), anchors, page=page, progress=tick)
    if projections:
        live = projection_db(store)
        try:
            checks += compare_projections(
                live,
                store,
                all_projections(),
                clock,
                lambda: scratch_db(store),
                progress=tick,
                fixed_clock=bool(os.environ.get("CRM_NOW")),
            )
        finally:
            live.close()
    return checks


def _anchors() -> dict[int, bytes] | None:
    if not os.environ.get("CRM_NATS_URL"):
        return None
    return fetch_anchors(NatsSettings.from_env(name="crm-verify"), SealerConfig.from_env().stream)


def verify(
    fmt: Format = typer.Option(Format.table, "--format", help="table or json"),
    projections: bool = typer.Option(
        True, "--projections/--no-projections", help="Compare every view with a fresh rebuild."
    ),
    page: int = typer.Option(20_000, min=1, help="Log rows read per page."),
) -> None:
    """Check the sealed log (chain from genesis, unsealed tail, anchors in JetStream when
    CRM_NATS_URL is set), per-stream versions, that every event decodes, and that every view
    equals a fresh rebuild. Exit 1 on any failure, naming the first bad position."""
    with (
        open_engine() as engine,
        Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("positions"),
            TimeRemainingColumn(),
            console=err_console,
            transient=True,
        ) as progress,
    ):
        checks = run_checks(
            engine.store,
            engine.clock,
            anchors=_anchors(),
            projections=projections,
            page=page,
            progress=progress,
        )
    bad = first_bad(checks)
    ok = all(c.ok for c in checks)
    if fmt is Format.json:
        sys.stdout.write(
            json.dumps(
                {
                    "ok": ok,
                    "first_bad_position": bad,
                    "checks": [
                        {
                            "name": c.name,
                            "status": c.status,
                            "details": c.details,
                            "first_bad": c.first_bad,
                        }
                        for c in checks
                    ],
                }
            )
            + "\n"
        )
    elif fmt is Format.csv:
        emit(
            console,
            "crm verify",
            ("check", "status", "details", "first_bad"),
            [(c.name, c.status, c.details, c.first_bad) for c in checks],
            fmt,
        )
    else:
        table = Table(title="crm verify")
        for column in ("check", "status", "details"):
            table.add_column(column)
        colours = {"ok": "green", "failed": "red"}
        for c in checks:
            colour = colours.get(c.status, "yellow")
            table.add_row(c.name, f"[{colour}]{c.status}[/{colour}]", c.details)
        console.print(table)
        if not ok:
            where = f": first bad position {bad}" if bad is not None else ""
            console.print(f"[red]verify failed{where}[/red]")
    if not ok:
        raise typer.Exit(1)


def main() -> None:
    """`python -m infra.cli.verify`: the command on its own (`crm verify` once registered)."""
    configure_logging(os.environ.get("CRM_LOG_LEVEL", "WARNING"))
    typer.run(verify)


if __name__ == "__main__":
    main()
