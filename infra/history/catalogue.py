"""The demo's catalogue: products with list prices, return rates and what fits what; pipelines
and the sales team. docs/demo-model.md ("Commerce") quotes the tables `tables()` renders.

Prices are integer cents in EUR. A product is launched at a fraction of the history (0: at its
start) and maybe retired at another; a few list prices change at fixed fractions. `Catalogue`
places those fractions in a config's time line and answers what is on sale, and at what price,
at a time.
"""

from __future__ import annotations

import random
from bisect import bisect
from typing import Any, NamedTuple

from infra.history.model import DAY, HistoryConfig, _table

CURRENCY = "EUR"


class Product(NamedTuple):
    sku: str
    name: str
    category: str  # machines, coffee, accessories, service, tariffs
    kind: str  # good, service, plan
    price: int  # list price at launch, cents
    returns: float  # probability that a delivered unit is returned
    fits: str | None = None  # machine type it is for ("machine": any machine); None: anyone
    period: str | None = None  # billing period of a plan
    launched: float = 0.0  # fraction of the history
    retired: float | None = None
    retire_reason: str | None = None
    business: bool = False  # sold to organisations only


def _p(sku: str, name: str, category: str, euros: float, returns: float, **kw: Any) -> Product:
    kind = {"service": "service", "tariffs": "plan"}.get(category, "good")
    return Product(sku, name, category, kind, round(euros * 100), returns, **kw)


# Machine types: the coffee (and some accessories) a machine takes.
MACHINE_TYPES = ("filter", "pad", "capsule", "beans", "office")

