"""`timeline`: every interaction of a customer, placed at business time, merged customers'
included (newest first when queried).

One row per interaction (written by COPY on PostgreSQL), plus `timeline_merges` (which
customer was merged into which), so the timeline of a survivor gathers its merged customers'
rows, and an unmerge gives them back. `customer.forgotten` blanks the customer's summaries
(the personal free text: subjects, notes, summaries).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

import msgspec

from domain.customers import events as ev
from domain.envelope import Envelope
from domain.interactions import events as iev
from domain.interactions.events import CHANNEL_OF
from projections.projection import Index, Projection, Tables

_TAGS = {cls.__struct_config__.tag: cls for cls in CHANNEL_OF}
_MERGES = {
    cls.__struct_config__.tag
    for cls in (ev.CustomerMergedInto, ev.CustomerUnmerged, ev.CustomerForgotten)
}
COLUMNS = (
    "position",
    "customer_id",
    "interaction_id",
    "occurred_at",
    "channel",
    "event_type",
    "direction",
    "duration_min",
    "detail",
    "summary",
    "actor",
)


class TimelineEntry(msgspec.Struct, frozen=True, kw_only=True):
    position: int
    customer_id: UUID
    interaction_id: UUID
    occurred_at: datetime
    channel: str
    event_type: str
    direction: str | None
    duration_min: float | None
    detail: str | None
    summary: str | None
    actor: str | None


# (direction, duration in minutes, detail, summary) of an interaction: the summary holds the
# personal free text, the detail what is not personal.
_Described = tuple[str | None, float | None, str | None, str | None]


def _email(p: iev.EmailLogged) -> _Described:
    return p.direction, None, p.thread, p.subject


def _call(p: iev.CallLogged) -> _Described:
    return p.direction, p.duration_min, p.outcome, p.notes


def _meeting(p: iev.MeetingLogged) -> _Described:
    return None, p.duration_min, p.location, p.notes


def _questionnaire(p: iev.QuestionnaireAnswered) -> _Described:
    answers = "; ".join(f"{a.question}: {a.answer}" for a in p.answers)
    return None, None, p.questionnaire, answers or None


def _conversation(p: iev.ConversationLogged) -> _Described:
    return None, p.duration_min, p.medium, p.summary


def _web(p: iev.WebActivity) -> _Described:
    detail = f"{p.action} {p.page}" + (f" ({p.form})" if p.form else "")
    return None, None, detail, None


_DESCRIBE: dict[type, Any] = {
    iev.EmailLogged: _email,
    iev.CallLogged: _call,
    iev.MeetingLogged: _meeting,
    iev.QuestionnaireAnswered: _questionnaire,
    iev.ConversationLogged: _conversation,
    iev.WebActivity: _web,
}
# Per interaction class: its type tag, its channel and how it reads as a timeline row.
_KINDS = {cls: (cls.__struct_config__.tag, CHANNEL_OF[cls], _DESCRIBE[cls]) for cls in CHANNEL_OF}


class Timeline(Projection):
    name = "timeline"
    version = 1
    handles = frozenset(set(_TAGS) | _MERGES)
    tables = {
        "timeline": (
            "position {int} PRIMARY KEY, customer_id {uuid} NOT NULL, interaction_id {uuid} NOT NULL, "
            "occurred_at {ts} NOT NULL, channel {text} NOT NULL, event_type {text} NOT NULL, "
            "direction {text}, duration_min {real}, detail {text}, summary {text}, actor {text}"
        ),
        "timeline_merges": "merged_id {uuid} PRIMARY KEY, survivor_id {uuid} NOT NULL",
    }
    indexes = (
        Index("customer", "timeline", "customer_id, occurred_at"),
        Index("survivor", "timeline_merges", "survivor_id"),
    )

    def apply(self, t: Tables, events: list[Envelope[Any]], now: datetime) -> None:
        pending: list[tuple[object, ...]] = []
        kinds = _KINDS
        for e in events:
            kind = kinds.get(e.payload.__class__)
            if kind is not None:
                if e.customer_id is None:
                    continue
                tag, channel, read = kind
                direction, minutes, detail, summary = read(e.payload)
                pending.append(
                    (
                        e.position,
                        e.customer_id,
                        e.stream_id,
                        e.occurred_at,
                        e.channel or channel,
                        tag,
                        direction,
                        minutes,
                        detail,
                        summary,
                        e.actor,
                    )
                )
                continue
            if pending:  # keep log order: rows before the registry change that follows them
                t.insert_many("timeline", COLUMNS, pending)
                pending = []
            p = e.payload
            match p:
                case ev.CustomerMergedInto():
                    t.execute("DELETE FROM {timeline_merges} WHERE merged_id = ?", (e.stream_id,))
                    t.execute(
                        "INSERT INTO {timeline_merges} (merged_id, survivor_id) VALUES (?, ?)",
                        (e.stream_id, p.survivor_id),
                    )
                case ev.CustomerUnmerged():
                    t.execute("DELETE FROM {timeline_merges} WHERE merged_id = ?", (e.stream_id,))
                case ev.CustomerForgotten():
                    t.execute(
                        "UPDATE {timeline} SET summary = NULL WHERE customer_id = ?", (e.stream_id,)
                    )
        if pending:
            t.insert_many("timeline", COLUMNS, pending)
