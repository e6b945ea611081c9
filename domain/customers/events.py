"""Events of the customer stream: registry, profile, contacts, consents, links, merges.

A customer's own stream holds only what changes the customer record; interactions live in
streams of their own (see domain/interactions) so that loading a customer to decide a command
costs the same whether they have 10 or 100,000 interactions.
"""

from __future__ import annotations

from datetime import date
from typing import Annotated, ClassVar, Literal
from uuid import UUID

from domain.events import EVENTS, PERSONAL, DomainEvent, PersonalStr

CustomerKind = Literal["person", "organisation"]
Stage = Literal["lead", "prospect", "customer", "former_customer"]
Gender = Literal["female", "male", "other", "unknown"]
ContactKind = Literal["email", "phone", "address"]


@EVENTS.register
class CustomerRegistered(DomainEvent, frozen=True, kw_only=True, tag="customer.registered"):
    """A person or an organisation became known to us, with where they came from."""

    kind: CustomerKind = "person"
    name: PersonalStr
    email: Annotated[str | None, PERSONAL] = None
    phone: Annotated[str | None, PERSONAL] = None
    birth_date: Annotated[date | None, PERSONAL] = None
    gender: Gender = "unknown"
    income_band: str | None = None
    source: str = "unknown"
    stage: Stage = "lead"
    purpose: str | None = None


@EVENTS.register
class ProfileUpdated(DomainEvent, frozen=True, kw_only=True, tag="customer.profile_updated"):
    """Some profile fields changed; a field left None did not change."""

    name: Annotated[str | None, PERSONAL] = None
    birth_date: Annotated[date | None, PERSONAL] = None
    gender: Gender | None = None
    income_band: str | None = None
    purpose: str | None = None


@EVENTS.register
class StageChanged(DomainEvent, frozen=True, kw_only=True, tag="customer.stage_changed"):
    stage: Stage
    previous: Stage
    source: str | None = None


@EVENTS.register
class ContactAdded(DomainEvent, frozen=True, kw_only=True, tag="customer.contact_added"):
    contact_id: UUID
    contact_kind: ContactKind
    value: PersonalStr
    label: str | None = None


@EVENTS.register
class ContactVerified(DomainEvent, frozen=True, kw_only=True, tag="customer.contact_verified"):
    contact_id: UUID


@EVENTS.register
class ContactRemoved(DomainEvent, frozen=True, kw_only=True, tag="customer.contact_removed"):
    contact_id: UUID


@EVENTS.register
class ConsentGranted(DomainEvent, frozen=True, kw_only=True, tag="customer.consent_granted"):
    consent_channel: str
    purpose: str
    source: str


@EVENTS.register
class ConsentWithdrawn(DomainEvent, frozen=True, kw_only=True, tag="customer.consent_withdrawn"):
    consent_channel: str
    purpose: str
    source: str


@EVENTS.register
class ContactPersonLinked(
    DomainEvent, frozen=True, kw_only=True, tag="customer.contact_person_linked"
):
    """On the organisation's stream: a person speaks for it in a role."""

    person_id: UUID
    role: str


@EVENTS.register
class ContactPersonUnlinked(
    DomainEvent, frozen=True, kw_only=True, tag="customer.contact_person_unlinked"
):
    person_id: UUID


@EVENTS.register
class CustomerMergedInto(DomainEvent, frozen=True, kw_only=True, tag="customer.merged_into"):
    """On the duplicate's stream: from now on it lives on as `survivor_id`."""

    survivor_id: UUID


@EVENTS.register
class CustomerAbsorbed(DomainEvent, frozen=True, kw_only=True, tag="customer.absorbed"):
    """On the survivor's stream: its views include the merged customer's whole history."""

    merged_id: UUID


@EVENTS.register
class CustomerUnmerged(DomainEvent, frozen=True, kw_only=True, tag="customer.unmerged"):
    """On the former duplicate's stream: the merge was undone; it stands on its own again."""

    survivor_id: UUID


@EVENTS.register
class CustomerReleased(DomainEvent, frozen=True, kw_only=True, tag="customer.released"):
    """On the survivor's stream: the merged customer was split off again."""

    merged_id: UUID


@EVENTS.register
class OwnerAssigned(DomainEvent, frozen=True, kw_only=True, tag="customer.owner_assigned"):
    """The employee who owns the account from now on (reminders are routed to them)."""

    owner: str
    previous: str | None = None


@EVENTS.register
class CustomerForgotten(DomainEvent, frozen=True, kw_only=True, tag="customer.forgotten"):
    """The customer asked to be forgotten: their data key was deleted, the log stays."""

    __forgets_customer__: ClassVar[bool] = True

    reason: str = "request"
