"""decide/evolve of the customer registry and interactions: pure, no I/O."""

from __future__ import annotations

from datetime import UTC, date, datetime
from uuid import UUID, uuid4

import pytest
from msgspec.structs import replace

from domain.customers import commands as cmd
from domain.customers import decide
from domain.customers import errors as err
from domain.customers import events as ev
from domain.customers.state import Contact, CustomerState, evolve, fold, primary_contact_id
from domain.events import DomainEvent
from domain.interactions import commands as icmd
from domain.interactions import events as iev
from domain.interactions.decide import log_interaction

T = datetime(2026, 5, 1, tzinfo=UTC)


def apply(state: CustomerState, events: list[DomainEvent]) -> CustomerState:
    for e in events:
        state = replace(evolve(state, e), version=state.version + 1)
    return state


def a_customer(kind: str = "person", **kw: object) -> CustomerState:
    state = CustomerState(customer_id=uuid4())
    register = cmd.RegisterCustomer(name="Ada", kind=kind, **kw)  # type: ignore[arg-type]
    return apply(state, decide.register(state, register))


def merged(state: CustomerState, into: UUID) -> CustomerState:
    return apply(state, [ev.CustomerMergedInto(survivor_id=into)])


class TestRegister:
    def test_registration_sets_the_profile_and_primary_contacts(self) -> None:
        s = a_customer(
            email="ada@x.org",
            phone="+1 555",
            birth_date=date(1990, 1, 2),
            stage="prospect",
            source="fair",
        )
        assert (s.kind, s.name, s.stage, s.source, s.birth_date) == (
            "person",
            "Ada",
            "prospect",
            "fair",
            date(1990, 1, 2),
        )
        assert s.contacts == {
            primary_contact_id(s.customer_id, "email"): Contact(kind="email", value="ada@x.org"),
            primary_contact_id(s.customer_id, "phone"): Contact(kind="phone", value="+1 555"),
        }

    def test_twice_is_an_error(self) -> None:
        s = a_customer()
        with pytest.raises(err.CustomerAlreadyRegistered):
            decide.register(s, cmd.RegisterCustomer(name="Ada"))


class TestLiveness:
    @pytest.mark.parametrize(
        "command",
        [
            lambda cid: cmd.UpdateProfile(customer_id=cid, name="B"),
            lambda cid: cmd.ChangeStage(customer_id=cid, stage="customer"),
            lambda cid: cmd.GrantConsent(customer_id=cid, consent_channel="email"),
        ],
    )
    def test_unknown_merged_and_forgotten_customers_are_named(self, command) -> None:  # type: ignore[no-untyped-def]
        handler = {
            cmd.UpdateProfile: decide.update_profile,
            cmd.ChangeStage: decide.change_stage,
            cmd.GrantConsent: decide.grant_consent,
        }
        unknown = CustomerState(customer_id=uuid4())
        c = command(unknown.customer_id)
        with pytest.raises(err.CustomerNotFound):
            handler[type(c)](unknown, c)
        survivor = uuid4()
        gone = merged(a_customer(), survivor)
        with pytest.raises(err.CustomerWasMerged) as info:
            handler[type(c)](gone, command(gone.customer_id))
        assert info.value.survivor_id == survivor
        forgotten = apply(a_customer(), [ev.CustomerForgotten()])
        with pytest.raises(err.CustomerIsForgotten):
            handler[type(c)](forgotten, command(forgotten.customer_id))


class TestProfileAndStage:
    def test_only_changed_fields_are_recorded(self) -> None:
        s = a_customer(income_band="middle")
        events = decide.update_profile(
            s,
            cmd.UpdateProfile(
                customer_id=s.customer_id, name="Ada", income_band="high", purpose="gift"
            ),
        )
        assert events == [ev.ProfileUpdated(income_band="high", purpose="gift")]
        s = apply(s, events)
        assert (s.income_band, s.purpose, s.name) == ("high", "gift", "Ada")
        assert (
            decide.update_profile(s, cmd.UpdateProfile(customer_id=s.customer_id, name="Ada")) == []
        )

    def test_stage_changes_remember_the_previous(self) -> None:
        s = a_customer()
        assert (
            decide.change_stage(s, cmd.ChangeStage(customer_id=s.customer_id, stage="lead")) == []
        )
        events = decide.change_stage(
            s, cmd.ChangeStage(customer_id=s.customer_id, stage="customer", source="order")
        )
        assert events == [ev.StageChanged(stage="customer", previous="lead", source="order")]
        assert apply(s, events).stage == "customer"


