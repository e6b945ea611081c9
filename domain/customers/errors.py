"""Named errors for every invariant of the customer registry."""

from __future__ import annotations

from uuid import UUID

from domain.errors import DomainError


class CustomerError(DomainError):
    code = "customer_error"


class CustomerNotFound(CustomerError):
    code = "customer_not_found"

    def __init__(self, customer_id: UUID) -> None:
        super().__init__(f"customer {customer_id} is not registered")
        self.customer_id = customer_id


class CustomerAlreadyRegistered(CustomerError):
    code = "customer_already_registered"

    def __init__(self, customer_id: UUID) -> None:
        super().__init__(f"customer {customer_id} is already registered")
        self.customer_id = customer_id


class CustomerWasMerged(CustomerError):
    """Commands go to the survivor; this id lives on only as a trail."""

    code = "customer_merged"

    def __init__(self, customer_id: UUID, survivor_id: UUID) -> None:
        super().__init__(f"customer {customer_id} was merged into {survivor_id}; use that id")
        self.customer_id = customer_id
        self.survivor_id = survivor_id


class CustomerIsForgotten(CustomerError):
    code = "customer_forgotten"

    def __init__(self, customer_id: UUID) -> None:
        super().__init__(f"customer {customer_id} was forgotten; nothing more can be recorded")
        self.customer_id = customer_id


class ContactAlreadyRegistered(CustomerError):
    """An e-mail or phone that belongs to another customer (found by its keyed hash)."""

    code = "contact_already_registered"

    def __init__(self, kind: str, owner: UUID) -> None:
        super().__init__(f"this {kind} is already registered to customer {owner}")
        self.kind = kind
        self.owner = owner


class ContactNotFound(CustomerError):
    code = "contact_not_found"

    def __init__(self, customer_id: UUID, contact_id: UUID) -> None:
        super().__init__(f"customer {customer_id} has no contact {contact_id}")


class ConsentNotGiven(CustomerError):
    code = "consent_not_given"

    def __init__(self, channel: str, purpose: str) -> None:
        super().__init__(f"no consent for {channel}/{purpose} to withdraw")


class NotAnOrganisation(CustomerError):
    code = "not_an_organisation"

    def __init__(self, customer_id: UUID) -> None:
        super().__init__(f"customer {customer_id} is not an organisation")


class NotAPerson(CustomerError):
    code = "not_a_person"

    def __init__(self, customer_id: UUID) -> None:
        super().__init__(f"customer {customer_id} is not a person")


class ContactPersonNotLinked(CustomerError):
    code = "contact_person_not_linked"

    def __init__(self, organisation_id: UUID, person_id: UUID) -> None:
        super().__init__(f"{person_id} is not a contact person of {organisation_id}")


class CannotMergeIntoItself(CustomerError):
    code = "cannot_merge_into_itself"

    def __init__(self, customer_id: UUID) -> None:
        super().__init__(f"customer {customer_id} cannot be merged into itself")


class NotMergedInto(CustomerError):
    code = "not_merged_into"

    def __init__(self, merged_id: UUID, survivor_id: UUID) -> None:
        super().__init__(f"customer {merged_id} is not merged into {survivor_id}")
