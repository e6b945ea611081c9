"""Money: Decimal amounts with a currency; arithmetic refuses mixed currencies and floats."""

from __future__ import annotations

from decimal import Decimal

import msgspec
import pytest

from domain.money import CurrencyMismatch, Money, total


def eur(x: str) -> Money:
    return Money(amount=Decimal(x), currency="EUR")


def test_sums_are_exact_and_round_half_to_even() -> None:
    assert total([eur("0.10")] * 3, "EUR") == eur("0.30")
    assert eur("2.345").rounded() == eur("2.34") and eur("2.355").rounded() == eur("2.36")
    assert eur("10") * 3 - eur("0.5") == eur("29.5")


def test_mixed_currencies_and_floats_are_refused() -> None:
    with pytest.raises(CurrencyMismatch):
        eur("1") + Money(amount=Decimal(1), currency="USD")
    with pytest.raises(TypeError):
        eur("1") * 1.5  # type: ignore[operator]


def test_json_keeps_the_decimal_and_checks_the_currency_code() -> None:
    assert msgspec.json.decode(msgspec.json.encode(eur("19.99")), type=Money) == eur("19.99")
    with pytest.raises(msgspec.ValidationError, match="currency"):
        msgspec.json.decode(b'{"amount": "1", "currency": "euro"}', type=Money)
