"""`satisfaction`: survey answers as facts at business time, the NPS/CSAT report over them, and
each customer's latest score per kind.

- `satisfaction_facts`: one row per `survey.sent`, `survey.answered` and merge of customers (the
  comment is personal and left out), so the report answers as of any date: NPS (promoters minus
  detractors, in percent, with the counts) and CSAT (share of 4-5 and mean) per period of the
  answer (month or ISO week, UTC), per product, agent, trigger and customer segment, and the
  response rate per kind. A merged customer's answers count for its survivor.
- `satisfaction_latest`: per customer and kind the answer latest in business time. Answers may
  arrive late: one dated before the stored one does not replace it.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping
from datetime import UTC, date, datetime, timedelta
from typing import Any, Literal
from uuid import UUID

import msgspec

from domain.customers import events as cev
from domain.envelope import Envelope
from domain.surveys import events as sev
from domain.surveys.state import csat, csat_mean, nps, nps_category
from projections.facts import FactTable, read_facts, survivors
from projections.ports import ProjectionDB
from projections.projection import Tables, _resolve

Period = Literal["month", "week"]
LATEST_COLUMNS = ("customer_id", "kind", "score", "category", "at", "position", "survey_id")
UNKNOWN = "unknown"
_LatestRow = tuple[UUID, str, int, str | None, datetime, int, UUID]


class Satisfaction(FactTable):
    name = "satisfaction"
    version = 1
    event_types = (
        sev.SurveySent,
        sev.SurveyAnswered,
        cev.CustomerMergedInto,
        cev.CustomerUnmerged,
    )
    extra_tables = {
        "satisfaction_latest": (
            "customer_id {uuid} NOT NULL, kind {text} NOT NULL, score {int} NOT NULL, "
            "category {text}, at {ts} NOT NULL, position {int} NOT NULL, survey_id {uuid} NOT NULL, "
            "PRIMARY KEY (customer_id, kind)"
        )
    }

    def apply(self, t: Tables, events: list[Envelope[Any]], now: datetime) -> None:
        super().apply(t, events, now)
        fresh: dict[tuple[UUID, str], _LatestRow] = {}
        for e in events:
            p = e.payload
            if not isinstance(p, sev.SurveyAnswered) or e.customer_id is None:
                continue
            row = (e.customer_id, p.kind, p.score, _category(p.kind, p.score))
            _keep_latest(fresh, (*row, e.occurred_at, e.position, e.stream_id))
        if not fresh:
            return
        d = t.dialect
        touched = sorted({c for c, _ in fresh}, key=str)
        rows: dict[tuple[UUID, str], _LatestRow] = {}
        for cid, kind, score, category, at, position, survey in t.fetch_in(
            f"SELECT {', '.join(LATEST_COLUMNS)} FROM {{satisfaction_latest}} WHERE {{in}}",
            "customer_id",
            touched,
        ):
            stored = (d.uuid(cid), kind, int(score), category, d.ts(at), int(position))
            rows[(stored[0], kind)] = (*stored, d.uuid(survey))  # type: ignore[assignment]
        for row in fresh.values():
            _keep_latest(rows, row)
        # every row of the touched customers: on PostgreSQL replace_rows deletes by customer
        t.replace_rows("satisfaction_latest", "customer_id", LATEST_COLUMNS, list(rows.values()))


def _category(kind: str, score: int) -> str | None:
    return nps_category(score) if kind == "nps" else None


def _keep_latest(rows: dict[tuple[UUID, str], _LatestRow], row: _LatestRow) -> None:
    """Keep `row` if it is later in business time (then in the log) than the one held."""
    key = (row[0], row[1])
    held = rows.get(key)
    if held is None or (row[4], row[5]) > (held[4], held[5]):
        rows[key] = row


# -- the report -------------------------------------------------------------------------


class Scores(msgspec.Struct, frozen=True, kw_only=True):
    """NPS in [-100, 100] and CSAT (percent scoring 4 or 5) with their counts; None without
    answers of that kind."""

    key: str
    nps_answers: int
    promoters: int
    passives: int
    detractors: int
    nps: float | None
    csat_answers: int
    csat_satisfied: int
    csat: float | None
    csat_mean: float | None


class ResponseRate(msgspec.Struct, frozen=True, kw_only=True):
    kind: str
    sent: int
    answered: int
    rate: float | None


class SatisfactionReport(msgspec.Struct, frozen=True, kw_only=True):
    as_of: datetime
    period: str
    overall: Scores
    by_period: list[Scores]
    by_product: list[Scores]
    by_agent: list[Scores]
    by_trigger: list[Scores]
    by_segment: list[Scores]
    response_rates: list[ResponseRate]


class LatestScore(msgspec.Struct, frozen=True, kw_only=True):
    customer_id: UUID
    kind: str
    score: int
    category: str | None
    at: datetime
    survey_id: UUID


class _Answer(msgspec.Struct, frozen=True):
    customer_id: UUID
    at: datetime
    payload: sev.SurveyAnswered


def period_of(at: datetime, period: Period) -> date:
    """The first day of the answer's calendar month or ISO week (Monday), in UTC."""
    day = at.astimezone(UTC).date()
    return day.replace(day=1) if period == "month" else day - timedelta(days=day.weekday())


