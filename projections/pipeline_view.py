"""`pipeline`: deals and pipelines as facts at business time, and the report over them.

The report folds each deal with the domain's `fold_deal` as of any date: open amounts per
stage and per owner, the weighted forecast (value x the stage's win probability), conversion
between consecutive stages, days per stage (median and mean of the stays that ended), win rate
by lead source, owner and month of closing, and losses per competitor.

Definitions: a deal *reached* a stage if it ever entered it (moves back count once); it
*converted* from stage i to stage i+1 if it reached both, and to `won` if it reached the last
open stage and was won. A stay in a stage ends when the deal moves or closes; stays still open
at the report's date are not in the days.
"""

from __future__ import annotations

import statistics
from collections import Counter, defaultdict
from datetime import datetime
from decimal import Decimal
from itertools import pairwise

import msgspec

from domain.pipeline import events as pev
from domain.pipeline.state import DealState, PipelineState, fold_deal, fold_pipeline
from projections.facts import FactTable, fold_streams, read_facts
from projections.ports import ProjectionDB

DEAL_EVENTS = (
    pev.DealOpened,
    pev.DealStageChanged,
    pev.DealValueChanged,
    pev.QuoteSent,
    pev.DealAssigned,
    pev.DealWon,
    pev.DealLost,
)
UNASSIGNED = "(unassigned)"


class PipelineView(FactTable):
    name = "pipeline"
    version = 1
    event_types = (pev.PipelineDefined, *DEAL_EVENTS)


class StageAmount(msgspec.Struct, frozen=True, kw_only=True):
    stage: str
    probability: Decimal
    deals: int
    amount: Decimal
    weighted: Decimal


class OwnerAmount(msgspec.Struct, frozen=True, kw_only=True):
    owner: str
    deals: int
    amount: Decimal
    weighted: Decimal


class Conversion(msgspec.Struct, frozen=True, kw_only=True):
    from_stage: str
    to_stage: str
    reached: int
    converted: int
    rate: float | None


class StageDays(msgspec.Struct, frozen=True, kw_only=True):
    stage: str
    stays: int
    median_days: float | None
    mean_days: float | None


class WinRate(msgspec.Struct, frozen=True, kw_only=True):
    key: str
    won: int
    lost: int
    rate: float | None


class Losses(msgspec.Struct, frozen=True, kw_only=True):
    competitor: str
    deals: int
    amount: Decimal


class PipelineReport(msgspec.Struct, frozen=True, kw_only=True):
    pipeline: str
    as_of: datetime
    currency: str | None
    open_deals: int
    open_amount: Decimal
    weighted_forecast: Decimal
    by_stage: list[StageAmount]
    by_owner: list[OwnerAmount]
    conversion: list[Conversion]
    days: list[StageDays]
    win_rate_by_source: list[WinRate]
    win_rate_by_owner: list[WinRate]
    win_rate_by_month: list[WinRate]
    losses: list[Losses]


def pipeline_states(
    db: ProjectionDB, as_of: datetime | None = None
) -> tuple[dict[str, PipelineState], dict[str, DealState]]:
    """Pipelines by name and deals by id, as of `as_of` (business time)."""
    facts = read_facts(db, "pipeline", as_of=as_of)
    pipelines = {
        p.name: p
        for p in fold_streams(facts, fold_pipeline, (pev.PipelineDefined,)).values()
        if p.name
    }
    deals = {str(k): v for k, v in fold_streams(facts, fold_deal, DEAL_EVENTS).items()}
    return pipelines, deals


