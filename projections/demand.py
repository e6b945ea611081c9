"""`demand`: units and net revenue sold per product and price segment, week by week or month
by month, and a forecast of the units ahead (`projections.forecast`).

- `demand_facts`: one row per sold line (`order.placed`, kind `sale`) and per returned line
  (`order.returned`, kind `return`: negative units, the refund as negative revenue). Every row
  carries the sale's time (`sold_at` and its ISO week and calendar month, UTC) and its own
  business time (`occurred_at`): periods count what the orders placed in them net to, a
  report as of T counts the rows that occurred by T.
- `demand_cancellations`: cancelled orders; a cancelled order sells nothing, so a report as of
  T leaves out every row of an order cancelled by T (and keeps it when T is before).
- `demand_products` (sku -> name, category, kind) and `demand_bands` (every price-bands set).

A line's price segment is its unit price (before discount) banded by the bands in force at the
sale's business time (`domain.products.state.segment_of`; the defaults before any set). Bands
set later in the log but earlier in business time re-band the rows sold since, so the rows do
not depend on how the log was paged. Amounts are exact Decimal strings in their currency.
"""

from __future__ import annotations

from bisect import bisect_right
from collections import defaultdict
from datetime import UTC, date, datetime, timedelta
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any, Literal
from uuid import UUID

import msgspec

from domain.envelope import Envelope
from domain.money import CENT, CurrencyMismatch, Money
from domain.orders import events as oev
from domain.orders.state import line_net, refund_for
from domain.products import events as pev
from domain.products.state import DEFAULT_PRICE_BANDS, segment_of
from projections import forecast as fc
from projections.ports import ProjectionDB
from projections.projection import Index, Projection, Tables, _resolve

Period = Literal["week", "month"]
UNBANDED = "unbanded"
"""The segment of a price in another currency than its bands (bands are never converted)."""
FACT_COLUMNS = (
    "position",
    "line",
    "kind",
    "order_id",
    "customer_id",
    "sku",
    "category",
    "segment",
    "units",
    "revenue",
    "currency",
    "unit_price",
    "discount",
    "sold_at",
    "occurred_at",
    "week",
    "month",
)
_TAGS = {
    cls.__struct_config__.tag
    for cls in (
        oev.OrderPlaced,
        oev.OrderReturned,
        oev.OrderCancelled,
        pev.ProductDefined,
        pev.PriceBandsSet,
    )
}
_enc = msgspec.json.Encoder()
_bands_dec = msgspec.json.Decoder(pev.PriceBands)


def week_of(at: datetime) -> date:
    """The Monday starting the ISO week of `at` (UTC)."""
    day = at.astimezone(UTC).date()
    return day - timedelta(days=day.weekday())


def month_of(at: datetime) -> date:
    return at.astimezone(UTC).date().replace(day=1)


class _Line(msgspec.Struct):
    """A sold line as returns need it."""

    customer_id: UUID | None
    category: str
    segment: str
    unit_price: Money
    discount: Decimal
    quantity: int
    sold_at: datetime
    returned: int = 0


class _Bands:
    """Every bands set known, in business-time order: the one in force at a time."""

    def __init__(self, sets: list[tuple[datetime, int, pev.PriceBands]]) -> None:
        ordered = sorted(sets, key=lambda s: (s[0], s[1]))
        self._keys = [(at, position) for at, position, _ in ordered]
        self._bands = [bands for _, _, bands in ordered]

    def segment(self, category: str, price: Money, at: datetime) -> str:
        i = bisect_right(self._keys, (at, float("inf")))
        bands = self._bands[i - 1] if i else DEFAULT_PRICE_BANDS
        try:
            return segment_of(bands, category, price)
        except CurrencyMismatch:
            return UNBANDED