PRODUCTS: tuple[Product, ...] = (
    _p("M-FILTER-1", "Filter coffee maker Basic", "machines", 39.90, 0.06, fits="filter"),
    _p("M-PAD-1", "Pad machine Compact", "machines", 69.00, 0.07, fits="pad"),
    _p(
        "M-CAPS-0",
        "Capsule machine Original",
        "machines",
        79.00,
        0.18,
        fits="capsule",
        retired=0.40,
        retire_reason="leaking water tank; replaced by M-CAPS-1",
    ),
    _p("M-CAPS-1", "Capsule machine Mini", "machines", 89.00, 0.06, fits="capsule", launched=0.35),
    _p("M-CAPS-2", "Capsule machine Plus", "machines", 149.00, 0.07, fits="capsule"),
    _p("M-ESP-1", "Espresso machine Classic", "machines", 249.00, 0.10, fits="beans"),
    _p("M-BTC-1", "Bean-to-cup machine Comfort", "machines", 449.00, 0.09, fits="beans"),
    _p("M-BTC-2", "Bean-to-cup machine Barista", "machines", 899.00, 0.12, fits="beans"),
    _p(
        "M-OFFICE-1",
        "Office bean-to-cup machine",
        "machines",
        1890.00,
        0.04,
        fits="office",
        business=True,
    ),
    _p("C-GROUND-1", "Ground filter coffee 500 g", "coffee", 6.90, 0.01, fits="filter"),
    _p("C-PADS-36", "Coffee pads, 36", "coffee", 5.49, 0.01, fits="pad"),
    _p("C-CAPS-10", "Capsules Classic, 10", "coffee", 3.90, 0.01, fits="capsule"),
    _p("C-CAPS-50", "Capsules variety box, 50", "coffee", 17.50, 0.01, fits="capsule"),
    _p("C-BEAN-H", "House blend beans 1 kg", "coffee", 14.90, 0.01, fits="beans"),
    _p("C-BEAN-E", "Espresso beans 1 kg", "coffee", 17.90, 0.01, fits="beans"),
    _p("C-BEAN-S", "Single origin beans 500 g", "coffee", 12.50, 0.01, fits="beans"),
    _p("C-BEAN-P", "Premium reserve beans 1 kg", "coffee", 34.00, 0.02, fits="beans"),
    _p("C-DECAF-1", "Decaf beans 500 g", "coffee", 11.90, 0.01, fits="beans"),
    _p("C-BEAN-B", "Office beans 6 kg", "coffee", 89.00, 0.005, fits="office", business=True),
    _p(
        "A-MILK-0",
        "Milk frother (first generation)",
        "accessories",
        49.00,
        0.20,
        retired=0.65,
        retire_reason="successor A-MILK-1",
    ),
    _p("A-MILK-1", "Milk frother", "accessories", 59.00, 0.05, launched=0.60),
    _p("A-GRIND-1", "Burr grinder", "accessories", 129.00, 0.06, fits="beans"),
    _p("A-GRIND-2", "Precision grinder", "accessories", 299.00, 0.05, fits="beans"),
    _p("A-TAMP-1", "Tamper", "accessories", 24.90, 0.03, fits="beans"),
    _p("A-KNOCK-1", "Knock box", "accessories", 29.00, 0.02, fits="beans"),
    _p("A-DESC-1", "Descaler, 3 pack", "accessories", 12.90, 0.01, fits="machine"),
    _p("A-FILT-1", "Water filter cartridge", "accessories", 9.90, 0.02, fits="machine"),
    _p("A-CUPS-2", "Espresso cups, set of 2", "accessories", 19.90, 0.04),
    _p("A-CUPS-6", "Cappuccino cups, set of 6", "accessories", 44.00, 0.10),
    _p("A-SCALE-1", "Coffee scale", "accessories", 39.00, 0.04),
    _p("A-TRAVEL-1", "Travel mug", "accessories", 22.00, 0.05),
    _p("A-GIFT-1", "Gift box: beans and cups", "accessories", 49.90, 0.03),
    _p("A-GIFT-2", "Gift set Barista", "accessories", 129.00, 0.04),
    _p("S-CLEAN", "Machine cleaning service", "service", 49.00, 0.0, fits="machine"),
    _p("S-REPAIR", "Repair flat fee", "service", 89.00, 0.0, fits="machine"),
    _p("S-INSTALL", "Installation and training", "service", 149.00, 0.0),
    _p("S-WARRANTY-2", "Extended warranty, 2 years", "service", 79.00, 0.0),
    _p("S-WARRANTY-3", "Extended warranty Premium, 3 years", "service", 229.00, 0.0),
    _p("S-BARISTA", "Barista course", "service", 119.00, 0.0),
    _p("S-OFFICE-CARE", "Office care package, 1 year", "service", 590.00, 0.0, business=True),
    _p("P-BASIC-M", "Coffee flat Basic", "tariffs", 19.90, 0.0, period="month"),
    _p("P-PLUS-M", "Coffee flat Plus", "tariffs", 34.90, 0.0, period="month"),
    _p("P-PREMIUM-Y", "Coffee flat Premium (yearly)", "tariffs", 399.00, 0.0, period="year"),
)
BY_SKU = {p.sku: p for p in PRODUCTS}
PLANS = tuple(p.sku for p in PRODUCTS if p.kind == "plan")  # cheapest first: up is +1
# (sku, fraction of the history, new list price in cents)
PRICE_CHANGES: tuple[tuple[str, float, int], ...] = (
    ("C-BEAN-H", 0.30, 1590),
    ("C-BEAN-E", 0.30, 1890),
    ("C-BEAN-P", 0.30, 3600),
    ("C-CAPS-50", 0.30, 1890),
    ("M-BTC-2", 0.55, 79900),
    ("P-PLUS-M", 0.75, 3690),
    ("C-BEAN-H", 0.85, 1690),
)
# Default price bands of the domain (budget < 50 EUR <= mid < 200 EUR <= premium)
BANDS = ((5000, "budget"), (20000, "mid"))


def price_segment(cents: int) -> str:
    for below, segment in BANDS:
        if cents < below:
            return segment
    return "premium"


PIPELINES: dict[str, tuple[tuple[str, str], ...]] = {
    "sales": (("interest", "0.1"), ("qualified", "0.3"), ("quote", "0.5"), ("negotiation", "0.8")),
    "key_accounts": (
        ("lead", "0.1"),
        ("needs_analysis", "0.25"),
        ("proposal", "0.5"),
        ("contract", "0.8"),
    ),
}
SALES_TEAM = {
    "sales": ("employee:anna.weber", "employee:jonas.becker", "employee:lena.hoffmann"),
    "key_accounts": ("employee:markus.schulz", "employee:sophie.wagner"),
}
TRAINEE = "employee:tim.koch"  # gets some deals handed over


def money(cents: int) -> dict[str, str]:
    return {"amount": f"{cents // 100}.{cents % 100:02d}", "currency": CURRENCY}