class TestContacts:
    def test_add_verify_remove(self) -> None:
        s = a_customer()
        contact = uuid4()
        added = decide.add_contact(
            s, cmd.AddContact(customer_id=s.customer_id, kind="email", value="a@b.c"), contact
        )
        s = apply(s, added)
        assert s.contacts[contact] == Contact(kind="email", value="a@b.c")
        assert (
            decide.add_contact(
                s, cmd.AddContact(customer_id=s.customer_id, kind="email", value="a@b.c"), uuid4()
            )
            == []
        )
        s = apply(
            s,
            decide.verify_contact(
                s, cmd.VerifyContact(customer_id=s.customer_id, contact_id=contact)
            ),
        )
        assert s.contacts[contact].verified
        assert (
            decide.verify_contact(
                s, cmd.VerifyContact(customer_id=s.customer_id, contact_id=contact)
            )
            == []
        )
        s = apply(
            s,
            decide.remove_contact(
                s, cmd.RemoveContact(customer_id=s.customer_id, contact_id=contact)
            ),
        )
        assert contact not in s.contacts

    def test_unknown_contact_is_named(self) -> None:
        s = a_customer()
        with pytest.raises(err.ContactNotFound):
            decide.verify_contact(
                s, cmd.VerifyContact(customer_id=s.customer_id, contact_id=uuid4())
            )
        with pytest.raises(err.ContactNotFound):
            decide.remove_contact(
                s, cmd.RemoveContact(customer_id=s.customer_id, contact_id=uuid4())
            )


class TestConsents:
    def test_grant_is_idempotent_and_withdraw_needs_a_grant(self) -> None:
        s = a_customer()
        grant = cmd.GrantConsent(
            customer_id=s.customer_id,
            consent_channel="phone",
            purpose="marketing",
            source="web form",
        )
        s = apply(s, decide.grant_consent(s, grant))
        assert s.has_consent("phone", "marketing")
        assert decide.grant_consent(s, grant) == []
        withdraw = cmd.WithdrawConsent(
            customer_id=s.customer_id, consent_channel="phone", purpose="marketing"
        )
        s = apply(s, decide.withdraw_consent(s, withdraw))
        assert not s.has_consent("phone", "marketing")
        with pytest.raises(err.ConsentNotGiven):
            decide.withdraw_consent(s, withdraw)

    def test_consents_are_per_channel_and_purpose(self) -> None:
        s = a_customer()
        s = apply(
            s,
            decide.grant_consent(
                s,
                cmd.GrantConsent(
                    customer_id=s.customer_id, consent_channel="email", purpose="service"
                ),
            ),
        )
        with pytest.raises(err.ConsentNotGiven):
            decide.withdraw_consent(
                s,
                cmd.WithdrawConsent(
                    customer_id=s.customer_id, consent_channel="email", purpose="marketing"
                ),
            )


class TestOrganisations:
    def test_link_and_unlink_contact_persons(self) -> None:
        org, person = a_customer("organisation"), a_customer("person")
        link = cmd.LinkContactPerson(
            organisation_id=org.customer_id, person_id=person.customer_id, role="buyer"
        )
        org = apply(org, decide.link_contact_person(org, person, link))
        assert org.contact_persons == {person.customer_id: "buyer"}
        assert decide.link_contact_person(org, person, link) == []
        unlink = cmd.UnlinkContactPerson(
            organisation_id=org.customer_id, person_id=person.customer_id
        )
        org = apply(org, decide.unlink_contact_person(org, unlink))
        assert org.contact_persons == {}
        with pytest.raises(err.ContactPersonNotLinked):
            decide.unlink_contact_person(org, unlink)

    def test_kinds_are_checked(self) -> None:
        a, b = a_customer("person"), a_customer("person")
        link = cmd.LinkContactPerson(
            organisation_id=a.customer_id, person_id=b.customer_id, role="x"
        )
        with pytest.raises(err.NotAnOrganisation):
            decide.link_contact_person(a, b, link)
        org1, org2 = a_customer("organisation"), a_customer("organisation")
        with pytest.raises(err.NotAPerson):
            decide.link_contact_person(org1, org2, link)