class Demand(Projection):
    name = "demand"
    version = 1
    reads_personal = False
    handles = frozenset(_TAGS)
    tables = {
        "demand_facts": (
            "position {int} NOT NULL, line {int} NOT NULL, kind {text} NOT NULL, "
            "order_id {uuid} NOT NULL, customer_id {uuid}, sku {text} NOT NULL, "
            "category {text} NOT NULL, segment {text} NOT NULL, units {int} NOT NULL, "
            "revenue {text} NOT NULL, currency {text} NOT NULL, unit_price {text} NOT NULL, "
            "discount {text} NOT NULL, sold_at {ts} NOT NULL, occurred_at {ts} NOT NULL, "
            "week {date} NOT NULL, month {date} NOT NULL, PRIMARY KEY (position, line)"
        ),
        "demand_cancellations": (
            "order_id {uuid} PRIMARY KEY, position {int} NOT NULL, occurred_at {ts} NOT NULL"
        ),
        "demand_products": (
            "sku {text} PRIMARY KEY, name {text} NOT NULL, category {text} NOT NULL, "
            "kind {text} NOT NULL, position {int} NOT NULL"
        ),
        "demand_bands": "position {int} PRIMARY KEY, occurred_at {ts} NOT NULL, bands {json} NOT NULL",
    }
    indexes = (
        Index("order", "demand_facts", "order_id"),
        Index("sold", "demand_facts", "sold_at"),
    )

    def apply(self, t: Tables, events: list[Envelope[Any]], now: datetime) -> None:
        products: dict[str, tuple[str, str, str, int]] = {}
        new_bands: list[tuple[datetime, int, pev.PriceBands]] = []
        for e in events:
            p = e.payload
            if isinstance(p, pev.ProductDefined):
                products[p.sku] = (p.name, p.category, p.kind, e.position)
            elif isinstance(p, pev.PriceBandsSet):
                new_bands.append((e.occurred_at, e.position, p.bands))
        d = t.dialect
        known = [
            (d.ts(at), int(pos), _bands_dec.decode(blob))
            for pos, at, blob in t.fetch("SELECT position, occurred_at, bands FROM {demand_bands}")
        ]
        bands = _Bands([*known, *new_bands])  # type: ignore[list-item]
        categories = {sku: row[1] for sku, row in products.items()}
        sold = {
            i.sku for e in events if isinstance(e.payload, oev.OrderPlaced) for i in e.payload.items
        }
        if sold - categories.keys():
            categories.update(_categories(t, sorted(sold - categories.keys())))
        lines = self._lines(t, events)
        rows: list[tuple[object, ...]] = []
        cancelled: list[tuple[object, ...]] = []
        for e in events:
            p = e.payload
            if isinstance(p, oev.OrderPlaced):
                rows += _sold(e, p, bands, categories, lines)
            elif isinstance(p, oev.OrderReturned):
                rows += _returned(e, p, lines)
            elif isinstance(p, oev.OrderCancelled):
                cancelled.append((e.stream_id, e.position, e.occurred_at))
        t.insert_many("demand_facts", FACT_COLUMNS, rows)
        t.insert_many("demand_cancellations", ("order_id", "position", "occurred_at"), cancelled)
        t.replace_rows(
            "demand_products",
            "sku",
            ("sku", "name", "category", "kind", "position"),
            [(sku, *row) for sku, row in products.items()],
        )
        if new_bands:
            t.insert_many(
                "demand_bands",
                ("position", "occurred_at", "bands"),
                [(pos, at, _enc.encode(b).decode()) for at, pos, b in new_bands],
            )
            _reband(t, bands, min(at for at, _, _ in new_bands))

    def _lines(self, t: Tables, events: list[Envelope[Any]]) -> dict[tuple[UUID, str], _Line]:
        """The sold lines of the orders this batch returns that earlier batches placed."""
        placed = {e.stream_id for e in events if isinstance(e.payload, oev.OrderPlaced)}
        wanted = list(
            {
                e.stream_id
                for e in events
                if isinstance(e.payload, oev.OrderReturned) and e.stream_id not in placed
            }
        )
        lines: dict[tuple[UUID, str], _Line] = {}
        if not wanted:
            return lines
        d = t.dialect
        found = t.fetch_in(
            "SELECT order_id, kind, sku, units, customer_id, category, segment, unit_price, "
            "currency, discount, sold_at FROM {demand_facts} WHERE {in} ORDER BY position, line",
            "order_id",
            wanted,
        )
        for order, kind, sku, units, customer, category, segment, price, cur, disc, at in found:
            key = (d.uuid(order), sku)
            if kind == "sale":
                lines[key] = _Line(  # type: ignore[index]
                    customer_id=d.uuid(customer),
                    category=category,
                    segment=segment,
                    unit_price=Money(amount=Decimal(price), currency=cur),
                    discount=Decimal(disc),
                    quantity=int(units),
                    sold_at=d.ts(at),  # type: ignore[arg-type]
                )
            else:
                lines[key].returned -= int(units)  # type: ignore[index]
        return lines