class Catalogue:
    """The catalogue in one config's time line: launches, price changes and retirements."""

    def __init__(self, config: HistoryConfig) -> None:
        rng = random.Random(f"{config.seed}/catalogue")
        self.start = start = config.start.timestamp()
        self.span = span = config.now.timestamp() - start
        self.rng = rng

        def when(fraction: float) -> float:
            """A working-day morning near the fraction of the history."""
            t = start + fraction * span
            day = (t // DAY) * DAY
            while (day // DAY + 3) % 7 >= 5:  # 1970-01-01 was a Thursday: skip Sat, Sun
                day += DAY
            return day + 9 * 3600 + rng.random() * 3600

        self.launched = {p.sku: start if p.launched == 0 else when(p.launched) for p in PRODUCTS}
        self.retired = {
            p.sku: when(p.retired) if p.retired is not None else float("inf") for p in PRODUCTS
        }
        self.changes = [(when(f), sku, cents) for sku, f, cents in PRICE_CHANGES]
        self._prices: dict[str, tuple[list[float], list[int]]] = {
            p.sku: ([self.launched[p.sku]], [p.price]) for p in PRODUCTS
        }
        for t, sku, cents in sorted(self.changes):
            times, prices = self._prices[sku]
            times.append(t)
            prices.append(cents)

    def on_sale(self, sku: str, t: float) -> bool:
        """Sold at `t`, a minute clear of its launch and retirement."""
        return self.launched[sku] + 60 < t < self.retired[sku] - 60

    def price(self, sku: str, t: float) -> int:
        times, prices = self._prices[sku]
        return prices[max(0, bisect(times, t) - 1)]

    def events(self) -> list[tuple[float, str, dict[str, Any]]]:
        """The catalogue's and the pipelines' commands, with their business times."""
        out: list[tuple[float, str, dict[str, Any]]] = []
        for i, (name, stages) in enumerate(PIPELINES.items()):
            data = {
                "name": name,
                "stages": [{"name": s, "probability": p} for s, p in stages],
            }
            out.append((self.start + i, "pipeline.define", data))
        for i, p in enumerate(PRODUCTS):
            data = {
                "sku": p.sku,
                "name": p.name,
                "category": p.category,
                "kind": p.kind,
                "list_price": money(p.price),
            }
            if p.period:
                data["billing_period"] = p.period
            t = self.launched[p.sku] + (10 + i if p.launched == 0 else 0)
            out.append((t, "product.define", data))
            if p.retired is not None:
                retire = {"sku": p.sku, "reason": p.retire_reason or "discontinued"}
                out.append((self.retired[p.sku], "product.retire", retire))
        for t, sku, cents in self.changes:
            out.append((t, "product.change_price", {"sku": sku, "price": money(cents)}))
        out.sort(key=lambda e: e[0])
        return out


def _euros(cents: int) -> str:
    return f"{cents / 100:.2f}"


def tables() -> dict[str, str]:
    """The catalogue as the Markdown tables docs/demo-model.md quotes, by name."""
    rows = []
    for p in PRODUCTS:
        life = []
        if p.launched:
            life.append(f"launched at {p.launched:g}")
        if p.retired is not None:
            life.append(f"retired at {p.retired:g}")
        changes = [f"{_euros(c)} at {f:g}" for s, f, c in PRICE_CHANGES if s == p.sku]
        rows.append(
            [
                p.sku,
                p.name,
                p.category,
                p.kind + (f"/{p.period}" if p.period else ""),
                _euros(p.price),
                price_segment(p.price),
                ", ".join(changes) or "-",
                ", ".join(life) or "-",
                f"{p.returns:g}",
                p.fits or "-",
                "yes" if p.business else "-",
            ]
        )
    header = [
        "sku",
        "name",
        "category",
        "kind",
        "EUR",
        "segment",
        "price changes",
        "life",
        "return rate",
        "fits",
        "business only",
    ]
    pipes = [
        [name, " -> ".join(f"{s} {p}" for s, p in stages), ", ".join(SALES_TEAM[name])]
        for name, stages in PIPELINES.items()
    ]
    return {
        "products": _table(header, rows),
        "pipelines": _table(["pipeline", "stages (probability)", "owners"], pipes),
    }
