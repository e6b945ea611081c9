"""The customer record as decisions need it, folded from the customer's own stream."""

from __future__ import annotations

from datetime import date, datetime
from uuid import UUID, uuid5

import msgspec
from msgspec.structs import replace

from domain.customers import events as ev
from domain.events import DomainEvent
from domain.streams import fold_events

PRIMARY_CONTACTS = UUID("8a5b0c1e-3f7d-4c1a-9e2b-6d4f0a7c9e11")


def primary_contact_id(customer_id: UUID, kind: str) -> UUID:
    """The id of the e-mail or phone given at registration (stable, derived, no randomness)."""
    return uuid5(PRIMARY_CONTACTS, f"{customer_id}:{kind}")


class Contact(msgspec.Struct, frozen=True, kw_only=True):
    kind: ev.ContactKind
    value: str
    label: str | None = None
    verified: bool = False


class CustomerState(msgspec.Struct, frozen=True, kw_only=True):
    customer_id: UUID
    version: int = 0
    kind: ev.CustomerKind | None = None
    name: str | None = None
    birth_date: date | None = None
    gender: ev.Gender = "unknown"
    income_band: str | None = None
    purpose: str | None = None
    stage: ev.Stage = "lead"
    source: str | None = None
    contacts: dict[UUID, Contact] = {}
    consents: frozenset[tuple[str, str]] = frozenset()
    contact_persons: dict[UUID, str] = {}
    merged_into: UUID | None = None
    absorbed: frozenset[UUID] = frozenset()
    forgotten: bool = False
    last_occurred_at: datetime | None = None
    owner: str | None = None

    @property
    def registered(self) -> bool:
        return self.kind is not None

    def has_consent(self, channel: str, purpose: str) -> bool:
        return (channel, purpose) in self.consents

    def contact_with(self, kind: str, value: str) -> UUID | None:
        return next(
            (cid for cid, c in self.contacts.items() if c.kind == kind and c.value == value), None
        )


def evolve(state: CustomerState, event: DomainEvent) -> CustomerState:
    """Apply one event of the customer's stream (pure)."""
    match event:
        case ev.CustomerRegistered():
            contacts = {
                primary_contact_id(state.customer_id, kind): Contact(kind=kind, value=value)  # type: ignore[arg-type]
                for kind, value in (("email", event.email), ("phone", event.phone))
                if value
            }
            return replace(
                state,
                kind=event.kind,
                name=event.name,
                birth_date=event.birth_date,
                gender=event.gender,
                income_band=event.income_band,
                purpose=event.purpose,
                stage=event.stage,
                source=event.source,
                contacts=contacts,
            )
        case ev.ProfileUpdated():
            changes = {
                f: getattr(event, f)
                for f in ("name", "birth_date", "gender", "income_band", "purpose")
                if getattr(event, f) is not None
            }
            return replace(state, **changes)
        case ev.StageChanged():
            return replace(state, stage=event.stage)
        case ev.ContactAdded():
            contact = Contact(kind=event.contact_kind, value=event.value, label=event.label)
            return replace(state, contacts={**state.contacts, event.contact_id: contact})
        case ev.ContactVerified():
            old = state.contacts[event.contact_id]
            return replace(
                state, contacts={**state.contacts, event.contact_id: replace(old, verified=True)}
            )
        case ev.ContactRemoved():
            return replace(
                state, contacts={k: v for k, v in state.contacts.items() if k != event.contact_id}
            )
        case ev.ConsentGranted():
            return replace(
                state, consents=state.consents | {(event.consent_channel, event.purpose)}
            )
        case ev.ConsentWithdrawn():
            return replace(
                state, consents=state.consents - {(event.consent_channel, event.purpose)}
            )
        case ev.ContactPersonLinked():
            return replace(
                state, contact_persons={**state.contact_persons, event.person_id: event.role}
            )
        case ev.ContactPersonUnlinked():
            persons = {k: v for k, v in state.contact_persons.items() if k != event.person_id}
            return replace(state, contact_persons=persons)
        case ev.CustomerMergedInto():
            return replace(state, merged_into=event.survivor_id)
        case ev.CustomerUnmerged():
            return replace(state, merged_into=None)
        case ev.CustomerAbsorbed():
            return replace(state, absorbed=state.absorbed | {event.merged_id})
        case ev.CustomerReleased():
            return replace(state, absorbed=state.absorbed - {event.merged_id})
        case ev.OwnerAssigned():
            return replace(state, owner=event.owner)
        case ev.CustomerForgotten():
            return replace(state, forgotten=True, name=None, birth_date=None, contacts={})
    return state


def fold(
    customer_id: UUID,
    events: list[tuple[int, datetime, DomainEvent]],
    start: CustomerState | None = None,
) -> CustomerState:
    """State after (version, occurred_at, payload) triples in version order, from `start`
    (a state folded earlier, whose version the first triple follows) or from nothing."""
    start = start if start is not None else CustomerState(customer_id=customer_id)
    return fold_events(lambda s, e, _at: evolve(s, e), start, events)
