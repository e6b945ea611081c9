"""The canonical form contact uniqueness is judged on (pure)."""

from __future__ import annotations

import re

_NON_DIGITS = re.compile(r"[^0-9]")


def normalise_contact(kind: str, value: str) -> str:
    """E-mail case-folded and trimmed; phone digits only, keeping a leading +."""
    if kind == "email":
        return value.strip().casefold()
    if kind == "phone":
        digits = _NON_DIGITS.sub("", value)
        return ("+" if value.strip().startswith("+") else "") + digits
    raise ValueError(f"unknown contact kind {kind!r}")
