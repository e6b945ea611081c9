"""Read-your-writes: a query given `min_position` waits until its views have applied it.

A client that just sent a command gets the command's positions back; passing the last one as
`min_position` makes the query wait (up to a timeout) until every view it reads has applied
that position, so it never reads a view older than its own write.
"""

from __future__ import annotations

import time
from collections.abc import Iterable

from projections.errors import ProjectionError
from projections.ports import ProjectionDB
from projections.projection import _resolve


class ViewNotCaughtUp(ProjectionError):
    """The views did not reach the position in time (the projector is behind or stopped)."""

    code = "view_not_caught_up"

    def __init__(self, views: list[str], position: int, reached: int) -> None:
        super().__init__(
            f"{', '.join(views)} reached position {reached}, not {position}, in time; "
            "is `crm serve projector` running? (`crm projections status`)"
        )
        self.position = position
        self.reached = reached


def applied(db: ProjectionDB, views: Iterable[str]) -> int:
    """The lowest checkpoint among these projections (0 if one has none yet)."""
    names = list(views)
    test, as_list = db.dialect.any_of("name", len(names))
    rows = db.fetch(
        _resolve(
            f"SELECT name, position FROM {{crm_projections}} WHERE {test}",
            {"crm_projections": db.dialect.qualify("crm_projections")},
            db.dialect,
        ),
        [names] if as_list else names,
    )
    found = {name: int(position) for name, position in rows}
    return min((found.get(n, 0) for n in names), default=0)


def wait_until_applied(
    db: ProjectionDB, views: Iterable[str], position: int | None, timeout: float = 5.0
) -> None:
    """Return once every view in `views` has applied `position`; ViewNotCaughtUp after
    `timeout` seconds. `None` returns at once (no wait asked)."""
    if position is None:
        return
    names = list(views)
    deadline = time.monotonic() + timeout
    while (reached := applied(db, names)) < position:
        left = deadline - time.monotonic()
        if left <= 0:
            raise ViewNotCaughtUp(names, position, reached)
        db.wait(min(0.05, left))
