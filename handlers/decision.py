"""What a handler returns: the events to append (as envelopes) and the contacts to claim."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from uuid import UUID

import msgspec

from domain.envelope import Envelope
from domain.events import DomainEvent
from handlers.ports import ContactClaim


class CommandContext(msgspec.Struct, frozen=True, kw_only=True):
    """Who sent the command and how: copied onto every event it causes."""

    actor: str = "system"
    channel: str = "system"
    command_id: str | None = None
    correlation_id: str | None = None
    causation_id: str | None = None


@dataclass(slots=True)
class Decision:
    events: list[Envelope] = field(default_factory=list)
    claims: Sequence[ContactClaim] = ()  # set whole by the handler that claims
    releases: Sequence[ContactClaim] = ()
    forget: UUID | None = None

    def add(
        self,
        ctx: CommandContext,
        *,
        stream_id: UUID,
        stream_type: str,
        after_version: int,
        payloads: Sequence[DomainEvent],
        occurred_at: datetime,
        customer_id: UUID | None,
        channel: str | None = None,
    ) -> Decision:
        """Append `payloads` to a stream whose current version is `after_version`."""
        for i, payload in enumerate(payloads, start=1):
            self.events.append(
                Envelope(
                    stream_id=stream_id,
                    stream_type=stream_type,
                    version=after_version + i,
                    occurred_at=occurred_at,
                    payload=payload,
                    customer_id=customer_id,
                    actor=ctx.actor,
                    channel=channel or ctx.channel,
                    correlation_id=ctx.correlation_id or ctx.command_id,
                    causation_id=ctx.causation_id,
                    command_id=ctx.command_id,
                )
            )
        return self