class TestMerge:
    def test_merge_then_unmerge_restores_both(self) -> None:
        survivor, dup = a_customer(email="a@x"), a_customer(email="b@x")
        survivor = apply(
            survivor,
            decide.grant_consent(
                survivor,
                cmd.GrantConsent(customer_id=survivor.customer_id, consent_channel="email"),
            ),
        )
        before = (survivor, dup)
        to_s, to_d = decide.merge(survivor, dup)
        survivor, dup = apply(survivor, to_s), apply(dup, to_d)
        assert dup.merged_into == survivor.customer_id
        assert survivor.absorbed == {dup.customer_id}
        to_s, to_d = decide.unmerge(survivor, dup)
        survivor, dup = apply(survivor, to_s), apply(dup, to_d)
        for now, then in zip((survivor, dup), before, strict=True):
            assert replace(now, version=0) == replace(then, version=0)

    def test_merging_into_a_merged_id_names_its_survivor(self) -> None:
        root = uuid4()
        survivor, dup = merged(a_customer(), root), a_customer()
        with pytest.raises(err.CustomerWasMerged) as info:
            decide.merge(survivor, dup)
        assert info.value.survivor_id == root

    def test_merging_a_merged_id_or_itself_is_refused(self) -> None:
        a = a_customer()
        with pytest.raises(err.CannotMergeIntoItself):
            decide.merge(a, a)
        with pytest.raises(err.CustomerWasMerged):
            decide.merge(a, merged(a_customer(), uuid4()))

    def test_unmerge_needs_that_merge(self) -> None:
        a, b = a_customer(), a_customer()
        with pytest.raises(err.NotMergedInto):
            decide.unmerge(a, b)


class TestForget:
    def test_forget_blanks_the_state_and_is_idempotent(self) -> None:
        s = a_customer(email="a@x", birth_date=date(1980, 1, 1))
        s = apply(s, decide.forget(s, cmd.ForgetCustomer(customer_id=s.customer_id)))
        assert s.forgotten and s.name is None and s.birth_date is None and s.contacts == {}
        assert decide.forget(s, cmd.ForgetCustomer(customer_id=s.customer_id)) == []

    def test_unknown_customer(self) -> None:
        with pytest.raises(err.CustomerNotFound):
            decide.forget(
                CustomerState(customer_id=uuid4()), cmd.ForgetCustomer(customer_id=uuid4())
            )


class TestFold:
    def test_fold_sets_version_and_last_business_time(self) -> None:
        cid = uuid4()
        s = fold(
            cid,
            [
                (1, T, ev.CustomerRegistered(name="A")),
                (2, T, ev.StageChanged(stage="customer", previous="lead")),
            ],
        )
        assert (s.version, s.stage, s.last_occurred_at) == (2, "customer", T)


class TestInteractions:
    @pytest.mark.parametrize(
        ("command", "event"),
        [
            (
                icmd.LogEmail(customer_id=UUID(int=1), direction="in", subject="Offer"),
                iev.EmailLogged(direction="in", subject="Offer"),
            ),
            (
                icmd.LogCall(customer_id=UUID(int=1), direction="out", duration_min=12.5),
                iev.CallLogged(direction="out", duration_min=12.5),
            ),
            (
                icmd.LogMeeting(customer_id=UUID(int=1), duration_min=60, location="HQ"),
                iev.MeetingLogged(duration_min=60, location="HQ"),
            ),
            (
                icmd.LogQuestionnaire(
                    customer_id=UUID(int=1),
                    questionnaire="nps",
                    answers=[iev.Answer(question="q", answer="9")],
                ),
                iev.QuestionnaireAnswered(
                    questionnaire="nps", answers=[iev.Answer(question="q", answer="9")]
                ),
            ),
            (
                icmd.LogConversation(customer_id=UUID(int=1), medium="chat"),
                iev.ConversationLogged(medium="chat"),
            ),
            (
                icmd.LogWebActivity(customer_id=UUID(int=1), action="page_view", page="/tariffs"),
                iev.WebActivity(action="page_view", page="/tariffs"),
            ),
        ],
    )
    def test_every_channel(self, command: icmd.LogInteraction, event: DomainEvent) -> None:
        assert log_interaction(a_customer(), command) == event
        assert iev.CHANNEL_OF[type(event)] in {
            "email",
            "call",
            "meeting",
            "questionnaire",
            "conversation",
            "web",
        }

    def test_only_for_live_customers(self) -> None:
        with pytest.raises(err.CustomerWasMerged):
            log_interaction(
                merged(a_customer(), uuid4()),
                icmd.LogCall(customer_id=UUID(int=1), direction="in", duration_min=1),
            )