def _categories(t: Tables, skus: list[str]) -> dict[str, str]:
    found = dict(t.fetch_in("SELECT sku, category FROM {demand_products} WHERE {in}", "sku", skus))
    return {sku: found.get(sku, "unknown") for sku in skus}


def _row(
    e: Envelope[Any], n: int, sku: str, line: _Line, *, kind: str, units: int, revenue: Decimal
) -> tuple[object, ...]:
    return (
        e.position,
        n,
        kind,
        e.stream_id,
        line.customer_id,
        sku,
        line.category,
        line.segment,
        units,
        str(revenue),
        line.unit_price.currency,
        str(line.unit_price.amount),
        str(line.discount),
        line.sold_at,
        e.occurred_at,
        week_of(line.sold_at),
        month_of(line.sold_at),
    )


def _sold(
    e: Envelope[Any],
    p: oev.OrderPlaced,
    bands: _Bands,
    categories: dict[str, str],
    lines: dict[tuple[UUID, str], _Line],
) -> list[tuple[object, ...]]:
    out = []
    for n, item in enumerate(p.items):
        category = categories.get(item.sku, "unknown")
        line = _Line(
            customer_id=p.customer_id,
            category=category,
            segment=bands.segment(category, item.unit_price, e.occurred_at),
            unit_price=item.unit_price,
            discount=item.discount,
            quantity=item.quantity,
            sold_at=e.occurred_at,
        )
        lines[(e.stream_id, item.sku)] = line
        out.append(
            _row(
                e,
                n,
                item.sku,
                line,
                kind="sale",
                units=item.quantity,
                revenue=line_net(item).amount,
            )
        )
    return out


def _returned(
    e: Envelope[Any], p: oev.OrderReturned, lines: dict[tuple[UUID, str], _Line]
) -> list[tuple[object, ...]]:
    """Negative rows; the refund split over the lines as the domain prices each part (the
    difference of rounded line nets), scaled when the refund given differs from that."""
    missing = [r.sku for r in p.items if (e.stream_id, r.sku) not in lines]
    if missing:
        raise LookupError(f"order {e.stream_id} returns {missing}, which it never sold here")
    sold = [lines[(e.stream_id, r.sku)] for r in p.items]
    parts = [
        refund_for(
            oev.OrderLine(
                sku=r.sku, quantity=s.quantity, unit_price=s.unit_price, discount=s.discount
            ),
            s.returned,
            r.quantity,
        ).amount
        for r, s in zip(p.items, sold, strict=True)
    ]
    refunds = _split(p.refund.amount, parts, [r.quantity for r in p.items])
    out = []
    for n, (r, s, refund) in enumerate(zip(p.items, sold, refunds, strict=True)):
        s.returned += r.quantity
        out.append(_row(e, n, r.sku, s, kind="return", units=-r.quantity, revenue=-refund))
    return out


