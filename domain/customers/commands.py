"""Commands of the customer registry. Each is a msgspec Struct named by its tag."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated
from uuid import UUID

import msgspec

from domain.commands import Command
from domain.customers.events import ContactKind, CustomerKind, Gender, Stage

NonEmpty = Annotated[str, msgspec.Meta(min_length=1, max_length=500)]
Label = Annotated[str, msgspec.Meta(min_length=1, max_length=100)]


class CustomerCommand(Command, frozen=True, kw_only=True):
    """`occurred_at` is business time as the source reports it; the engine's clock if absent."""

    occurred_at: datetime | None = None


class RegisterCustomer(CustomerCommand, frozen=True, kw_only=True, tag="customer.register"):
    customer_id: UUID | None = None
    kind: CustomerKind = "person"
    name: NonEmpty
    email: NonEmpty | None = None
    phone: NonEmpty | None = None
    birth_date: date | None = None
    gender: Gender = "unknown"
    income_band: Label | None = None
    purpose: Label | None = None
    stage: Stage = "lead"
    source: Label = "unknown"


class UpdateProfile(CustomerCommand, frozen=True, kw_only=True, tag="customer.update_profile"):
    customer_id: UUID
    name: NonEmpty | None = None
    birth_date: date | None = None
    gender: Gender | None = None
    income_band: Label | None = None
    purpose: Label | None = None


class ChangeStage(CustomerCommand, frozen=True, kw_only=True, tag="customer.change_stage"):
    customer_id: UUID
    stage: Stage
    source: Label | None = None


class AddContact(CustomerCommand, frozen=True, kw_only=True, tag="customer.add_contact"):
    customer_id: UUID
    contact_id: UUID | None = None
    kind: ContactKind
    value: NonEmpty
    label: Label | None = None


class VerifyContact(CustomerCommand, frozen=True, kw_only=True, tag="customer.verify_contact"):
    customer_id: UUID
    contact_id: UUID


class RemoveContact(CustomerCommand, frozen=True, kw_only=True, tag="customer.remove_contact"):
    customer_id: UUID
    contact_id: UUID


class GrantConsent(CustomerCommand, frozen=True, kw_only=True, tag="customer.grant_consent"):
    customer_id: UUID
    consent_channel: Label
    purpose: Label = "marketing"
    source: Label = "unknown"


class WithdrawConsent(CustomerCommand, frozen=True, kw_only=True, tag="customer.withdraw_consent"):
    customer_id: UUID
    consent_channel: Label
    purpose: Label = "marketing"
    source: Label = "unknown"


class LinkContactPerson(
    CustomerCommand, frozen=True, kw_only=True, tag="customer.link_contact_person"
):
    organisation_id: UUID
    person_id: UUID
    role: Label


class UnlinkContactPerson(
    CustomerCommand, frozen=True, kw_only=True, tag="customer.unlink_contact_person"
):
    organisation_id: UUID
    person_id: UUID


class MergeCustomers(CustomerCommand, frozen=True, kw_only=True, tag="customer.merge"):
    survivor_id: UUID
    merged_id: UUID


class UnmergeCustomers(CustomerCommand, frozen=True, kw_only=True, tag="customer.unmerge"):
    survivor_id: UUID
    merged_id: UUID


class AssignOwner(CustomerCommand, frozen=True, kw_only=True, tag="customer.assign_owner"):
    customer_id: UUID
    owner: Label


class ForgetCustomer(CustomerCommand, frozen=True, kw_only=True, tag="customer.forget"):
    customer_id: UUID
    reason: Label = "request"