def pipeline_report(
    db: ProjectionDB, *, now: datetime, pipeline: str = "sales", as_of: datetime | None = None
) -> PipelineReport:
    at = as_of or now
    pipelines, all_deals = pipeline_states(db, at)  # nothing dated after the report's date
    p = pipelines.get(pipeline)
    stages = [s.name for s in p.stages] if p else []
    probability = {s.name: s.probability for s in p.stages} if p else {}
    deals = [d for d in all_deals.values() if d.pipeline == pipeline and d.opened]
    currencies = Counter(d.value.currency for d in deals if d.value)
    currency = currencies.most_common(1)[0][0] if currencies else None
    open_deals = [
        d for d in deals if d.status == "open" and d.value and d.value.currency == currency
    ]

    def amount(ds: list[DealState]) -> tuple[Decimal, Decimal]:
        total = sum((d.value.amount for d in ds if d.value), Decimal(0))
        weighted = sum(
            (d.value.amount * probability.get(d.stage or "", Decimal(0)) for d in ds if d.value),
            Decimal(0),
        )
        return total, weighted.quantize(Decimal("0.01"))

    by_stage = []
    for stage in stages:
        in_stage = [d for d in open_deals if d.stage == stage]
        total, weighted = amount(in_stage)
        by_stage.append(
            StageAmount(
                stage=stage,
                probability=probability[stage],
                deals=len(in_stage),
                amount=total,
                weighted=weighted,
            )
        )
    owners: dict[str, list[DealState]] = defaultdict(list)
    for d in open_deals:
        owners[d.owner or UNASSIGNED].append(d)
    by_owner = []
    for owner, ds in sorted(owners.items()):
        total, weighted = amount(ds)
        by_owner.append(OwnerAmount(owner=owner, deals=len(ds), amount=total, weighted=weighted))
    open_total, open_weighted = amount(open_deals)
    return PipelineReport(
        pipeline=pipeline,
        as_of=at,
        currency=currency,
        open_deals=len(open_deals),
        open_amount=open_total,
        weighted_forecast=open_weighted,
        by_stage=by_stage,
        by_owner=by_owner,
        conversion=_conversion(deals, stages),
        days=_days(deals, stages),
        win_rate_by_source=_win_rates(deals, lambda d: d.lead_source or "unknown"),
        win_rate_by_owner=_win_rates(deals, lambda d: d.owner or UNASSIGNED),
        win_rate_by_month=_win_rates(
            deals, lambda d: d.closed_at.strftime("%Y-%m") if d.closed_at else ""
        ),
        losses=_losses(deals),
    )


def _conversion(deals: list[DealState], stages: list[str]) -> list[Conversion]:
    reached = {d.deal_id: {v.stage for v in d.stage_history} for d in deals}
    out = []
    for a, b in pairwise([*stages, "won"]):
        got_a = [d for d in deals if a in reached[d.deal_id]]
        if b == "won":
            got_b = [d for d in got_a if d.status == "won"]
        else:
            got_b = [d for d in got_a if b in reached[d.deal_id]]
        out.append(
            Conversion(
                from_stage=a,
                to_stage=b,
                reached=len(got_a),
                converted=len(got_b),
                rate=len(got_b) / len(got_a) if got_a else None,
            )
        )
    return out


def _days(deals: list[DealState], stages: list[str]) -> list[StageDays]:
    stays: dict[str, list[float]] = defaultdict(list)
    for d in deals:
        visits = d.stage_history
        ends = [b.entered_at for b in visits[1:]]
        if d.closed_at is not None:
            ends.append(d.closed_at)
        for visit, end in zip(visits, ends, strict=False):
            stays[visit.stage].append((end - visit.entered_at).total_seconds() / 86400)
    return [
        StageDays(
            stage=s,
            stays=len(stays[s]),
            median_days=round(statistics.median(stays[s]), 3) if stays[s] else None,
            mean_days=round(statistics.fmean(stays[s]), 3) if stays[s] else None,
        )
        for s in stages
    ]


def _win_rates(deals: list[DealState], key: object) -> list[WinRate]:
    won: Counter[str] = Counter()
    lost: Counter[str] = Counter()
    for d in deals:
        k = key(d)  # type: ignore[operator]
        if d.status == "won":
            won[k] += 1
        elif d.status == "lost":
            lost[k] += 1
    keys = sorted(set(won) | set(lost))
    return [
        WinRate(
            key=k,
            won=won[k],
            lost=lost[k],
            rate=won[k] / (won[k] + lost[k]) if won[k] + lost[k] else None,
        )
        for k in keys
    ]


def _losses(deals: list[DealState]) -> list[Losses]:
    by: dict[str, list[DealState]] = defaultdict(list)
    for d in deals:
        if d.status == "lost":
            by[d.competitor or "(none)"].append(d)
    return sorted(
        (
            Losses(
                competitor=c,
                deals=len(ds),
                amount=sum((d.value.amount for d in ds if d.value), Decimal(0)),
            )
            for c, ds in by.items()
        ),
        key=lambda x: (-x.deals, x.competitor),
    )