def _split(total: Decimal, parts: list[Decimal], units: list[int]) -> list[Decimal]:
    """`total` in shares of `parts` (of `units` when they are all zero), the rounding on the
    last share, so the shares add up to `total` exactly."""
    if sum(parts) == total:
        return parts
    weights = parts if sum(parts) else [Decimal(u) for u in units]
    whole = sum(weights)
    shares = [(total * w / whole).quantize(CENT, ROUND_HALF_EVEN) for w in weights[:-1]]
    return [*shares, total - sum(shares, Decimal(0))]


def _reband(t: Tables, bands: _Bands, since: datetime) -> None:
    """Bands set at business time `since`: the rows sold since then get the segment in force."""
    d = t.dialect
    changed = []
    for position, line, category, price, currency, at, segment in t.fetch(
        "SELECT position, line, category, unit_price, currency, sold_at, segment "
        "FROM {demand_facts} WHERE sold_at >= ?",
        (since,),
    ):
        money = Money(amount=Decimal(price), currency=currency)
        now = bands.segment(category, money, d.ts(at))  # type: ignore[arg-type]
        if now != segment:
            changed.append((now, position, line))
    t.executemany("UPDATE {demand_facts} SET segment = ? WHERE position = ? AND line = ?", changed)


# -- the report -----------------------------------------------------------------------------


class PeriodDemand(msgspec.Struct, frozen=True, kw_only=True):
    """A period's units and revenue by currency; `complete` when it ended by the report's end."""

    period: date
    complete: bool
    units: int
    revenue: dict[str, Decimal]


class ProductDemand(msgspec.Struct, frozen=True, kw_only=True):
    period: date
    sku: str
    name: str | None
    category: str
    kind: str | None
    units: int
    revenue: Decimal
    currency: str


class SegmentDemand(msgspec.Struct, frozen=True, kw_only=True):
    period: date
    segment: str
    units: int
    revenue: Decimal
    currency: str


class DemandReport(msgspec.Struct, frozen=True, kw_only=True):
    """Net of returns, without cancelled orders, by the period the orders were placed in.

    `end` is what the report runs to: `as_of`, or the last fact's business time. The forecast
    is fit on the complete periods (the one holding `end` is not), so its first period may be
    the one under way."""

    period: Period
    as_of: datetime | None
    end: datetime | None
    periods: list[PeriodDemand]
    products: list[ProductDemand]
    segments: list[SegmentDemand]
    forecast: fc.Forecast
    segment_forecasts: dict[str, fc.Forecast]


def demand_report(
    db: ProjectionDB,
    *,
    period: Period,
    as_of: datetime | None = None,
    horizon: int = 8,
    segments: bool = True,
) -> DemandReport:
    """Units and revenue per period (ISO weeks from Monday or calendar months, UTC), product
    and price segment, as of `as_of` (business time; naive means UTC) or of everything known,
    and the forecast of the next `horizon` periods' units, in total and (`segments`) per
    segment."""
    if period not in fc.SEASON:
        raise ValueError(f"period must be week or month, not {period!r}")
    if as_of is not None and as_of.tzinfo is None:
        as_of = as_of.replace(tzinfo=UTC)
    d = db.dialect
    names = {t: d.qualify(t) for t in ("demand_facts", "demand_cancellations", "demand_products")}

    def fetch(template: str, params: list[object]) -> list[tuple[Any, ...]]:
        return db.fetch(_resolve(template, names, d), params)

    if as_of is None:
        where, params = "order_id NOT IN (SELECT order_id FROM {demand_cancellations})", []
    else:
        where = (
            "occurred_at <= ? AND order_id NOT IN "
            "(SELECT order_id FROM {demand_cancellations} WHERE occurred_at <= ?)"
        )
        params = [as_of, as_of]
    # Rows of one amount are counted in SQL and multiplied here: exact, on both backends.
    rows = fetch(
        f"SELECT {period}, sku, segment, currency, revenue, sum(units), count(*) "
        f"FROM {{demand_facts}} WHERE {where} GROUP BY {period}, sku, segment, currency, revenue",
        params,
    )
    if as_of is not None:
        end = as_of
    else:
        ((last,),) = fetch("SELECT max(occurred_at) FROM {demand_facts}", [])
        end = d.ts(last)
    catalogue = {
        sku: (name, category, kind)
        for sku, name, category, kind in fetch(
            "SELECT sku, name, category, kind FROM {demand_products}", []
        )
    }
    return _report(
        period,
        as_of=as_of,
        end=end,
        rows=rows,
        catalogue=catalogue,
        horizon=horizon,
        segment_forecasts=segments,
    )


