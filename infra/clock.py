"""The clock port's implementations: the real clock, or a fixed one from `CRM_NOW`."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

from infra.errors import ConfigurationError


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)


@dataclass
class FixedClock:
    """A clock that says what it is told (tests, replays): `CRM_NOW=2026-11-23T12:00:00Z`."""

    at: datetime

    def now(self) -> datetime:
        return self.at

    def advance_to(self, at: datetime) -> None:
        self.at = at


def clock_from_env(env: Mapping[str, str]) -> SystemClock | FixedClock:
    raw = env.get("CRM_NOW", "").strip()
    if not raw:
        return SystemClock()
    try:
        at = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        raise ConfigurationError(
            f"CRM_NOW={raw!r} is not an ISO time such as 2026-11-23T12:00:00Z"
        ) from None
    return FixedClock(at if at.tzinfo else at.replace(tzinfo=UTC))
