"""Reads of the views, through their stable names (never a generation's table)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime
from typing import Any
from uuid import UUID

import msgspec

from projections.customer_profile import CHANNELS
from projections.customer_profile import COLUMNS as PROFILE_COLUMNS
from projections.freshness import wait_until_applied
from projections.ports import ProjectionDB
from projections.projection import _resolve
from projections.timeline import COLUMNS as TIMELINE_COLUMNS
from projections.timeline import TimelineEntry

_dec = msgspec.json.Decoder()


class ChannelActivity(msgspec.Struct, frozen=True, kw_only=True):
    channel: str
    count: int
    last_at: datetime | None


class Profile(msgspec.Struct, frozen=True, kw_only=True):
    customer_id: UUID
    kind: str | None
    name: str | None
    gender: str | None
    birth_date: date | None
    age: int | None
    income_band: str | None
    purpose: str | None
    stage: str | None
    source: str | None
    contacts: list[dict[str, Any]]
    consents: list[dict[str, Any]]
    organisations: list[dict[str, Any]]
    contact_persons: list[dict[str, Any]]
    merged_into: UUID | None
    absorbed: list[str]
    forgotten: bool
    registered_at: datetime | None
    updated_at: datetime | None
    last_contact_at: datetime | None
    channels: list[ChannelActivity]
    position: int

    @property
    def interactions(self) -> int:
        return sum(c.count for c in self.channels)


class Views:
    """Queries over the stable views `customer_profile`, `timeline`, `timeline_merges`."""

    def __init__(self, db: ProjectionDB) -> None:
        self.db = db
        d = db.dialect
        self._names = {t: d.qualify(t) for t in ("customer_profile", "timeline", "timeline_merges")}

    def _fetch(self, template: str, params: Sequence[object] = ()) -> list[tuple[Any, ...]]:
        return self.db.fetch(_resolve(template, self._names, self.db.dialect), params)

    def profile(self, customer_id: UUID, min_position: int | None = None) -> Profile | None:
        """The profile; with `min_position`, once the view has applied it (read-your-writes)."""
        wait_until_applied(self.db, ["customer_profile"], min_position)
        rows = self._fetch(
            f"SELECT {', '.join(PROFILE_COLUMNS)} FROM {{customer_profile}} WHERE customer_id = ?",
            (customer_id,),
        )
        if not rows:
            return None
        d = self.db.dialect
        row = dict(zip(PROFILE_COLUMNS, rows[0], strict=True))
        birth = row["birth_date"]
        return Profile(
            customer_id=d.uuid(row["customer_id"]) or customer_id,
            kind=row["kind"],
            name=row["name"],
            gender=row["gender"],
            birth_date=date.fromisoformat(birth) if isinstance(birth, str) else birth,
            age=row["age"],
            income_band=row["income_band"],
            purpose=row["purpose"],
            stage=row["stage"],
            source=row["source"],
            contacts=_dec.decode(row["contacts"]),
            consents=_dec.decode(row["consents"]),
            organisations=_dec.decode(row["organisations"]),
            contact_persons=_dec.decode(row["contact_persons"]),
            merged_into=d.uuid(row["merged_into"]),
            absorbed=_dec.decode(row["absorbed"]),
            forgotten=bool(row["forgotten"]),
            registered_at=d.ts(row["registered_at"]),
            updated_at=d.ts(row["updated_at"]),
            last_contact_at=d.ts(row["last_contact_at"]),
            channels=[
                ChannelActivity(
                    channel=c, count=int(row[f"n_{c}"]), last_at=d.ts(row[f"last_{c}_at"])
                )
                for c in CHANNELS
            ],
            position=int(row["position"]),
        )

    def merged_into(self, customer_id: UUID) -> list[UUID]:
        """Every customer merged into this one, directly or through another merged one."""
        found: list[UUID] = []
        frontier = [customer_id]
        seen = {customer_id}
        while frontier:
            test, as_list = self.db.dialect.any_of("survivor_id", len(frontier))
            rows = self._fetch(
                "SELECT merged_id FROM {timeline_merges} WHERE " + test,
                [frontier] if as_list else frontier,
            )
            frontier = []
            for (merged,) in rows:
                m = self.db.dialect.uuid(merged)
                if m is not None and m not in seen:
                    seen.add(m)
                    found.append(m)
                    frontier.append(m)
        return found

    def timeline(
        self,
        customer_id: UUID,
        limit: int = 50,
        before: datetime | None = None,
        min_position: int | None = None,
    ) -> list[TimelineEntry]:
        """Newest first, at business time; the customers merged into this one included."""
        wait_until_applied(self.db, ["timeline"], min_position)
        ids = [customer_id, *self.merged_into(customer_id)]
        test, as_list = self.db.dialect.any_of("customer_id", len(ids))
        params: list[object] = [ids] if as_list else list(ids)
        sql = f"SELECT {', '.join(TIMELINE_COLUMNS)} FROM {{timeline}} WHERE {test}"
        if before is not None:
            sql += " AND occurred_at < ?"
            params.append(before)
        sql += " ORDER BY occurred_at DESC, position DESC LIMIT ?"
        params.append(limit)
        d = self.db.dialect
        out = []
        for r in self._fetch(sql, params):
            row = dict(zip(TIMELINE_COLUMNS, r, strict=True))
            row["customer_id"] = d.uuid(row["customer_id"])
            row["interaction_id"] = d.uuid(row["interaction_id"])
            row["occurred_at"] = d.ts(row["occurred_at"])
            out.append(TimelineEntry(**row))
        return out
