"""Money: a Decimal amount with its currency (never float). Arithmetic checks the currency."""

from __future__ import annotations

from decimal import ROUND_HALF_EVEN, Decimal
from typing import Annotated

import msgspec

from domain.errors import DomainError

Currency = Annotated[str, msgspec.Meta(pattern="^[A-Z]{3}$", description="ISO 4217 code")]
CENT = Decimal("0.01")


class CurrencyMismatch(DomainError):
    code = "currency_mismatch"

    def __init__(self, left: str, right: str) -> None:
        super().__init__(f"cannot combine {left} with {right}")
        self.left = left
        self.right = right


class Money(msgspec.Struct, frozen=True, kw_only=True):
    amount: Decimal
    currency: Currency

    @classmethod
    def zero(cls, currency: str) -> Money:
        return cls(amount=Decimal(0), currency=currency)

    def _same(self, other: Money) -> None:
        if other.currency != self.currency:
            raise CurrencyMismatch(self.currency, other.currency)

    def __add__(self, other: Money) -> Money:
        self._same(other)
        return Money(amount=self.amount + other.amount, currency=self.currency)

    def __sub__(self, other: Money) -> Money:
        self._same(other)
        return Money(amount=self.amount - other.amount, currency=self.currency)

    def __mul__(self, factor: int | Decimal) -> Money:
        if isinstance(factor, float):
            raise TypeError("money is never multiplied by a float; use Decimal")
        return Money(amount=self.amount * factor, currency=self.currency)

    __rmul__ = __mul__

    def __neg__(self) -> Money:
        return Money(amount=-self.amount, currency=self.currency)

    def __lt__(self, other: Money) -> bool:
        self._same(other)
        return self.amount < other.amount

    def __le__(self, other: Money) -> bool:
        self._same(other)
        return self.amount <= other.amount

    def rounded(self) -> Money:
        """To the cent, half to even (banker's rounding)."""
        return Money(amount=self.amount.quantize(CENT, ROUND_HALF_EVEN), currency=self.currency)

    def __str__(self) -> str:
        return f"{self.rounded().amount} {self.currency}"


def total(amounts: list[Money], currency: str) -> Money:
    out = Money.zero(currency)
    for m in amounts:
        out = out + m
    return out
