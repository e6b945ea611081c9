"""Decisions on the audience registry: names defined once, references to live audiences only,
no `member(...)` cycle, versions on change, retiring what nothing uses; and the fold."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from domain.audiences import commands as cmd
from domain.audiences import decide
from domain.audiences import events as ev
from domain.audiences import state as st
from domain.audiences.errors import (
    AudienceAlreadyDefined,
    AudienceCycle,
    AudienceInUse,
    AudienceNotFound,
    AudienceRetired,
    RuleSyntaxError,
    UnknownAudience,
)
from domain.events import DomainEvent

AT = datetime(2026, 6, 1, tzinfo=UTC)


def apply(state: st.Registry, events: list[DomainEvent]) -> st.Registry:
    triples = [(state.version + i, AT, e) for i, e in enumerate(events, start=1)]
    for version, _, e in triples:
        state = st.evolve(state, e)
        state = st.Registry(
            stream_id=state.stream_id, version=version, definitions=state.definitions
        )
    return state


def defined(*pairs: tuple[str, str]) -> st.Registry:
    s = st.Registry()
    for name, rule in pairs:
        s = apply(s, decide.define(s, cmd.DefineAudience(name=name, rule=rule)))
    return s


class TestDefine:
    def test_stores_the_parsed_rule_its_text_and_version_one(self) -> None:
        (e,) = decide.define(
            st.Registry(),
            cmd.DefineAudience(name="big", rule="sum(call.duration_min,last 4 months)>300"),
        )
        assert isinstance(e, ev.AudienceDefined)
        assert (e.name, e.version, e.text) == (
            "big",
            1,
            "sum(call.duration_min, last 4 months) > 300",
        )
        assert e.rule.expr.event == "interaction.call_logged"  # type: ignore[union-attr]

    def test_a_name_is_defined_once_even_when_retired(self) -> None:
        s = defined(("a", "consent(email)"))
        with pytest.raises(AudienceAlreadyDefined):
            decide.define(s, cmd.DefineAudience(name="a", rule="consent(phone)"))
        s = apply(s, decide.retire(s, cmd.RetireAudience(name="a")))
        with pytest.raises(AudienceAlreadyDefined):
            decide.define(s, cmd.DefineAudience(name="a", rule="consent(phone)"))

    @pytest.mark.parametrize("rule", ["member(nobody)", "consent(email) and member(gone)"])
    def test_unknown_or_retired_references_are_refused(self, rule: str) -> None:
        s = defined(("gone", "consent(email)"))
        s = apply(s, decide.retire(s, cmd.RetireAudience(name="gone")))
        with pytest.raises(UnknownAudience):
            decide.define(s, cmd.DefineAudience(name="x", rule=rule))

    def test_a_bad_rule_raises_the_rule_languages_error(self) -> None:
        with pytest.raises(RuleSyntaxError) as caught:
            decide.define(
                st.Registry(),
                cmd.DefineAudience(name="x", rule="sum(call.duration_min, 4 months) > 1"),
            )
        assert caught.value.column == 24

    def test_self_reference_is_a_cycle(self) -> None:
        with pytest.raises(AudienceCycle) as caught:
            decide.define(st.Registry(), cmd.DefineAudience(name="me", rule="member(me)"))
        assert caught.value.cycle == ["me", "me"]


class TestChangeAndRetire:
    def test_change_makes_a_new_version_and_same_rule_decides_nothing(self) -> None:
        s = defined(("a", "consent(email)"))
        (e,) = decide.change(s, cmd.ChangeAudience(name="a", rule="consent(phone)"))
        assert isinstance(e, ev.AudienceChanged) and e.version == 2
        assert decide.change(s, cmd.ChangeAudience(name="a", rule="consent( email )")) == []

    def test_change_that_closes_a_cycle_is_refused(self) -> None:
        s = defined(("a", "consent(email)"), ("b", "member(a)"), ("c", "member(b)"))
        with pytest.raises(AudienceCycle) as caught:
            decide.change(s, cmd.ChangeAudience(name="a", rule="member(c)"))
        assert caught.value.cycle == ["a", "c", "b", "a"]

    def test_unknown_or_retired_cannot_change_or_retire(self) -> None:
        s = defined(("a", "consent(email)"))
        with pytest.raises(AudienceNotFound):
            decide.change(s, cmd.ChangeAudience(name="z", rule="consent(email)"))
        with pytest.raises(AudienceNotFound):
            decide.retire(s, cmd.RetireAudience(name="z"))
        s = apply(s, decide.retire(s, cmd.RetireAudience(name="a")))
        with pytest.raises(AudienceRetired):
            decide.change(s, cmd.ChangeAudience(name="a", rule="consent(phone)"))
        with pytest.raises(AudienceRetired):
            decide.retire(s, cmd.RetireAudience(name="a"))

    def test_an_audience_in_use_stays(self) -> None:
        s = defined(("a", "consent(email)"), ("b", "member(a)"))
        with pytest.raises(AudienceInUse) as caught:
            decide.retire(s, cmd.RetireAudience(name="a"))
        assert caught.value.users == ["b"]

    def test_dependency_order_puts_referred_audiences_first(self) -> None:
        s = defined(("z", "consent(email)"), ("y", "member(z)"), ("a", "member(y) or member(z)"))
        assert [d.name for d in st.dependency_order(s.definitions)] == ["z", "y", "a"]
