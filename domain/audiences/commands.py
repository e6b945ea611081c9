"""Commands on audiences: define, change (a new rule version), retire. The rule comes as text
(`docs/audiences.md`); the decision parses and checks it."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import msgspec

from domain.commands import Command

Name = Annotated[str, msgspec.Meta(min_length=1, max_length=100)]
RuleText = Annotated[str, msgspec.Meta(min_length=1, max_length=10_000)]


class AudienceCommand(Command, frozen=True, kw_only=True):
    occurred_at: datetime | None = None


class DefineAudience(AudienceCommand, frozen=True, kw_only=True, tag="audience.define"):
    name: Name
    rule: RuleText


class ChangeAudience(AudienceCommand, frozen=True, kw_only=True, tag="audience.change"):
    """A new version of the rule: membership is evaluated again under it."""

    name: Name
    rule: RuleText


class RetireAudience(AudienceCommand, frozen=True, kw_only=True, tag="audience.retire"):
    name: Name