def scores(key: str, answers: Iterable[tuple[str, int]]) -> Scores:
    """NPS and CSAT of (kind, score) answers."""
    by_kind: dict[str, list[int]] = defaultdict(list)
    for kind, score in answers:
        by_kind[kind].append(score)
    n, c = by_kind["nps"], by_kind["csat"]
    categories = Counter(nps_category(s) for s in n)
    return Scores(
        key=key,
        nps_answers=len(n),
        promoters=categories["promoter"],
        passives=categories["passive"],
        detractors=categories["detractor"],
        nps=nps(n),
        csat_answers=len(c),
        csat_satisfied=sum(1 for s in c if s >= 4),
        csat=csat(c),
        csat_mean=csat_mean(c),
    )


def profile_stages(db: ProjectionDB) -> dict[UUID, str]:
    """customer -> lifecycle stage now, from the `customer_profile` view."""
    d = db.dialect
    sql = _resolve(
        "SELECT customer_id, stage FROM {p} WHERE stage IS NOT NULL",
        {"p": d.qualify("customer_profile")},
        d,
    )
    return {d.uuid(c): str(s) for c, s in db.fetch(sql)}  # type: ignore[misc]


def satisfaction_report(
    db: ProjectionDB,
    *,
    now: datetime,
    as_of: datetime | None = None,
    period: Period = "month",
    segments: Mapping[UUID, str] | None = None,
) -> SatisfactionReport:
    """Answers dated at or before `as_of` (default: now). `segments` maps a customer to its
    segment (default: its lifecycle stage now); a merged customer counts for its survivor and
    in the survivor's segment; a customer without a segment is `unknown`."""
    at = as_of or now
    facts = read_facts(db, "satisfaction", as_of=at)
    merged = survivors(facts)
    segment_of = profile_stages(db) if segments is None else segments
    sent: dict[UUID, str] = {}
    answers: list[_Answer] = []
    for f in facts:
        if isinstance(f.payload, sev.SurveySent):
            sent[f.stream_id] = f.payload.kind
        elif isinstance(f.payload, sev.SurveyAnswered) and f.customer_id is not None:
            answers.append(_Answer(merged.get(f.customer_id, f.customer_id), f.at, f.payload))
    answered = Counter(
        f.payload.kind
        for f in facts
        if isinstance(f.payload, sev.SurveyAnswered) and f.stream_id in sent
    )
    sent_kinds = Counter(sent.values())
    groups: dict[str, dict[str, list[tuple[str, int]]]] = {
        g: defaultdict(list) for g in ("period", "product", "agent", "trigger", "segment")
    }
    for a in answers:
        p = a.payload
        score = (p.kind, p.score)
        groups["period"][period_of(a.at, period).isoformat()].append(score)
        if p.sku is not None:
            groups["product"][p.sku].append(score)
        if p.agent is not None:
            groups["agent"][p.agent].append(score)
        groups["trigger"][p.trigger].append(score)
        groups["segment"][segment_of.get(a.customer_id, UNKNOWN)].append(score)

    def listed(name: str) -> list[Scores]:
        return [scores(k, v) for k, v in sorted(groups[name].items())]

    return SatisfactionReport(
        as_of=at,
        period=period,
        overall=scores("all", ((a.payload.kind, a.payload.score) for a in answers)),
        by_period=listed("period"),
        by_product=listed("product"),
        by_agent=listed("agent"),
        by_trigger=listed("trigger"),
        by_segment=listed("segment"),
        response_rates=[
            ResponseRate(
                kind=kind,
                sent=n,
                answered=answered[kind],
                rate=answered[kind] / n if n else None,
            )
            for kind, n in sorted(sent_kinds.items())
        ],
    )


def latest_scores(db: ProjectionDB, customer_id: UUID) -> list[LatestScore]:
    """The customer's latest answer per kind (business time), the customers merged into it
    now included, from the live table."""
    d = db.dialect
    merges = read_facts(db, "satisfaction", types=("customer.merged_into", "customer.unmerged"))
    into = survivors(merges)
    ids = [customer_id, *(m for m, s in into.items() if s == customer_id)]
    test, as_list = d.any_of("customer_id", len(ids))
    sql = _resolve(
        f"SELECT {', '.join(LATEST_COLUMNS)} FROM {{l}} WHERE {test}",
        {"l": d.qualify("satisfaction_latest")},
        d,
    )
    best: dict[tuple[UUID, str], _LatestRow] = {}
    for _, kind, score, category, at, position, survey in db.fetch(sql, [ids] if as_list else ids):
        row = (customer_id, kind, int(score), category, d.ts(at), int(position), d.uuid(survey))
        _keep_latest(best, row)  # type: ignore[arg-type]
    return [
        LatestScore(
            customer_id=cid, kind=kind, score=score, category=category, at=at, survey_id=survey
        )
        for (cid, kind), (_, _, score, category, at, _, survey) in sorted(best.items())
    ]
