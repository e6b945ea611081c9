"""Named errors of campaigns; `code` is stable for replies and logs."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from uuid import UUID

from domain.errors import DomainError


class CampaignError(DomainError):
    code = "campaign_error"


class CampaignNotFound(CampaignError):
    code = "campaign_not_found"

    def __init__(self, campaign_id: UUID) -> None:
        super().__init__(f"campaign {campaign_id} is not defined")
        self.campaign_id = campaign_id


class CampaignAlreadyDefined(CampaignError):
    """A campaign's id is derived from its name, so a name is defined once."""

    code = "campaign_already_defined"

    def __init__(self, name: str, campaign_id: UUID) -> None:
        super().__init__(f"a campaign named {name!r} is already defined ({campaign_id})")
        self.name = name
        self.campaign_id = campaign_id


class CampaignIsRetired(CampaignError):
    code = "campaign_retired"

    def __init__(self, campaign_id: UUID) -> None:
        super().__init__(f"campaign {campaign_id} is retired; it cannot be launched")
        self.campaign_id = campaign_id


class HoldoutShareOutOfRange(CampaignError):
    code = "holdout_share_out_of_range"

    def __init__(self, share: float, most: float) -> None:
        super().__init__(f"holdout share {share} is outside 0..{most}")
        self.share = share


class UnknownChannel(CampaignError):
    code = "unknown_channel"

    def __init__(self, channel: str, known: Iterable[str]) -> None:
        super().__init__(f"no channel {channel!r}; known: {', '.join(sorted(known))}")
        self.channel = channel


class InvalidSchedule(CampaignError):
    code = "invalid_schedule"

    def __init__(self, start: datetime, end: datetime) -> None:
        super().__init__(f"the schedule ends ({end.isoformat()}) before it starts ({start})")


class OutsideSchedule(CampaignError):
    code = "outside_schedule"

    def __init__(
        self, campaign_id: UUID, at: datetime, start: datetime | None, end: datetime | None
    ) -> None:
        super().__init__(
            f"campaign {campaign_id} runs from {start or 'any time'} to {end or 'any time'}; "
            f"{at.isoformat()} is outside"
        )
        self.campaign_id = campaign_id
        self.at = at


class LaunchBeforeLast(CampaignError):
    """A campaign's launches move forward in business time (DESIGN.md, "Time")."""

    code = "event_before_last"

    def __init__(self, campaign_id: UUID, last: datetime, at: datetime) -> None:
        super().__init__(
            f"{at.isoformat()} is before the last launch or definition of {campaign_id} ({last})"
        )
        self.campaign_id = campaign_id
        self.last = last
        self.at = at


class NotSentTo(CampaignError):
    """Responses come only from customers the campaign messaged (the holdout got nothing)."""

    code = "not_sent_to"

    def __init__(self, campaign_id: UUID, customer_id: UUID) -> None:
        super().__init__(f"campaign {campaign_id} sent nothing to customer {customer_id}")
        self.campaign_id = campaign_id
        self.customer_id = customer_id


class ResponseBeforeSend(CampaignError):
    code = "response_before_send"

    def __init__(self, campaign_id: UUID, customer_id: UUID, sent_at: datetime, at: datetime):
        super().__init__(
            f"customer {customer_id} was first sent campaign {campaign_id} at {sent_at}; "
            f"a response at {at.isoformat()} is earlier"
        )
        self.campaign_id = campaign_id
        self.customer_id = customer_id
