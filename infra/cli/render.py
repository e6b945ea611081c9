"""A customer as the views show it: profile, counts per channel, timeline (CLI and demo)."""

from __future__ import annotations

from uuid import UUID

from rich.console import Console

from infra.cli.output import Format, emit
from projections.queries import Views


class CustomerNotInViews(LookupError):
    def __init__(self, customer_id: UUID) -> None:
        super().__init__(f"no customer {customer_id} in customer_profile")
        self.customer_id = customer_id


def show_profile(
    console: Console, views: Views, customer_id: UUID, limit: int = 20, fmt: Format = Format.table
) -> None:
    profile = views.profile(customer_id)
    if profile is None:
        raise CustomerNotInViews(customer_id)
    fields = [
        ("customer_id", profile.customer_id),
        ("kind", profile.kind),
        ("name", profile.name),
        ("stage", profile.stage),
        ("source", profile.source),
        ("gender", profile.gender),
        ("age", profile.age),
        ("income_band", profile.income_band),
        ("purpose", profile.purpose),
        ("contacts", ", ".join(f"{c['kind']}: {c['value']}" for c in profile.contacts)),
        ("consents", ", ".join(f"{c['channel']}/{c['purpose']}" for c in profile.consents)),
        (
            "organisations",
            ", ".join(f"{o['organisation_id']} ({o['role']})" for o in profile.organisations),
        ),
        (
            "contact_persons",
            ", ".join(f"{c['person_id']} ({c['role']})" for c in profile.contact_persons),
        ),
        ("merged_into", profile.merged_into),
        ("absorbed", ", ".join(profile.absorbed)),
        ("forgotten", profile.forgotten),
        ("registered_at", profile.registered_at),
        ("last_contact_at", profile.last_contact_at),
    ]
    emit(console, "profile", ("field", "value"), fields, fmt)
    emit(
        console,
        f"interactions per channel ({profile.interactions:,} in all, merged customers included)",
        ("channel", "count", "last_at"),
        [(c.channel, c.count, c.last_at) for c in profile.channels],
        fmt,
    )
    emit(
        console,
        f"timeline, newest first (latest {limit})",
        ("occurred_at", "channel", "direction", "minutes", "detail", "summary", "customer_id"),
        [
            (
                t.occurred_at.strftime("%Y-%m-%d %H:%M"),
                t.channel,
                t.direction,
                t.duration_min,
                t.detail,
                t.summary,
                str(t.customer_id)[:8],
            )
            for t in views.timeline(customer_id, limit=limit)
        ],
        fmt,
    )
