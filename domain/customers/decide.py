"""Decisions of the customer registry: `decide_*(state, command) -> events` (pure).

A command that changes nothing decides no events (granting a consent twice is not an error);
a command that breaks an invariant raises a named CustomerError.
"""

from __future__ import annotations

from uuid import UUID

from domain.customers import commands as cmd
from domain.customers import errors as err
from domain.customers import events as ev
from domain.customers.state import CustomerState
from domain.events import DomainEvent


def ensure_live(state: CustomerState) -> None:
    """The customer exists, was not merged away and was not forgotten."""
    if not state.registered:
        raise err.CustomerNotFound(state.customer_id)
    if state.forgotten:
        raise err.CustomerIsForgotten(state.customer_id)
    if state.merged_into is not None:
        raise err.CustomerWasMerged(state.customer_id, state.merged_into)


def register(state: CustomerState, c: cmd.RegisterCustomer) -> list[DomainEvent]:
    if state.registered:
        raise err.CustomerAlreadyRegistered(state.customer_id)
    return [
        ev.CustomerRegistered(
            kind=c.kind,
            name=c.name,
            email=c.email,
            phone=c.phone,
            birth_date=c.birth_date,
            gender=c.gender,
            income_band=c.income_band,
            purpose=c.purpose,
            stage=c.stage,
            source=c.source,
        )
    ]


def update_profile(state: CustomerState, c: cmd.UpdateProfile) -> list[DomainEvent]:
    ensure_live(state)
    fields = ("name", "birth_date", "gender", "income_band", "purpose")
    changed = {
        f: getattr(c, f)
        for f in fields
        if getattr(c, f) is not None and getattr(c, f) != getattr(state, f)
    }
    return [ev.ProfileUpdated(**changed)] if changed else []


def change_stage(state: CustomerState, c: cmd.ChangeStage) -> list[DomainEvent]:
    ensure_live(state)
    if c.stage == state.stage:
        return []
    return [ev.StageChanged(stage=c.stage, previous=state.stage, source=c.source)]


def add_contact(state: CustomerState, c: cmd.AddContact, contact_id: UUID) -> list[DomainEvent]:
    ensure_live(state)
    if state.contact_with(c.kind, c.value) is not None:
        return []
    return [
        ev.ContactAdded(contact_id=contact_id, contact_kind=c.kind, value=c.value, label=c.label)
    ]


def verify_contact(state: CustomerState, c: cmd.VerifyContact) -> list[DomainEvent]:
    ensure_live(state)
    contact = state.contacts.get(c.contact_id)
    if contact is None:
        raise err.ContactNotFound(state.customer_id, c.contact_id)
    return [] if contact.verified else [ev.ContactVerified(contact_id=c.contact_id)]


def remove_contact(state: CustomerState, c: cmd.RemoveContact) -> list[DomainEvent]:
    ensure_live(state)
    if c.contact_id not in state.contacts:
        raise err.ContactNotFound(state.customer_id, c.contact_id)
    return [ev.ContactRemoved(contact_id=c.contact_id)]


def grant_consent(state: CustomerState, c: cmd.GrantConsent) -> list[DomainEvent]:
    ensure_live(state)
    if state.has_consent(c.consent_channel, c.purpose):
        return []
    return [
        ev.ConsentGranted(consent_channel=c.consent_channel, purpose=c.purpose, source=c.source)
    ]


def withdraw_consent(state: CustomerState, c: cmd.WithdrawConsent) -> list[DomainEvent]:
    ensure_live(state)
    if not state.has_consent(c.consent_channel, c.purpose):
        raise err.ConsentNotGiven(c.consent_channel, c.purpose)
    return [
        ev.ConsentWithdrawn(consent_channel=c.consent_channel, purpose=c.purpose, source=c.source)
    ]


def link_contact_person(
    organisation: CustomerState, person: CustomerState, c: cmd.LinkContactPerson
) -> list[DomainEvent]:
    ensure_live(organisation)
    ensure_live(person)
    if organisation.kind != "organisation":
        raise err.NotAnOrganisation(organisation.customer_id)
    if person.kind != "person":
        raise err.NotAPerson(person.customer_id)
    if organisation.contact_persons.get(person.customer_id) == c.role:
        return []
    return [ev.ContactPersonLinked(person_id=person.customer_id, role=c.role)]


def unlink_contact_person(
    organisation: CustomerState, c: cmd.UnlinkContactPerson
) -> list[DomainEvent]:
    ensure_live(organisation)
    if c.person_id not in organisation.contact_persons:
        raise err.ContactPersonNotLinked(organisation.customer_id, c.person_id)
    return [ev.ContactPersonUnlinked(person_id=c.person_id)]


def merge(
    survivor: CustomerState, merged: CustomerState
) -> tuple[list[DomainEvent], list[DomainEvent]]:
    """Events for (survivor, merged). Merging into a merged id names that id's survivor."""
    if survivor.customer_id == merged.customer_id:
        raise err.CannotMergeIntoItself(survivor.customer_id)
    ensure_live(survivor)
    ensure_live(merged)
    return (
        [ev.CustomerAbsorbed(merged_id=merged.customer_id)],
        [ev.CustomerMergedInto(survivor_id=survivor.customer_id)],
    )


def unmerge(
    survivor: CustomerState, merged: CustomerState
) -> tuple[list[DomainEvent], list[DomainEvent]]:
    """Undo a merge: both stand alone again, with the merge and its undoing in their trails."""
    for state in (survivor, merged):
        if not state.registered:
            raise err.CustomerNotFound(state.customer_id)
        if state.forgotten:
            raise err.CustomerIsForgotten(state.customer_id)
    if merged.merged_into != survivor.customer_id:
        raise err.NotMergedInto(merged.customer_id, survivor.customer_id)
    return (
        [ev.CustomerReleased(merged_id=merged.customer_id)],
        [ev.CustomerUnmerged(survivor_id=survivor.customer_id)],
    )


def assign_owner(state: CustomerState, c: cmd.AssignOwner) -> list[DomainEvent]:
    """Assigning the owner the account already has decides no events."""
    ensure_live(state)
    if c.owner == state.owner:
        return []
    return [ev.OwnerAssigned(owner=c.owner, previous=state.owner)]


def forget(state: CustomerState, c: cmd.ForgetCustomer) -> list[DomainEvent]:
    """Forgetting is allowed for merged customers too: their data is still theirs."""
    if not state.registered:
        raise err.CustomerNotFound(state.customer_id)
    if state.forgotten:
        return []
    return [ev.CustomerForgotten(reason=c.reason)]
