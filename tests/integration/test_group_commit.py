"""Group commit on both backends: many commands in one transaction, each refused on its own.

The NATS command service decides the commands that arrive together and appends them with
`EventStore.append_group`: one lock, one commit, and a stale version, a repeated command_id
or a taken contact fails only its own item.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from itertools import count
from typing import Any
from uuid import UUID, uuid4

import msgspec
import psycopg
import pytest
from eventsourcing.persistence import OperationalError
from psycopg.sql import SQL

from domain.envelope import Envelope
from domain.interactions.events import CallLogged
from handlers.ports import (
    CommandAlreadyRecorded,
    CommandResult,
    ContactClaim,
    ContactTakenOnAppend,
    GroupItem,
    GroupOutcome,
    StreamVersion,
)
from infra.store import event_store
from infra.store.backends import open_store
from infra.store.event_store import EventStore, StreamVersionConflict
from tests.pg import PG_URL

T0 = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)
_serial = count(1)


def call(stream: UUID, version: int, command_id: str | None = None) -> Envelope:
    """An event whose `command_id` field marks the item it belongs to (found in the log)."""
    return Envelope(
        stream_id=stream,
        stream_type="interaction",
        version=version,
        occurred_at=T0,
        customer_id=stream,
        command_id=command_id,
        payload=CallLogged(direction="in", duration_min=next(_serial) % 100 + 1),
    )


def item(
    stream: UUID,
    version: int,
    command_id: str | None = None,
    *,
    n: int = 1,
    claims: tuple[ContactClaim, ...] = (),
    releases: tuple[ContactClaim, ...] = (),
) -> GroupItem:
    events = [call(stream, version + i, command_id) for i in range(n)]
    return GroupItem(command_id, "interaction.log_call", events, claims, releases)


def logged(store: EventStore) -> list[tuple[int, UUID, int, str | None]]:
    return [(e.position or 0, e.stream_id, e.version, e.command_id) for e in store.read(0, 10_000)]


def positions(outcome: GroupOutcome) -> list[int]:
    assert isinstance(outcome, list), outcome
    return outcome


class TestAcceptedItems:
    def test_positions_ascend_in_item_order_with_their_command_records(
        self, store: EventStore
    ) -> None:
        a, b, c = uuid4(), uuid4(), uuid4()
        outcomes = store.append_group(
            [item(a, 1, "cmd-a", n=2), item(b, 1, "cmd-b"), item(c, 1, None, n=3)]
        )
        got = [positions(o) for o in outcomes]
        flat = [p for ps in got for p in ps]
        assert [len(ps) for ps in got] == [2, 1, 3]
        assert flat == sorted(flat) and len(set(flat)) == 6
        by_position = {p: (s, v) for p, s, v, _ in logged(store)}
        assert [by_position[p] for p in flat] == [
            (a, 1),
            (a, 2),
            (b, 1),
            (c, 1),
            (c, 2),
            (c, 3),
        ]
        assert store.find_command("cmd-a") == CommandResult(
            streams=[StreamVersion(a, 2)], positions=got[0]
        )
        assert store.find_command("cmd-b") == CommandResult(
            streams=[StreamVersion(b, 1)], positions=got[1]
        )
        assert store.recorded_commands(["cmd-a", "cmd-b", "cmd-c"]) == {"cmd-a", "cmd-b"}

    def test_an_item_without_events_writes_nothing(self, store: EventStore) -> None:
        empty = GroupItem("cmd-empty", "customer.note", [])
        assert store.append_group([empty]) == [[]]
        a = uuid4()
        outcomes = store.append_group([empty, item(a, 1, "cmd-a")])
        assert outcomes[0] == [] and len(positions(outcomes[1])) == 1
        assert store.find_command("cmd-empty") is None
        assert [s for _, s, _, _ in logged(store)] == [a]
        assert store.append_group([]) == []


class TestVersions:
    def test_a_stale_version_fails_only_its_own_item(self, store: EventStore) -> None:
        stale, fresh, other = uuid4(), uuid4(), uuid4()
        store.append_command([call(stale, 1)], command_id=None, command_name="x")
        outcomes = store.append_group(
            [item(fresh, 1, "c1"), item(stale, 1, "c2"), item(other, 1, "c3")]
        )
        assert isinstance(outcomes[1], StreamVersionConflict)
        assert outcomes[1].stream_id == stale
        assert len(positions(outcomes[0])) == len(positions(outcomes[2])) == 1
        assert store.find_command("c2") is None
        assert sorted((s, v, c) for _, s, v, c in logged(store)) == sorted(
            [(stale, 1, None), (fresh, 1, "c1"), (other, 1, "c3")]
        )

    def test_items_on_one_stream_chain_and_a_second_claim_on_a_version_conflicts(
        self, store: EventStore
    ) -> None:
        s = uuid4()
        outcomes = store.append_group(
            [
                item(s, 1, "first", n=2),
                item(s, 3, "second"),
                item(s, 3, "same-version"),
                item(s, 5, "gap"),
                item(s, 4, "third"),
            ]
        )
        assert [type(o).__name__ for o in outcomes] == [
            "list",
            "list",
            "StreamVersionConflict",
            "StreamVersionConflict",
            "list",
        ]
        assert [v for _, _, v, _ in logged(store)] == [1, 2, 3, 4]
        assert [c for _, _, _, c in logged(store)] == ["first", "first", "second", "third"]

    def test_versions_of_one_item_must_run_without_gaps(self, store: EventStore) -> None:
        s = uuid4()
        bad = GroupItem("bad", "x", [call(s, 1), call(s, 3)])
        twice = GroupItem("twice", "x", [call(s, 1), call(s, 1)])
        outcomes = store.append_group([bad, twice, item(s, 1, "good")])
        assert isinstance(outcomes[0], StreamVersionConflict)
        assert isinstance(outcomes[1], StreamVersionConflict)
        assert len(positions(outcomes[2])) == 1


class TestRepeatedCommands:
    def test_an_already_recorded_command_id_appends_nothing(self, store: EventStore) -> None:
        s, t = uuid4(), uuid4()
        first = store.append_command([call(s, 1, "once")], command_id="once", command_name="x")
        outcomes = store.append_group([item(s, 2, "once"), item(t, 1, "new")])
        assert isinstance(outcomes[0], CommandAlreadyRecorded)
        assert len(positions(outcomes[1])) == 1
        assert store.find_command("once") == CommandResult(
            streams=[StreamVersion(s, 1)], positions=first
        )
        assert [(sid, v) for _, sid, v, _ in logged(store)] == [(s, 1), (t, 1)]

    def test_a_command_id_twice_in_one_group(self, store: EventStore) -> None:
        s, t = uuid4(), uuid4()
        outcomes = store.append_group([item(s, 1, "dup"), item(t, 1, "dup")])
        assert len(positions(outcomes[0])) == 1
        assert isinstance(outcomes[1], CommandAlreadyRecorded)
        assert [sid for _, sid, _, _ in logged(store)] == [s]

    def test_a_refused_item_does_not_reserve_its_command_id(self, store: EventStore) -> None:
        s = uuid4()
        store.append_command([call(s, 1)], command_id=None, command_name="x")
        outcomes = store.append_group([item(s, 1, "retry"), item(s, 2, "retry")])
        assert isinstance(outcomes[0], StreamVersionConflict)
        assert len(positions(outcomes[1])) == 1

    def test_a_group_refused_whole_writes_nothing_and_leaves_the_store_usable(
        self, store: EventStore
    ) -> None:
        s = uuid4()
        store.append_command([call(s, 1, "one")], command_id="one", command_name="x")
        outcomes = store.append_group([item(s, 2, "one"), item(s, 1, "two")])
        assert isinstance(outcomes[0], CommandAlreadyRecorded)
        assert isinstance(outcomes[1], StreamVersionConflict)
        assert len(positions(store.append_group([item(s, 2, "three")])[0])) == 1
        assert [v for _, _, v, _ in logged(store)] == [1, 2]


class TestContacts:
    def test_a_contact_of_another_customer_fails_that_item_only(self, store: EventStore) -> None:
        ada, bob, cy = uuid4(), uuid4(), uuid4()
        store.claim_contact("email", "ada@example.org", ada)
        outcomes = store.append_group(
            [
                item(bob, 1, "bob", claims=(ContactClaim("email", "ADA@example.org", bob),)),
                item(cy, 1, "cy", claims=(ContactClaim("email", "cy@example.org", cy),)),
                item(ada, 1, "ada", claims=(ContactClaim("email", "ada@example.org", ada),)),
            ]
        )
        assert isinstance(outcomes[0], ContactTakenOnAppend)
        assert (outcomes[0].kind, outcomes[0].owner) == ("email", ada)
        assert len(positions(outcomes[1])) == len(positions(outcomes[2])) == 1
        assert store.contact_owner("email", "cy@example.org") == cy
        assert store.contact_owner("email", "ada@example.org") == ada
        assert {s for _, s, _, _ in logged(store)} == {cy, ada}

    def test_two_items_claiming_one_email_the_second_fails(self, store: EventStore) -> None:
        ada, bob = uuid4(), uuid4()
        outcomes = store.append_group(
            [
                item(ada, 1, "ada", claims=(ContactClaim("email", "x@example.org", ada),)),
                item(bob, 1, "bob", claims=(ContactClaim("email", "x@example.org", bob),)),
            ]
        )
        assert len(positions(outcomes[0])) == 1
        assert isinstance(outcomes[1], ContactTakenOnAppend) and outcomes[1].owner == ada
        assert store.contact_owner("email", "x@example.org") == ada

    def test_a_refused_item_claims_nothing_and_a_release_frees_for_a_later_item(
        self, store: EventStore
    ) -> None:
        ada, bob, stale = uuid4(), uuid4(), uuid4()
        store.claim_contact("email", "old@example.org", ada)
        store.append_command([call(stale, 1)], command_id=None, command_name="x")
        outcomes = store.append_group(
            [
                item(stale, 1, "st", claims=(ContactClaim("email", "st@example.org", stale),)),
                item(ada, 1, "ada", releases=(ContactClaim("email", "old@example.org", ada),)),
                item(bob, 1, "bob", claims=(ContactClaim("email", "old@example.org", bob),)),
            ]
        )
        assert isinstance(outcomes[0], StreamVersionConflict)
        assert len(positions(outcomes[1])) == len(positions(outcomes[2])) == 1
        assert store.contact_owner("email", "st@example.org") is None
        assert store.contact_owner("email", "old@example.org") == bob


# -- PostgreSQL: concurrency and dropped connections -------------------------------------


@pytest.fixture
def pg_stores(store_url: str) -> Iterator[list[EventStore]]:
    stores = [open_store(store_url, env={}) for _ in range(4)]
    try:
        yield stores
    finally:
        for s in stores:
            s.close()


@pytest.mark.parametrize("store_url", ["postgresql"], indirect=True)
class TestConcurrentGroups:
    def test_overlapping_groups_lose_nothing_and_double_nothing(
        self, pg_stores: list[EventStore]
    ) -> None:
        streams = [uuid4() for _ in range(6)]
        rounds, errors = 25, []
        results: list[tuple[GroupItem, GroupOutcome]] = []
        lock = threading.Lock()
        tailed: list[int] = []
        done = threading.Event()

        def writer(w: int, store: EventStore) -> None:
            try:
                for r in range(rounds):
                    heads = store.backend.standard.stream_heads(streams)
                    mine = [*streams[w:], *streams[:w], uuid4()]  # all shared, each in its order
                    group = [
                        item(s, heads.get(s, 0) + 1, f"w{w}-r{r}-{k}", n=1 + k % 2)
                        for k, s in enumerate(mine)
                    ]
                    outcomes = store.append_group(group)
                    with lock:
                        results.extend(zip(group, outcomes, strict=True))
            except Exception as e:  # pragma: no cover - reported below
                errors.append(e)

        def tail(store: EventStore) -> None:
            after = 0
            while not done.is_set() or after < store.head():
                rows = store.read_rows(after, 1000)
                tailed.extend(r.position for r in rows)
                if not rows:
                    time.sleep(0.002)
                after = rows[-1].position if rows else after

        threads = [
            threading.Thread(target=writer, args=(w, s)) for w, s in enumerate(pg_stores[:3])
        ]
        tailer = threading.Thread(target=tail, args=(pg_stores[3],))
        tailer.start()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        done.set()
        tailer.join()
        assert not errors

        log = logged(pg_stores[0])
        assert tailed == [p for p, _, _, _ in log]  # a tailing reader never skipped a position
        assert len({(s, v) for _, s, v, _ in log}) == len(log)
        by_command: dict[str | None, list[tuple[int, UUID, int]]] = {}
        for p, s, v, c in log:
            by_command.setdefault(c, []).append((p, s, v))
        accepted = refused = 0
        for it, outcome in results:
            rows = by_command.get(it.command_id, [])
            if isinstance(outcome, list):
                accepted += 1
                assert [p for p, _, _ in rows] == outcome
                assert [(s, v) for _, s, v in rows] == [(e.stream_id, e.version) for e in it.events]
            else:
                refused += 1
                assert isinstance(outcome, StreamVersionConflict)
                assert rows == []
        assert accepted + refused == len(results) and accepted > 0 and refused > 0
        assert sum(1 for c in by_command if c is not None) == accepted
        for s in streams:
            assert [v for _, sid, v, _ in log if sid == s] == list(
                range(1, 1 + sum(1 for _, sid, _, _ in log if sid == s))
            )


@pytest.mark.parametrize("store_url", ["postgresql"], indirect=True)
def test_a_contact_claimed_outside_the_lock_meanwhile_refuses_only_its_item(
    store: EventStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """claim_contact does not take the append lock: the group's claim insert then collides,
    and the group is planned again, now seeing the new owner."""
    ada, bob, cy = uuid4(), uuid4(), uuid4()
    plan = event_store.plan_group
    calls: list[int] = []

    def claim_meanwhile(*args: Any) -> Any:
        if not calls:
            store.claim_contact("email", "x@example.org", ada)
        calls.append(1)
        return plan(*args)

    monkeypatch.setattr(event_store, "plan_group", claim_meanwhile)
    outcomes = store.append_group(
        [
            item(bob, 1, "bob", claims=(ContactClaim("email", "x@example.org", bob),)),
            item(cy, 1, "cy"),
        ]
    )
    assert len(calls) == 2
    assert isinstance(outcomes[0], ContactTakenOnAppend) and outcomes[0].owner == ada
    assert len(positions(outcomes[1])) == 1
    assert [s for _, s, _, _ in logged(store)] == [cy]


def _terminate(pid: int) -> None:
    with psycopg.connect(PG_URL, autocommit=True) as admin:
        admin.execute("SELECT pg_terminate_backend(%s)", (pid,))


@pytest.mark.parametrize("store_url", ["postgresql"], indirect=True)
class TestDroppedConnections:
    def test_a_connection_killed_inside_the_transaction_is_retried_once(
        self, store: EventStore, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        recorder: Any = store.backend.standard
        notify = recorder._notify_channel
        killed: list[int] = []

        def kill_then_notify(curs: Any) -> None:
            if not killed:  # after the lock and the reads, before the writes are sent
                killed.append(curs.connection.info.backend_pid)
                _terminate(killed[0])
            notify(curs)

        monkeypatch.setattr(recorder, "_notify_channel", kill_then_notify)
        a, b = uuid4(), uuid4()
        outcomes = store.append_group([item(a, 1, "k1", n=2), item(b, 1, None)])
        assert killed
        assert [len(positions(o)) for o in outcomes] == [2, 1]
        assert [(s, v) for _, s, v, _ in logged(store)] == [(a, 1), (a, 2), (b, 1)]
        assert store.find_command("k1") == CommandResult(
            streams=[StreamVersion(a, 2)], positions=positions(outcomes[0])
        )

    def test_a_commit_whose_answer_was_lost_is_not_written_twice(
        self, store: EventStore, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        datastore: Any = store.backend.datastore  # type: ignore[attr-defined]
        connect: Callable[[], Any] = datastore.get_connection
        lost: list[int] = []

        @contextmanager
        def answer_lost_after_commit() -> Iterator[Any]:
            with connect() as conn:
                yield conn
            if not lost:  # the COMMIT went through; the client hears only that the line died
                lost.append(conn.info.backend_pid)
                _terminate(lost[0])
                raise OperationalError("server closed the connection unexpectedly")

        a, b = uuid4(), uuid4()
        group = [item(a, 1, "once", n=2), item(b, 1, None)]
        store.codec.encode_many([e for it in group for e in it.events])  # keys made: the
        # next connection taken is the group commit's
        monkeypatch.setattr(datastore, "get_connection", answer_lost_after_commit)
        outcomes = store.append_group(group)
        monkeypatch.undo()
        assert lost
        assert isinstance(outcomes[0], CommandAlreadyRecorded)  # answered from find_command
        assert isinstance(outcomes[1], StreamVersionConflict)  # no record to tell it apart
        assert [(s, v) for _, s, v, _ in logged(store)] == [(a, 1), (a, 2), (b, 1)]
        found = store.find_command("once")
        assert found is not None and found.streams == [StreamVersion(a, 2)]


def test_lookups_by_key_lists_probe_the_index_under_any_plan(store_url: str) -> None:
    """The reads a group commit makes per batch (newer events of its streams, the owners of
    its contacts, positions of spans) look each key up in an index even
    under the generic plan a prepared statement settles on while the tables are small: as
    joins they were a hash join over a sequential scan of the whole log, so a batch's read
    grew with the log."""
    if not store_url.startswith("postgresql"):
        pytest.skip("plans are PostgreSQL's")
    store = open_store(store_url, env={})
    try:
        store.append_group([item(uuid4(), 1, f"c{i}") for i in range(300)])
        recorder = store.backend.standard  # type: ignore[attr-defined]
        schema = store.backend.datastore.schema  # type: ignore[attr-defined]
        statements = {
            "streams after": (
                recorder._select_streams_after,
                (msgspec.json.encode([{"id": uuid4(), "after": 0}]).decode(),),
            ),
            "contact owners": (recorder._contact_owners, (["email"], [b"x"])),
            "positions": (recorder._positions_of, ([uuid4()], [1], [2])),
        }
        with psycopg.connect(PG_URL, autocommit=True) as conn:
            conn.execute(f'ANALYZE "{schema}".stored_events')
            conn.execute("SET plan_cache_mode = force_generic_plan")
            for name, (statement, params) in statements.items():
                with conn.transaction(force_rollback=True):
                    plan = conn.execute(SQL("EXPLAIN ") + statement, params).fetchall()
                text = "\n".join(r[0] for r in plan)
                assert "Seq Scan" not in text, f"{name}:\n{text}"
    finally:
        store.close()
