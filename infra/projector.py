"""The projector's composition: the runner over this engine's store, every projection."""

from __future__ import annotations

from infra.engine import Engine
from infra.projection_db import projection_db
from projections.catalogue import all_projections
from projections.queries import Views
from projections.runner import PAGE, Policy, Runner


def open_runner(
    engine: Engine, *, page: int = PAGE, policies: dict[str, Policy] | None = None
) -> Runner:
    """A runner with its tables and checkpoint rows in place (nothing applied yet)."""
    runner = Runner(
        projection_db(engine.store),
        engine.store,
        all_projections(),
        engine.clock,
        page=page,
        policies=policies,
    )
    runner.setup()
    return runner


def views(runner: Runner) -> Views:
    return Views(runner.db)
