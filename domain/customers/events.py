"""Events of the customer stream."""

from __future__ import annotations

from datetime import date
from typing import Annotated, ClassVar, Literal

from domain.events import EVENTS, PERSONAL, DomainEvent, PersonalStr

CustomerKind = Literal["person", "organisation"]


@EVENTS.register
class CustomerRegistered(DomainEvent, frozen=True, kw_only=True, tag="customer.registered"):
    """A person or an organisation became known to us, with where they came from."""

    kind: CustomerKind = "person"
    name: PersonalStr
    email: Annotated[str | None, PERSONAL] = None
    phone: Annotated[str | None, PERSONAL] = None
    birth_date: Annotated[date | None, PERSONAL] = None
    gender: Literal["female", "male", "other", "unknown"] = "unknown"
    income_band: str | None = None
    source: str = "unknown"


@EVENTS.register
class CustomerForgotten(DomainEvent, frozen=True, kw_only=True, tag="customer.forgotten"):
    """The customer asked to be forgotten: their data key was deleted, the log stays."""

    __forgets_customer__: ClassVar[bool] = True

    reason: str = "request"
