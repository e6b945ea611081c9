"""Named errors of offers; `code` is stable for replies and logs."""

from __future__ import annotations

from uuid import UUID

from domain import errors
from domain.errors import DomainError


class OfferError(DomainError):
    code = "offer_error"


class OfferNotFound(OfferError):
    code = "offer_not_found"

    def __init__(self, offer_id: UUID) -> None:
        super().__init__(f"offer {offer_id} was not presented")
        self.offer_id = offer_id


class OfferAlreadyPresented(OfferError):
    code = "offer_already_presented"

    def __init__(self, offer_id: UUID) -> None:
        super().__init__(f"offer {offer_id} is already presented")
        self.offer_id = offer_id


class OfferWasDeclined(OfferError):
    """A declined offer stays declined: accepting it is an error, present a new one."""

    code = "offer_was_declined"

    def __init__(self, offer_id: UUID) -> None:
        super().__init__(f"offer {offer_id} was declined; it cannot be accepted")
        self.offer_id = offer_id


class OfferWasAccepted(OfferError):
    code = "offer_was_accepted"

    def __init__(self, offer_id: UUID) -> None:
        super().__init__(f"offer {offer_id} was accepted; it cannot be declined")
        self.offer_id = offer_id


class NoConsent(OfferError):
    """Offers go only through a channel the customer consented to for marketing."""

    code = "no_consent"

    def __init__(self, customer_id: UUID, channel: str) -> None:
        super().__init__(f"customer {customer_id} has no consent to marketing by {channel}")
        self.customer_id = customer_id
        self.channel = channel


class AlreadyOwned(OfferError):
    code = "already_owned"

    def __init__(self, customer_id: UUID, sku: str) -> None:
        super().__init__(f"customer {customer_id} already owns {sku!r}")
        self.customer_id = customer_id
        self.sku = sku


class ReturnedBefore(OfferError):
    code = "returned_before"

    def __init__(self, customer_id: UUID, sku: str) -> None:
        super().__init__(f"customer {customer_id} returned {sku!r}; it is not offered again")
        self.customer_id = customer_id
        self.sku = sku


class DeclinedBefore(OfferError):
    code = "declined_before"

    def __init__(self, customer_id: UUID, sku: str) -> None:
        super().__init__(f"customer {customer_id} declined {sku!r}; it is not offered again")
        self.customer_id = customer_id
        self.sku = sku


class NotOnSale(OfferError):
    code = "not_on_sale"

    def __init__(self, sku: str) -> None:
        super().__init__(f"{sku!r} is not an active product")
        self.sku = sku


class CustomerNotLive(OfferError):
    code = "customer_not_live"

    def __init__(self, customer_id: UUID) -> None:
        super().__init__(f"customer {customer_id} is unknown, merged or forgotten")
        self.customer_id = customer_id


class EventBeforeLast(errors.EventBeforeLast, OfferError):
    """A lifecycle stream moves forward in business time."""
