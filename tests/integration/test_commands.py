"""The command path on both backends: concurrency, idempotency, merges, forgetting, bad input."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any
from uuid import UUID, uuid4

import pytest
from msgspec.structs import replace

from domain.customers import errors as err
from domain.customers.state import CustomerState
from domain.events import FORGOTTEN
from handlers.decision import CommandContext
from handlers.deps import load_customer
from handlers.errors import InvalidCommand, MalformedMessage, UnknownCommand
from handlers.parsing import parse_message
from infra.engine import Engine, open_engine

CTX = CommandContext(actor="employee:e-1", channel="web")


@pytest.fixture
def engine(store_url: str) -> Iterator[Engine]:
    with open_engine(store_url, env={}) as e:
        yield e


def run(engine: Engine, name: str, data: dict[str, Any], **ctx: Any) -> Any:
    return engine.bus.execute_json(name, data, replace(CTX, **ctx))


def register(engine: Engine, **data: Any) -> UUID:
    result = run(engine, "customer.register", {"name": "Ada Lovelace", **data})
    return result.streams[0].id


def state(engine: Engine, customer_id: UUID) -> CustomerState:
    return load_customer(engine.bus.deps, customer_id)


class TestConcurrency:
    def test_concurrent_commands_on_one_customer_never_lose_an_update(self, engine: Engine) -> None:
        cid = register(engine)
        channels = [f"channel-{i}" for i in range(12)]
        errors: list[BaseException] = []
        start = threading.Barrier(len(channels))

        def grant(channel: str) -> None:
            try:
                start.wait()
                run(
                    engine,
                    "customer.grant_consent",
                    {"customer_id": str(cid), "consent_channel": channel},
                )
            except BaseException as e:
                errors.append(e)

        threads = [threading.Thread(target=grant, args=(c,)) for c in channels]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert errors == []
        s = state(engine, cid)
        assert {c for c, _ in s.consents} == set(channels)
        assert s.version == 1 + len(channels)


class TestIdempotency:
    def test_a_repeated_command_id_returns_the_first_answer_and_appends_nothing(
        self, engine: Engine
    ) -> None:
        cid = register(engine)
        body = {"customer_id": str(cid), "direction": "in", "duration_min": 5}
        first = run(engine, "interaction.log_call", body, command_id="call-1")
        head = engine.store.head()
        again = run(engine, "interaction.log_call", body, command_id="call-1")
        assert again == first
        assert engine.store.head() == head
        assert first.positions == [head]

    def test_a_commit_re_run_after_a_dropped_connection_appends_nothing(
        self, engine: Engine
    ) -> None:
        """The store's retry re-runs a commit whose acknowledgement was lost: the re-run meets
        the command record and the command answers with the first result."""
        cid = register(engine)
        backend = engine.store.backend
        real = backend.standard

        class CommitTwice:
            def __getattr__(self, name: str) -> Any:
                return getattr(real, name)

            def insert_events(self, stored: Any, **kwargs: Any) -> Any:
                real.insert_events(stored, **kwargs)  # committed; then "the connection dropped"
                return real.insert_events(stored, **kwargs)  # the retry

        backend.standard = CommitTwice()  # type: ignore[assignment]
        try:
            result = run(
                engine,
                "customer.change_stage",
                {"customer_id": str(cid), "stage": "customer"},
                command_id="stage-1",
            )
        finally:
            backend.standard = real
        assert result.streams[0].version == 2
        assert [e.type for e in engine.store.read_stream(cid)] == [
            "customer.registered",
            "customer.stage_changed",
        ]
        assert (
            run(
                engine,
                "customer.change_stage",
                {"customer_id": str(cid), "stage": "customer"},
                command_id="stage-1",
            )
            == result
        )

    def test_without_a_command_id_a_no_op_appends_nothing(self, engine: Engine) -> None:
        cid = register(engine)
        head = engine.store.head()
        run(engine, "customer.change_stage", {"customer_id": str(cid), "stage": "lead"})
        assert engine.store.head() == head


class TestRegistryRules:
    def test_a_known_email_cannot_register_twice(self, engine: Engine) -> None:
        ada = register(engine, email="ada@example.org")
        with pytest.raises(err.ContactAlreadyRegistered) as info:
            register(engine, email="ADA@example.org ")
        assert info.value.owner == ada
        with pytest.raises(err.ContactAlreadyRegistered):
            run(
                engine,
                "customer.add_contact",
                {"customer_id": str(register(engine)), "kind": "email", "value": "ada@example.org"},
            )

    def test_a_removed_email_is_free_again(self, engine: Engine) -> None:
        ada = register(engine)
        run(
            engine,
            "customer.add_contact",
            {
                "customer_id": str(ada),
                "kind": "phone",
                "value": "+36 1 234",
                "contact_id": str(UUID(int=5)),
            },
        )
        run(
            engine,
            "customer.remove_contact",
            {"customer_id": str(ada), "contact_id": str(UUID(int=5))},
        )
        register(engine, phone="+361234")

    def test_a_command_to_a_merged_id_names_the_survivor(self, engine: Engine) -> None:
        survivor, dup = register(engine), register(engine)
        run(engine, "customer.merge", {"survivor_id": str(survivor), "merged_id": str(dup)})
        with pytest.raises(err.CustomerWasMerged) as info:
            run(engine, "interaction.log_email", {"customer_id": str(dup), "direction": "in"})
        assert info.value.survivor_id == survivor
        with pytest.raises(err.CustomerWasMerged):
            run(
                engine,
                "customer.merge",
                {"survivor_id": str(dup), "merged_id": str(register(engine))},
            )

    def test_merge_then_unmerge_restores_both_customers_exactly(self, engine: Engine) -> None:
        survivor = register(engine, email="s@example.org", stage="customer")
        dup = register(engine, email="d@example.org")
        run(engine, "customer.grant_consent", {"customer_id": str(dup), "consent_channel": "phone"})
        before = [
            replace(state(engine, c), version=0, last_occurred_at=None) for c in (survivor, dup)
        ]
        run(engine, "customer.merge", {"survivor_id": str(survivor), "merged_id": str(dup)})
        assert state(engine, dup).merged_into == survivor
        run(engine, "customer.unmerge", {"survivor_id": str(survivor), "merged_id": str(dup)})
        after = [
            replace(state(engine, c), version=0, last_occurred_at=None) for c in (survivor, dup)
        ]
        assert after == before
        trail = [e.type for e in engine.store.read_stream(dup)]
        assert trail[-2:] == ["customer.merged_into", "customer.unmerged"]

    def test_an_organisation_lists_its_contact_persons(self, engine: Engine) -> None:
        org = register(engine, kind="organisation", name="Acme Kft.")
        anna, bela = register(engine, name="Anna"), register(engine, name="Béla")
        for person, role in ((anna, "buyer"), (bela, "technician")):
            run(
                engine,
                "customer.link_contact_person",
                {"organisation_id": str(org), "person_id": str(person), "role": role},
            )
        assert state(engine, org).contact_persons == {anna: "buyer", bela: "technician"}
        with pytest.raises(err.NotAnOrganisation):
            run(
                engine,
                "customer.link_contact_person",
                {"organisation_id": str(anna), "person_id": str(bela), "role": "x"},
            )


class TestForget:
    def test_after_forget_no_event_of_the_customer_decodes_to_personal_data(
        self, engine: Engine
    ) -> None:
        cid = register(
            engine, name="Zsófia Kovács", email="zsofia@example.hu", phone="+36 30 999 8877"
        )
        run(
            engine,
            "customer.update_profile",
            {"customer_id": str(cid), "name": "Zsófia Kovács-Nagy"},
        )
        run(
            engine,
            "interaction.log_email",
            {
                "customer_id": str(cid),
                "direction": "in",
                "subject": "Zsófia's order",
                "body": "Call zsofia@example.hu",
            },
        )
        run(
            engine,
            "interaction.log_call",
            {
                "customer_id": str(cid),
                "direction": "out",
                "duration_min": 3,
                "notes": "Zsófia asked",
            },
        )
        other = register(engine, name="Other Person", email="other@example.org")
        run(engine, "customer.forget", {"customer_id": str(cid)})

        mine = [e for e in engine.store.read(0, limit=1000) if e.customer_id == cid]
        assert len(mine) == 5
        for event in mine:
            text = repr(event.payload)
            assert "Zsófia" not in text and "zsofia@" not in text and "999 8877" not in text
        assert any(FORGOTTEN in repr(e.payload) for e in mine)
        for raw in engine.store.read_rows(0, limit=1000):
            assert "Zsófia".encode() not in raw.state
        assert (
            next(e for e in engine.store.read(0, limit=1000) if e.customer_id == other).forgotten
            == ()
        )
        with pytest.raises(err.CustomerIsForgotten):
            run(
                engine,
                "interaction.log_call",
                {"customer_id": str(cid), "direction": "in", "duration_min": 1},
            )
        register(engine, email="zsofia@example.hu")  # the e-mail is free again

    def test_forget_twice_is_harmless(self, engine: Engine) -> None:
        cid = register(engine)
        run(engine, "customer.forget", {"customer_id": str(cid)}, command_id="f-1")
        run(engine, "customer.forget", {"customer_id": str(cid)})
        assert [e.type for e in engine.store.read_stream(cid)] == [
            "customer.registered",
            "customer.forgotten",
        ]


class TestBadInput:
    @pytest.mark.parametrize(
        ("name", "data", "error", "field"),
        [
            ("customer.teleport", {}, UnknownCommand, None),
            (
                "interaction.log_call",
                {"customer_id": "c", "direction": "in", "duration_min": 1},
                InvalidCommand,
                "customer_id",
            ),
            (
                "interaction.log_call",
                {"customer_id": str(UUID(int=1)), "direction": "in", "duration_min": "long"},
                InvalidCommand,
                "duration_min",
            ),
            (
                "interaction.log_call",
                {"customer_id": str(UUID(int=1)), "direction": "in"},
                InvalidCommand,
                "duration_min",
            ),
            (
                "interaction.log_call",
                {"customer_id": str(UUID(int=1)), "direction": "sideways", "duration_min": 1},
                InvalidCommand,
                "direction",
            ),
            ("customer.register", {"name": "A", "shoe_size": 44}, InvalidCommand, "shoe_size"),
            (
                "interaction.log_questionnaire",
                {
                    "customer_id": str(UUID(int=1)),
                    "questionnaire": "q",
                    "answers": [{"question": 1}],
                },
                InvalidCommand,
                "answers[0].question",
            ),
        ],
    )
    def test_typed_error_naming_the_field_and_nothing_appended(
        self,
        engine: Engine,
        name: str,
        data: dict[str, Any],
        error: type[Exception],
        field: str | None,
    ) -> None:
        import msgspec

        with pytest.raises(error) as info:
            engine.bus.execute_json(name, msgspec.json.encode(data), CTX)
        if field is not None:
            assert info.value.field == field  # type: ignore[attr-defined]
        assert engine.store.head() == 0

    def test_malformed_json(self, engine: Engine) -> None:
        with pytest.raises(MalformedMessage):
            engine.bus.execute_json("customer.register", b'{"name": "A"', CTX)
        with pytest.raises(MalformedMessage):
            parse_message(b'{"data": {}, "command_id": 5}')
        assert engine.store.head() == 0

    def test_unknown_customer(self, engine: Engine) -> None:
        with pytest.raises(err.CustomerNotFound):
            run(
                engine,
                "interaction.log_web",
                {"customer_id": str(uuid4()), "action": "visit", "page": "/"},
            )
