"""decide/evolve of the product catalogue and price segments: pure, no I/O."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from uuid import uuid4

import msgspec
import pytest
from hypothesis import given, settings

from domain.events import EVENTS, DomainEvent
from domain.money import CurrencyMismatch, Money
from domain.products import commands as cmd
from domain.products import decide
from domain.products import errors as err
from domain.products import events as ev
from domain.products.state import (
    DEFAULT_PRICE_BANDS,
    PRICE_BANDS_STREAM,
    PriceBandsState,
    ProductState,
    check_price_bands,
    fold_bands,
    fold_product,
    product_stream_id,
    segment_of,
)
from tests.strategies import payloads

T = datetime(2026, 5, 1, tzinfo=UTC)
PRODUCT_EVENTS = [ev.ProductDefined, ev.ProductPriceChanged, ev.ProductRetired, ev.PriceBandsSet]


def eur(x: str | int) -> Money:
    return Money(amount=Decimal(x), currency="EUR")


def apply(state: ProductState, events: list[DomainEvent]) -> ProductState:
    return fold_product(
        state.product_id, [(state.version + i, T, e) for i, e in enumerate(events, 1)], state
    )


def a_product(kind: str = "good", price: str = "99", **kw: object) -> ProductState:
    state = ProductState(product_id=product_stream_id("SKU-1"))
    c = cmd.DefineProduct(
        sku="SKU-1",
        name="Router",
        category="hardware",
        kind=kind,  # type: ignore[arg-type]
        list_price=eur(price),
        **kw,  # type: ignore[arg-type]
    )
    return apply(state, decide.define(state, c))


def bands(*pairs: tuple[str, int | None]) -> tuple[ev.Band, ...]:
    return tuple(
        ev.Band(segment=name, below=None if bound is None else eur(bound)) for name, bound in pairs
    )


class TestDefine:
    def test_define_sets_the_product(self) -> None:
        s = a_product()
        assert (s.sku, s.name, s.category, s.kind, s.list_price, s.retired) == (
            "SKU-1",
            "Router",
            "hardware",
            "good",
            eur(99),
            False,
        )
        assert (s.version, s.last_occurred_at) == (1, T)

    def test_a_plan_has_a_billing_period(self) -> None:
        s = a_product("plan", price="19.90", billing_period="month")
        assert (s.kind, s.billing_period) == ("plan", "month")

    @pytest.mark.parametrize(
        ("kind", "period"), [("plan", None), ("good", "year"), ("service", "month")]
    )
    def test_billing_period_only_for_plans(self, kind: str, period: str | None) -> None:
        with pytest.raises(err.InvalidBillingPeriod) as info:
            a_product(kind, billing_period=period)
        assert info.value.code == "invalid_billing_period"

    def test_twice_is_an_error(self) -> None:
        s = a_product()
        with pytest.raises(err.ProductAlreadyDefined):
            decide.define(
                s,
                cmd.DefineProduct(sku="SKU-1", name="R", category="hardware", list_price=eur(1)),
            )

    def test_negative_price_is_refused(self) -> None:
        with pytest.raises(err.NegativePrice):
            a_product(price="-1")

    def test_stream_id_is_derived_from_the_sku(self) -> None:
        assert product_stream_id("SKU-1") == product_stream_id("SKU-1")
        assert product_stream_id("SKU-1") != product_stream_id("sku-1")
        assert PRICE_BANDS_STREAM not in {product_stream_id("SKU-1"), product_stream_id("")}


class TestChangePriceAndRetire:
    def test_price_change_records_old_and_new(self) -> None:
        s = a_product()
        events = decide.change_price(s, cmd.ChangePrice(sku="SKU-1", price=eur("89.50")))
        assert events == [ev.ProductPriceChanged(sku="SKU-1", old=eur(99), new=eur("89.50"))]
        assert apply(s, events).list_price == eur("89.50")

    def test_the_same_price_is_no_change(self) -> None:
        s = a_product()
        assert decide.change_price(s, cmd.ChangePrice(sku="SKU-1", price=eur("99.00"))) == []

    def test_price_errors(self) -> None:
        s = a_product()
        with pytest.raises(CurrencyMismatch) as info:
            decide.change_price(
                s, cmd.ChangePrice(sku="SKU-1", price=Money(amount=Decimal(1), currency="USD"))
            )
        assert info.value.code == "currency_mismatch"
        with pytest.raises(err.NegativePrice):
            decide.change_price(s, cmd.ChangePrice(sku="SKU-1", price=eur(-5)))
        with pytest.raises(err.ProductNotFound) as missing:
            decide.change_price(
                ProductState(product_id=uuid4()), cmd.ChangePrice(sku="NOPE", price=eur(1))
            )
        assert missing.value.sku == "NOPE"

    def test_retire_is_idempotent_and_ends_price_changes(self) -> None:
        s = a_product()
        events = decide.retire(s, cmd.RetireProduct(sku="SKU-1", reason="end of life"))
        assert events == [ev.ProductRetired(sku="SKU-1", reason="end of life")]
        s = apply(s, events)
        assert s.retired
        assert decide.retire(s, cmd.RetireProduct(sku="SKU-1")) == []
        with pytest.raises(err.ProductRetired):
            decide.change_price(s, cmd.ChangePrice(sku="SKU-1", price=eur(1)))

    def test_retiring_an_unknown_product(self) -> None:
        with pytest.raises(err.ProductNotFound):
            decide.retire(ProductState(product_id=uuid4()), cmd.RetireProduct(sku="X"))


class TestSegments:
    @pytest.mark.parametrize(
        ("price", "segment"),
        [
            ("0", "budget"),
            ("49.99", "budget"),
            ("50", "mid"),  # bounds are exclusive: 50 is not below 50
            ("199.99", "mid"),
            ("200.00", "premium"),
            ("100000", "premium"),
        ],
    )
    def test_default_bands_have_exclusive_upper_bounds(self, price: str, segment: str) -> None:
        assert segment_of(DEFAULT_PRICE_BANDS, "anything", eur(price)) == segment

    def test_a_category_has_its_own_bands_others_the_default(self) -> None:
        b = ev.PriceBands(
            default=bands(("cheap", 10), ("dear", None)),
            categories={"tariff": bands(("basic", 20), ("plus", 40), ("max", None))},
        )
        assert segment_of(b, "tariff", eur(20)) == "plus"
        assert segment_of(b, "tariff", eur(40)) == "max"
        assert segment_of(b, "hardware", eur(20)) == "dear"

    def test_another_currency_is_not_converted(self) -> None:
        with pytest.raises(CurrencyMismatch):
            segment_of(DEFAULT_PRICE_BANDS, "x", Money(amount=Decimal(1), currency="USD"))

    def test_the_default_bands_are_valid(self) -> None:
        check_price_bands(DEFAULT_PRICE_BANDS)

    @pytest.mark.parametrize(
        "listed",
        [
            (),
            bands(("a", 50), ("b", 20), ("c", None)),
            bands(("a", 50), ("b", 50), ("c", None)),
            bands(("a", None), ("b", 50)),
            bands(("a", 50), ("b", None), ("c", None)),
            bands(("a", 50), ("b", 200)),
            bands(("a", 50), ("a", None)),
            bands(("", None)),
            (
                ev.Band(segment="a", below=eur(1)),
                ev.Band(segment="b", below=Money(amount=Decimal(2), currency="USD")),
                ev.Band(segment="c"),
            ),
        ],
        ids=[
            "empty",
            "unsorted",
            "equal",
            "open_first",
            "two_open",
            "no_open_top",
            "dup_name",
            "blank_name",
            "mixed_currency",
        ],
    )
    def test_invalid_bands_are_refused(self, listed: tuple[ev.Band, ...]) -> None:
        for candidate in (
            ev.PriceBands(default=listed),
            ev.PriceBands(default=DEFAULT_PRICE_BANDS.default, categories={"tariff": listed}),
        ):
            with pytest.raises(err.InvalidPriceBands) as info:
                decide.set_price_bands(PriceBandsState(), cmd.SetPriceBands(bands=candidate))
            assert info.value.code == "invalid_price_bands"


class TestPriceBandsStream:
    def test_set_then_fold_and_set_again_is_no_change(self) -> None:
        new = ev.PriceBands(
            default=DEFAULT_PRICE_BANDS.default,
            categories={"tariff": bands(("basic", 20), ("max", None))},
        )
        state = PriceBandsState()
        assert state.bands == DEFAULT_PRICE_BANDS
        events = decide.set_price_bands(state, cmd.SetPriceBands(bands=new))
        assert events == [ev.PriceBandsSet(bands=new)]
        state = fold_bands([(1, T, e) for e in events], state)
        assert (state.bands, state.version, state.last_occurred_at) == (new, 1, T)
        assert decide.set_price_bands(state, cmd.SetPriceBands(bands=new)) == []


class TestContract:
    def test_command_names(self) -> None:
        assert [
            c.command_name()
            for c in (cmd.DefineProduct, cmd.ChangePrice, cmd.RetireProduct, cmd.SetPriceBands)
        ] == [
            "product.define",
            "product.change_price",
            "product.retire",
            "product.set_price_bands",
        ]

    @pytest.mark.parametrize("cls", PRODUCT_EVENTS, ids=lambda c: c.__struct_config__.tag)
    def test_events_are_registered_without_personal_data(self, cls: type[DomainEvent]) -> None:
        spec = EVENTS.spec_of(cls)
        assert spec.personal == ()
        assert EVENTS.get(spec.tag) is spec

    @pytest.mark.parametrize("cls", PRODUCT_EVENTS, ids=lambda c: c.__struct_config__.tag)
    def test_events_round_trip_through_json(self, cls: type[DomainEvent]) -> None:
        decoder = msgspec.json.Decoder(cls)

        @settings(max_examples=25, deadline=None)
        @given(payloads(cls))
        def check(event: DomainEvent) -> None:
            assert decoder.decode(msgspec.json.encode(event)) == event

        check()

    def test_a_sku_is_one_token(self) -> None:
        with pytest.raises(msgspec.ValidationError):
            msgspec.convert({"sku": "two words", "reason": None}, cmd.RetireProduct)
