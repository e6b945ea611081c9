"""The group committer on both backends: a batch of commands decided against one overlay and
appended in one transaction, each command answered on its own (handlers/group_commit.py)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any
from uuid import UUID, uuid4

import pytest
from msgspec.structs import replace

from domain.customers.errors import ContactAlreadyRegistered, CustomerIsForgotten, CustomerNotFound
from handlers.decision import CommandContext
from handlers.deps import new_id
from handlers.errors import InvalidCommand
from handlers.group_commit import GroupCommitter, Submitted
from handlers.parsing import parse_command
from handlers.ports import CommandResult, GroupItem, GroupOutcome
from infra.engine import Engine, open_engine
from infra.store.event_store import EventStore, StreamVersionConflict


@pytest.fixture
def engine(store_url: str) -> Iterator[Engine]:
    with open_engine(store_url, env={}) as e:
        yield e


def sub(command: str, command_id: str | None = None, **data: Any) -> Submitted:
    data = {k: str(v) if isinstance(v, UUID) else v for k, v in data.items()}
    return Submitted(
        parse_command(command, data, strict=False),
        CommandContext(actor="test", channel="nats", command_id=command_id or uuid4().hex),
    )


def register(name: str = "Ada", command_id: str | None = None, **data: Any) -> Submitted:
    return sub("customer.register", command_id, name=name, **data)


def call(customer: UUID | str, minutes: int = 3, command_id: str | None = None) -> Submitted:
    return sub(
        "interaction.log_call",
        command_id,
        customer_id=customer,
        direction="in",
        duration_min=minutes,
    )


def customer_of(outcome: object) -> UUID:
    assert isinstance(outcome, CommandResult), outcome
    return outcome.streams[0].id


def test_a_batch_lands_in_one_transaction_and_each_command_is_answered_on_its_own(
    engine: Engine,
) -> None:
    committer = GroupCommitter(engine.bus, engine.store)  # type: ignore[arg-type]
    first = committer.run([register("Ada", "r-1", email="ada@example.com")])
    ada = customer_of(first[0])
    outcomes = committer.run(
        [
            call(ada, 5),
            register("Bob", "r-2", email="ADA@example.com"),  # taken: refused alone
            call(uuid4()),  # unknown customer: refused alone
            call(ada, 7),
            sub("customer.grant_consent", customer_id=ada, consent_channel="phone"),
        ]
    )
    assert isinstance(outcomes[1], ContactAlreadyRegistered)
    assert isinstance(outcomes[2], CustomerNotFound)
    landed = [o for o in outcomes if isinstance(o, CommandResult)]
    assert len(landed) == 3
    positions = [p for o in landed for p in o.positions]
    assert positions == sorted(positions) and len(set(positions)) == 3
    events = engine.store.read_customer(ada)
    assert [e.type for e in events] == [
        "customer.registered",
        "interaction.call_logged",
        "interaction.call_logged",
        "customer.consent_granted",
    ]


def test_a_repeated_command_id_is_answered_as_the_first_time(engine: Engine) -> None:
    committer = GroupCommitter(engine.bus, engine.store)  # type: ignore[arg-type]
    batch = [register("Same", "dup-1"), register("Same", "dup-1"), register("Other", "dup-2")]
    first = committer.run(batch)
    assert first[0] == first[1] and isinstance(first[0], CommandResult)
    again = committer.run([register("Same", "dup-1")])
    assert again[0] == first[0]
    assert len(engine.store.read(0, 100)) == 2


def test_commands_decided_on_a_refused_one_are_decided_again(engine: Engine) -> None:
    """Register C and log a call on C in one batch; a writer outside takes C's e-mail between
    the decision and the append: the register is refused, so the call (decided on it) must not
    land either; decided again, it finds no customer."""

    class Racing(EventStore):
        raced = False

        def append_group(self, items: Sequence[GroupItem]) -> list[GroupOutcome]:
            if not self.raced:
                self.raced = True
                engine.bus.execute_json(
                    "customer.register",
                    {"name": "Early", "email": "c@example.com"},
                    CommandContext(command_id="outside"),
                )
            return super().append_group(items)

    store = engine.store
    racing = Racing(store.backend, store.codec, store.keyring, store.blind_index)
    committer = GroupCommitter(engine.bus, racing)  # type: ignore[arg-type]
    reg = register("Late", "late-1", email="c@example.com")
    new_customer = new_id(reg.ctx, "customer")
    outcomes = committer.run([reg, call(new_customer, 4, "late-call")])
    assert isinstance(outcomes[0], ContactAlreadyRegistered)
    assert isinstance(outcomes[1], CustomerNotFound)
    assert store.read_customer(new_customer) == []
    assert store.recorded_commands(["late-1", "late-call"]) == set()


def test_a_conflict_with_another_writer_is_decided_again_and_lands(engine: Engine) -> None:
    ada = customer_of(GroupCommitter(engine.bus, engine.store).run([register("Ada")])[0])  # type: ignore[arg-type]

    class Racing(EventStore):
        races = 0

        def append_group(self, items: Sequence[GroupItem]) -> list[GroupOutcome]:
            if self.races < 2:  # another writer moves the customer's stream, twice
                self.races += 1
                engine.bus.execute_json(
                    "customer.grant_consent",
                    {"customer_id": str(ada), "consent_channel": f"ch{self.races}"},
                    CommandContext(),
                )
            return super().append_group(items)

    store = engine.store
    racing = Racing(store.backend, store.codec, store.keyring, store.blind_index)
    committer = GroupCommitter(engine.bus, racing)  # type: ignore[arg-type]
    committer.run([sub("customer.grant_consent", customer_id=ada, consent_channel="warm")])
    outcome = committer.run([sub("customer.grant_consent", customer_id=ada, consent_channel="x")])
    assert isinstance(outcome[0], CommandResult)
    assert racing.races == 2
    types = [e.type for e in store.read_customer(ada)]
    assert types.count("customer.consent_granted") == 4


def test_a_forget_runs_alone_and_later_commands_see_it(engine: Engine) -> None:
    committer = GroupCommitter(engine.bus, engine.store)  # type: ignore[arg-type]
    ada = customer_of(committer.run([register("Ada", email="a@example.com")])[0])
    outcomes = committer.run(
        [
            call(ada, 2),
            sub("customer.forget", customer_id=ada),
            call(ada, 3),
            register("Bob"),
        ]
    )
    assert isinstance(outcomes[0], CommandResult)
    assert isinstance(outcomes[1], CommandResult)
    assert isinstance(outcomes[2], CustomerIsForgotten)
    assert isinstance(outcomes[3], CommandResult)


def test_a_group_member_depending_on_a_refused_one_is_refused(engine: Engine) -> None:
    store = engine.store
    committer = GroupCommitter(engine.bus, store)  # type: ignore[arg-type]
    ada = customer_of(committer.run([register("Ada")])[0])
    committer.run([call(ada)])
    events = store.read_customer(ada)
    registered = events[0]
    stale_event = replace(registered, version=1, position=None, recorded_at=None)
    fresh = uuid4()
    new_event = replace(events[-1], stream_id=fresh, version=1, position=None, recorded_at=None)
    other = uuid4()
    third = replace(events[-1], stream_id=other, version=1, position=None, recorded_at=None)
    results = store.append_group(
        [
            GroupItem("g-1", "x", [stale_event]),
            GroupItem("g-2", "x", [new_event], depends_on=(0,)),
            GroupItem("g-3", "x", [third]),
        ]
    )
    assert isinstance(results[0], StreamVersionConflict)
    assert isinstance(results[1], StreamVersionConflict)
    assert isinstance(results[2], list) and len(results[2]) == 1
    assert store.read_stream(fresh) == []


def test_an_invalid_command_never_reaches_the_committer() -> None:
    with pytest.raises(InvalidCommand):
        sub("interaction.log_call", customer_id=uuid4(), direction="sideways", duration_min=1)