def _day(value: object) -> date:
    return date.fromisoformat(value) if isinstance(value, str) else value  # type: ignore[return-value]


def _report(
    period: Period,
    *,
    as_of: datetime | None,
    end: datetime | None,
    rows: list[tuple[Any, ...]],
    catalogue: dict[str, tuple[str, str, str]],
    horizon: int,
    segment_forecasts: bool,
) -> DemandReport:
    units: dict[date, int] = defaultdict(int)
    revenue: dict[date, dict[str, Decimal]] = defaultdict(lambda: defaultdict(Decimal))
    by_sku: dict[tuple[date, str, str], list[Any]] = defaultdict(lambda: [0, Decimal(0)])
    by_segment: dict[tuple[date, str, str], list[Any]] = defaultdict(lambda: [0, Decimal(0)])
    seg_units: dict[str, dict[date, int]] = defaultdict(lambda: defaultdict(int))
    for day, sku, segment, currency, amount, n_units, count in rows:
        start = _day(day)
        money = Decimal(amount) * int(count)
        n = int(n_units)
        units[start] += n
        revenue[start][currency] += money
        for acc in (by_sku[(start, sku, currency)], by_segment[(start, segment, currency)]):
            acc[0] += n
            acc[1] += money
        seg_units[segment][start] += n
    current = (week_of if period == "week" else month_of)(end) if end is not None else None
    starts: list[date] = []
    if units and current is not None:
        starts = [min(units)]
        while starts[-1] < max(current, *units):
            starts.append(fc.next_start(starts[-1], period))
    done = [s for s in starts if end is not None and _ends(s, period) <= end]
    complete = set(done)
    periods = [
        PeriodDemand(
            period=s,
            complete=s in complete,
            units=units.get(s, 0),
            revenue=dict(sorted(revenue[s].items())) if s in revenue else {},
        )
        for s in starts
    ]
    products = [
        ProductDemand(
            period=s,
            sku=sku,
            name=catalogue.get(sku, (None,))[0],
            category=catalogue[sku][1] if sku in catalogue else "unknown",
            kind=catalogue[sku][2] if sku in catalogue else None,
            units=acc[0],
            revenue=acc[1],
            currency=currency,
        )
        for (s, sku, currency), acc in sorted(by_sku.items())
    ]
    segments = [
        SegmentDemand(period=s, segment=seg, units=acc[0], revenue=acc[1], currency=currency)
        for (s, seg, currency), acc in sorted(by_segment.items())
    ]

    def series(counts: dict[date, int]) -> list[tuple[date, float]]:
        return [(s, float(counts.get(s, 0))) for s in done]

    return DemandReport(
        period=period,
        as_of=as_of,
        end=end,
        periods=periods,
        products=products,
        segments=segments,
        forecast=fc.forecast(series(units), period=period, horizon=horizon),
        segment_forecasts={
            seg: fc.forecast(series(counts), period=period, horizon=horizon)
            for seg, counts in sorted(seg_units.items())
        }
        if segment_forecasts
        else {},
    )


def _ends(start: date, period: Period) -> datetime:
    """When the period starting at `start` ends (UTC midnight of the next one's start)."""
    following = fc.next_start(start, period)
    return datetime(following.year, following.month, following.day, tzinfo=UTC)
