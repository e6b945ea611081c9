"""Handlers of the customer registry: load, decide, hand back the events to append."""

from __future__ import annotations

from domain.customers import commands as cmd
from domain.customers import decide
from domain.customers.errors import ContactAlreadyRegistered
from domain.customers.state import CustomerState
from domain.events import DomainEvent
from handlers.decision import CommandContext, Decision
from handlers.deps import Deps, business_time, load_customer, new_id
from handlers.ports import ContactClaim
from handlers.registry import COMMANDS

UNIQUE_KINDS = ("email", "phone")


def _on_customer(
    ctx: CommandContext,
    c: cmd.CustomerCommand,
    deps: Deps,
    state: CustomerState,
    payloads: list[DomainEvent],
) -> Decision:
    return Decision().add(
        ctx,
        stream_id=state.customer_id,
        stream_type="customer",
        after_version=state.version,
        payloads=payloads,
        occurred_at=business_time(c, deps),
        customer_id=state.customer_id,
    )


def _ensure_free(deps: Deps, claims: list[ContactClaim]) -> None:
    for claim in claims:
        owner = deps.log.contact_owner(claim.kind, claim.value)
        if owner is not None and owner != claim.customer_id:
            raise ContactAlreadyRegistered(claim.kind, owner)


@COMMANDS.handles(cmd.RegisterCustomer)
def register(c: cmd.RegisterCustomer, ctx: CommandContext, deps: Deps) -> Decision:
    state = load_customer(deps, c.customer_id or new_id(ctx, "customer"))
    payloads = decide.register(state, c)
    claims = [
        ContactClaim(k, v, state.customer_id)
        for k, v in (("email", c.email), ("phone", c.phone))
        if v
    ]
    _ensure_free(deps, claims)
    decision = _on_customer(ctx, c, deps, state, payloads)
    decision.claims = claims
    return decision


@COMMANDS.handles(cmd.UpdateProfile)
def update_profile(c: cmd.UpdateProfile, ctx: CommandContext, deps: Deps) -> Decision:
    state = load_customer(deps, c.customer_id)
    return _on_customer(ctx, c, deps, state, decide.update_profile(state, c))


@COMMANDS.handles(cmd.ChangeStage)
def change_stage(c: cmd.ChangeStage, ctx: CommandContext, deps: Deps) -> Decision:
    state = load_customer(deps, c.customer_id)
    return _on_customer(ctx, c, deps, state, decide.change_stage(state, c))


@COMMANDS.handles(cmd.AddContact)
def add_contact(c: cmd.AddContact, ctx: CommandContext, deps: Deps) -> Decision:
    state = load_customer(deps, c.customer_id)
    payloads = decide.add_contact(state, c, c.contact_id or new_id(ctx, "contact"))
    claims = (
        [ContactClaim(c.kind, c.value, state.customer_id)]
        if c.kind in UNIQUE_KINDS and payloads
        else []
    )
    _ensure_free(deps, claims)
    decision = _on_customer(ctx, c, deps, state, payloads)
    decision.claims = claims
    return decision


@COMMANDS.handles(cmd.VerifyContact)
def verify_contact(c: cmd.VerifyContact, ctx: CommandContext, deps: Deps) -> Decision:
    state = load_customer(deps, c.customer_id)
    return _on_customer(ctx, c, deps, state, decide.verify_contact(state, c))


@COMMANDS.handles(cmd.RemoveContact)
def remove_contact(c: cmd.RemoveContact, ctx: CommandContext, deps: Deps) -> Decision:
    state = load_customer(deps, c.customer_id)
    decision = _on_customer(ctx, c, deps, state, decide.remove_contact(state, c))
    contact = state.contacts[c.contact_id]
    if contact.kind in UNIQUE_KINDS:
        decision.releases = [ContactClaim(contact.kind, contact.value, state.customer_id)]
    return decision


@COMMANDS.handles(cmd.GrantConsent)
def grant_consent(c: cmd.GrantConsent, ctx: CommandContext, deps: Deps) -> Decision:
    state = load_customer(deps, c.customer_id)
    return _on_customer(ctx, c, deps, state, decide.grant_consent(state, c))


@COMMANDS.handles(cmd.WithdrawConsent)
def withdraw_consent(c: cmd.WithdrawConsent, ctx: CommandContext, deps: Deps) -> Decision:
    state = load_customer(deps, c.customer_id)
    return _on_customer(ctx, c, deps, state, decide.withdraw_consent(state, c))


@COMMANDS.handles(cmd.LinkContactPerson)
def link_contact_person(c: cmd.LinkContactPerson, ctx: CommandContext, deps: Deps) -> Decision:
    organisation = load_customer(deps, c.organisation_id)
    person = load_customer(deps, c.person_id)
    return _on_customer(
        ctx, c, deps, organisation, decide.link_contact_person(organisation, person, c)
    )


@COMMANDS.handles(cmd.UnlinkContactPerson)
def unlink_contact_person(c: cmd.UnlinkContactPerson, ctx: CommandContext, deps: Deps) -> Decision:
    organisation = load_customer(deps, c.organisation_id)
    return _on_customer(ctx, c, deps, organisation, decide.unlink_contact_person(organisation, c))


@COMMANDS.handles(cmd.MergeCustomers)
def merge(c: cmd.MergeCustomers, ctx: CommandContext, deps: Deps) -> Decision:
    survivor, merged = load_customer(deps, c.survivor_id), load_customer(deps, c.merged_id)
    to_survivor, to_merged = decide.merge(survivor, merged)
    decision = _on_customer(ctx, c, deps, survivor, to_survivor)
    decision.events += _on_customer(ctx, c, deps, merged, to_merged).events
    return decision


@COMMANDS.handles(cmd.UnmergeCustomers)
def unmerge(c: cmd.UnmergeCustomers, ctx: CommandContext, deps: Deps) -> Decision:
    survivor, merged = load_customer(deps, c.survivor_id), load_customer(deps, c.merged_id)
    to_survivor, to_merged = decide.unmerge(survivor, merged)
    decision = _on_customer(ctx, c, deps, survivor, to_survivor)
    decision.events += _on_customer(ctx, c, deps, merged, to_merged).events
    return decision


@COMMANDS.handles(cmd.AssignOwner)
def assign_owner(c: cmd.AssignOwner, ctx: CommandContext, deps: Deps) -> Decision:
    state = load_customer(deps, c.customer_id)
    return _on_customer(ctx, c, deps, state, decide.assign_owner(state, c))


@COMMANDS.handles(cmd.ForgetCustomer)
def forget(c: cmd.ForgetCustomer, ctx: CommandContext, deps: Deps) -> Decision:
    """The key is deleted before the event is appended: a crash in between leaves a customer
    forgotten without its event, which a retry of the command then appends."""
    state = load_customer(deps, c.customer_id)
    decision = _on_customer(ctx, c, deps, state, decide.forget(state, c))
    decision.forget = state.customer_id
    return decision
