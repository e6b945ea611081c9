"""Errors of the projections layer, each with a stable code."""

from __future__ import annotations


class ProjectionError(Exception):
    code = "projection_error"


class UnknownProjection(ProjectionError):
    code = "unknown_projection"

    def __init__(self, name: str, known: list[str]) -> None:
        super().__init__(f"no projection named {name!r}; known: {', '.join(known)}")
        self.name = name


class ProjectionMoved(ProjectionError):
    """The checkpoint row changed under us (another runner, a rebuild): reload, go on."""

    code = "projection_moved"

    def __init__(self, name: str) -> None:
        super().__init__(f"projection {name} moved on in another process")
        self.name = name


class RebuildStopped(ProjectionError):
    """A rebuild met a poison event under the `stop` policy; the old generation still serves."""

    code = "rebuild_stopped"

    def __init__(self, name: str, position: int) -> None:
        super().__init__(
            f"rebuild of {name} stopped after position {position} at a poison event; "
            "see `crm projections status` for the dead letter"
        )
        self.name = name
        self.position = position
