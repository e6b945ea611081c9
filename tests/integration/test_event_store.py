"""The event store on both backends: round trips, personal data, forgetting, bad bytes."""

from __future__ import annotations

import base64
import os
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path
from uuid import UUID, uuid4

import msgspec
import psycopg
import pytest
from eventsourcing.persistence import StoredEvent
from hypothesis import HealthCheck, given, settings
from psycopg.sql import SQL, Identifier

from domain.customers.events import CustomerForgotten, CustomerRegistered
from domain.envelope import Envelope
from domain.events import FORGOTTEN
from infra.codec import CorruptEvent, EventCodec, UnknownEventType
from infra.crypto import CustomerForgotten as KeyForgotten
from infra.crypto import InsecureMasterKey, WrongMasterKey
from infra.store.backends import open_store
from infra.store.event_store import EventStore, StreamVersionConflict
from tests.event_types import TEST_EVENTS, V1_EVENTS, KitchenSink, WidgetNamed, WidgetNamedV1
from tests.pg import PG_URL, fresh_schema, pg_url_with_schema
from tests.strategies import envelopes

T0 = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)


def registered(
    customer: UUID | None = None, name: str = "Zsófia Kovács-Nagy", version: int = 1, **kw: object
) -> Envelope:
    cid = customer or uuid4()
    return Envelope(
        stream_id=cid,
        stream_type="customer",
        version=version,
        occurred_at=T0,
        customer_id=cid,
        actor="employee:e-17",
        channel="web",
        correlation_id="corr-1",
        command_id="cmd-1",
        payload=CustomerRegistered(
            name=name, email="zsofia@example.hu", phone="+36 30 123 4567", **kw
        ),  # type: ignore[arg-type]
    )


def forgotten_event(customer: UUID, version: int) -> Envelope:
    return Envelope(
        stream_id=customer,
        stream_type="customer",
        version=version,
        occurred_at=T0 + timedelta(days=1),
        customer_id=customer,
        payload=CustomerForgotten(),
    )


def test_store(url: str, **env: str) -> EventStore:
    store = open_store(url, env=env, registry=TEST_EVENTS)
    return store


test_store.__test__ = False  # type: ignore[attr-defined]


class TestAppendAndRead:
    @pytest.mark.parametrize("bulk", [False, True], ids=["standard", "bulk"])
    def test_round_trip_keeps_every_envelope_field(self, store: EventStore, bulk: bool) -> None:
        events = [registered(), registered()]
        positions = store.append(events, bulk=bulk)
        assert positions == sorted(positions)
        back = store.read(0)
        assert [e.position for e in back] == positions
        for sent, got in zip(events, back, strict=True):
            assert got.recorded_at is not None
            want = {f: getattr(sent, f) for f in sent.__struct_fields__}
            want.update(position=got.position, recorded_at=got.recorded_at)
            assert got == Envelope(**want)  # type: ignore[arg-type]

    def test_read_stream_in_version_order(self, store: EventStore) -> None:
        cid = uuid4()
        store.append([registered(cid)])
        store.append([forgotten_event(cid, 2)], bulk=True)
        assert [e.version for e in store.read_stream(cid)] == [1, 2]
        assert [e.version for e in store.read_stream(cid, after_version=1)] == [2]

    def test_positions_and_record_times_move_together(self, store: EventStore) -> None:
        for i in range(5):
            store.append([registered() for _ in range(i + 1)], bulk=bool(i % 2))
        events = store.read(0, limit=100)
        assert [e.position for e in events] == sorted({e.position for e in events})
        times = [e.recorded_at for e in events]
        assert times == sorted(times)  # type: ignore[type-var]
        assert store.head() == events[-1].position

    def test_read_by_type_and_page(self, store: EventStore) -> None:
        cid = uuid4()
        store.append([registered(cid), forgotten_event(cid, 2), registered()])
        assert [e.type for e in store.read(0, types=["customer.forgotten"])] == [
            "customer.forgotten"
        ]
        assert len(list(store.iter_all(0, page=1))) == 3

    @pytest.mark.parametrize("bulk", [False, True], ids=["standard", "bulk"])
    def test_a_taken_version_is_a_typed_conflict_and_appends_nothing(
        self, store: EventStore, bulk: bool
    ) -> None:
        cid = uuid4()
        store.append([registered(cid)])
        other = registered()
        with pytest.raises(StreamVersionConflict) as info:
            store.append([other, registered(cid)], bulk=bulk)
        assert info.value.stream_id == cid
        assert [e.stream_id for e in store.read(0)] == [cid]


class TestCustomerIdColumn:
    def test_derived_from_the_header_and_null_for_foreign_bytes(self, store: EventStore) -> None:
        cid = uuid4()
        store.append([registered(cid)])
        store.append_stored([StoredEvent(uuid4(), 1, "topic1", b"state1")], bulk=True)
        store.append(
            [
                Envelope(
                    stream_id=uuid4(),
                    stream_type="test",
                    version=1,
                    occurred_at=T0,
                    payload=CustomerForgotten(),
                )
            ]
        )
        assert _customer_column(store) == [cid, None, None]


def _customer_column(store: EventStore) -> list[UUID | None]:
    backend = store.backend
    if backend.name == "sqlite":
        with backend.datastore.transaction(commit=False) as c:  # type: ignore[attr-defined]
            c.execute("SELECT customer_id FROM stored_events ORDER BY notification_id")
            return [UUID(r[0]) if r[0] else None for r in c.fetchall()]
    with backend.datastore.transaction(commit=False) as curs:  # type: ignore[attr-defined]
        curs.execute(f"SELECT customer_id FROM {_pg_log(store)} ORDER BY notification_id")
        return [r["customer_id"] for r in curs.fetchall()]


def _pg_log(store: EventStore) -> str:
    return f'"{store.backend.datastore.schema}".stored_events'  # type: ignore[attr-defined]


def _raw_states(store: EventStore) -> list[bytes]:
    return [r.state for r in store.read_rows(0, limit=10_000)]


class TestPersonalData:
    def test_personal_fields_are_not_readable_in_the_stored_bytes(self, store: EventStore) -> None:
        store.append([registered(name="Zsófia Kovács-Nagy")])
        store.append([registered(name="Brünhilde Østergaard")], bulk=True)
        for state in _raw_states(store):
            for plain in ("Zsófia", "Brünhilde", "zsofia@example.hu", "123 4567"):
                assert plain.encode() not in state
        backend = store.backend
        sql = "SELECT count(*) FROM stored_events WHERE instr(state, ?) > 0"
        if backend.name == "sqlite":
            with backend.datastore.transaction(commit=False) as c:  # type: ignore[attr-defined]
                c.execute(sql, ("Zsófia".encode(),))
                assert c.fetchone()[0] == 0
                c.execute(sql, (b"customer",))  # the same search finds what is in the clear
                assert c.fetchone()[0] == 2
        else:
            with backend.datastore.transaction(commit=False) as curs:  # type: ignore[attr-defined]
                curs.execute(
                    f"SELECT count(*) AS n FROM {_pg_log(store)} WHERE position(%s::bytea in state) > 0",
                    ("Zsófia".encode(),),
                )
                assert curs.fetchone()["n"] == 0
                curs.execute(
                    f"SELECT count(*) AS n FROM {_pg_log(store)} WHERE position(%s::bytea in state) > 0",
                    (b"customer",),
                )
                assert curs.fetchone()["n"] == 2
        assert {e.payload.name for e in store.read(0)} == {
            "Zsófia Kovács-Nagy",
            "Brünhilde Østergaard",
        }  # type: ignore[attr-defined]

    def test_after_the_key_is_deleted_events_decode_with_fields_forgotten(
        self, store: EventStore
    ) -> None:
        gone, kept = uuid4(), uuid4()
        store.append([registered(gone, birth_date=None), registered(kept)])
        store.forget_keys(gone)
        store.append([forgotten_event(gone, 2)])
        by_customer = {e.customer_id: e for e in store.read(0, types=["customer.registered"])}
        payload = by_customer[gone].payload
        assert isinstance(payload, CustomerRegistered)
        assert (payload.name, payload.email, payload.phone, payload.birth_date) == (
            FORGOTTEN,
            None,
            None,
            None,
        )
        assert payload.source == "unknown" and payload.kind == "person"  # non-personal fields stay
        assert by_customer[gone].forgotten == ("name", "email", "phone", "birth_date")
        assert by_customer[kept].forgotten == ()
        assert by_customer[kept].payload.name == "Zsófia Kovács-Nagy"  # type: ignore[attr-defined]

    def test_a_reader_of_no_personal_fields_gets_placeholders_without_the_keys(
        self, store: EventStore
    ) -> None:
        cid = uuid4()
        store.append([registered(cid, source="fair")])
        rows = store.read_rows(0)
        (opened,) = store.decode_rows(rows, unseal={"customer.registered"})
        (sealed,) = store.decode_rows(rows, unseal=set())
        assert opened.payload.name == "Zsófia Kovács-Nagy"  # type: ignore[attr-defined]
        assert isinstance(sealed.payload, CustomerRegistered)
        assert (sealed.payload.name, sealed.payload.email) == (FORGOTTEN, None)
        assert (sealed.payload.source, sealed.forgotten) == ("fair", ())  # sealed, not forgotten
        store.forget_keys(cid)  # a reader that unseals nothing never needs the key
        (after,) = store.decode_rows(rows, unseal=set())
        assert after.payload == sealed.payload

    def test_nothing_personal_can_be_written_for_a_forgotten_customer(
        self, store: EventStore
    ) -> None:
        cid = uuid4()
        store.append([registered(cid)])
        store.forget_keys(cid)
        with pytest.raises(KeyForgotten):
            store.append([registered(cid, version=2)])
        store.append([forgotten_event(cid, 2)])  # no personal fields: still fine

    def test_a_forget_in_another_process_drops_this_one_s_cached_key(self, store_url: str) -> None:
        reader, writer = open_store(store_url, env={}), open_store(store_url, env={})
        try:
            cid = uuid4()
            writer.append([registered(cid)])
            assert reader.read(0)[0].forgotten == ()  # the reader now caches the key
            writer.forget_keys(cid)
            writer.append([forgotten_event(cid, 2)])
            assert [e.type for e in reader.read(1)] == ["customer.forgotten"]  # evicts the key
            assert reader.read(0, limit=1)[0].forgotten == ("name", "email", "phone", "birth_date")
        finally:
            reader.close()
            writer.close()

    def test_a_wrong_master_key_fails_clearly(self, store_url: str) -> None:
        first = open_store(
            store_url, env={"CRM_MASTER_KEY": base64.b64encode(os.urandom(32)).decode()}
        )
        first.append([registered()])
        first.close()
        with pytest.raises(
            WrongMasterKey, match="does not match the master key this store was created with"
        ):
            open_store(store_url, env={"CRM_MASTER_KEY": base64.b64encode(os.urandom(32)).decode()})

    def test_production_refuses_the_development_key(self, store_url: str) -> None:
        with pytest.raises(InsecureMasterKey):
            open_store(store_url, env={"CRM_ENV": "production"})

    def test_tampered_ciphertext_is_refused_not_garbage(self, store: EventStore) -> None:
        from infra.crypto import PersonalDataTampered

        env = registered()
        stored = store.codec.encode(env)
        state = bytearray(stored.state)
        state[-4 - 3] ^= 0xFF  # inside the sealed personal data (before its 4-byte length)
        store.append_stored([StoredEvent(stored.originator_id, 1, stored.topic, bytes(state))])
        with pytest.raises(PersonalDataTampered, match="position"):
            store.read(0)


class TestEveryRegisteredTypeRoundTrips:
    @pytest.mark.parametrize("bulk", [False, True], ids=["standard", "bulk"])
    def test_round_trip_with_encryption(self, store_url: str, bulk: bool) -> None:
        store = test_store(store_url)
        try:
            for spec in TEST_EVENTS:

                @settings(max_examples=15, deadline=None, suppress_health_check=list(HealthCheck))
                @given(env=envelopes(spec.cls))
                def check(env: Envelope) -> None:
                    env = msgspec.structs.replace(env, stream_id=uuid4())  # never a taken version
                    [position] = store.append([env], bulk=bulk)
                    [got] = store.read(position - 1, limit=1)
                    assert got.position == position
                    want = {f: getattr(env, f) for f in env.__struct_fields__}
                    want.update(position=position, recorded_at=got.recorded_at)
                    assert got == Envelope(**want)  # type: ignore[arg-type]

                check()
        finally:
            store.close()


class TestUpcasting:
    def test_stored_v1_sealed_bytes_read_as_v2(self, store_url: str) -> None:
        store = test_store(store_url)
        try:
            cid = uuid4()
            old = EventCodec(V1_EVENTS, store.keyring)
            v1 = Envelope(
                stream_id=cid,
                stream_type="widget",
                version=1,
                occurred_at=T0,
                customer_id=cid,
                payload=WidgetNamedV1(full_name="Grace Hopper", size=3),
            )
            store.append_stored([old.encode(v1)])
            [got] = store.read(0)
            assert got.payload == WidgetNamed(first_name="Grace", last_name="Hopper", size_cm=30)
            assert "Grace" not in str(_raw_states(store))
            store.forget_keys(cid)
            [gone] = store.read(0)
            assert gone.payload == WidgetNamed(
                first_name=FORGOTTEN, last_name=FORGOTTEN, size_cm=30
            )
        finally:
            store.close()


class TestBadStoredBytes:
    def test_unknown_type_names_its_position(self, store: EventStore) -> None:
        stored = store.codec.encode(registered())
        [pos] = store.append_stored(
            [StoredEvent(stored.originator_id, 1, "customer.teleported", stored.state)]
        )
        with pytest.raises(UnknownEventType, match=f"position {pos}"):
            store.read(0)

    def test_truncated_bytes_name_their_position(self, store: EventStore) -> None:
        store.append([registered()])
        stored = store.codec.encode(registered())
        [pos] = store.append_stored(
            [StoredEvent(stored.originator_id, 1, stored.topic, stored.state[:30])]
        )
        with pytest.raises(CorruptEvent, match=f"position {pos}") as info:
            store.read(0)
        assert info.value.position == pos


class TestStoreURLs:
    def test_relative_sqlite_path_is_under_the_working_directory(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.chdir(tmp_path)
        store = open_store("sqlite:///data/rel.db", env={})
        store.append([registered()])
        store.close()
        assert (tmp_path / "data" / "rel.db").exists()

    def test_absolute_sqlite_path(self, tmp_path: Path) -> None:
        target = tmp_path / "abs" / "crm.db"
        store = open_store(f"sqlite:///{target}", env={})  # sqlite:// + /tmp/... = four slashes
        store.append([registered()])
        store.close()
        assert target.exists()

    def test_default_url_is_crm_db_in_the_working_directory(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.chdir(tmp_path)
        open_store(env={}).close()
        assert (tmp_path / "crm.db").exists()

    def test_kitchen_sink_is_registered_only_in_tests(self) -> None:
        assert TEST_EVENTS.get(KitchenSink.__struct_config__.tag) is not None  # type: ignore[arg-type]


class TestContactIndex:
    def test_unique_email_and_phone_by_keyed_hash(self, store: EventStore) -> None:
        from infra.store.event_store import ContactTaken

        ada, bob = uuid4(), uuid4()
        store.claim_contact("email", "Ada@Example.org", ada)
        store.claim_contact("email", "ada@example.org ", ada)  # the owner may claim again
        store.claim_contact("phone", "+36 30 123 4567", ada)
        with pytest.raises(ContactTaken) as info:
            store.claim_contact("email", "ADA@example.org", bob)
        assert info.value.owner == ada
        assert store.contact_owner("phone", "+36301234567") == ada
        assert store.contact_owner("email", "bob@example.org") is None
        store.release_contact("email", "ada@example.org", ada)
        store.claim_contact("email", "ada@example.org", bob)
        assert store.contact_owner("email", "ada@example.org") == bob

    def test_forgetting_releases_the_contacts(self, store: EventStore) -> None:
        ada = uuid4()
        store.claim_contact("email", "ada@example.org", ada)
        store.forget_keys(ada)
        assert store.contact_owner("email", "ada@example.org") is None


class TestReadCustomer:
    def test_every_event_about_a_customer_across_streams(self, store: EventStore) -> None:
        from domain.interactions.events import CallLogged

        cid, other = uuid4(), uuid4()
        store.append([registered(cid), registered(other)])
        calls = [
            Envelope(
                stream_id=uuid4(),
                stream_type="interaction",
                version=1,
                occurred_at=T0,
                customer_id=cid,
                channel="call",
                payload=CallLogged(direction="in", duration_min=i),
            )
            for i in range(3)
        ]
        store.append(calls, bulk=True)
        events = store.read_customer(cid)
        assert [e.type for e in events] == ["customer.registered"] + ["interaction.call_logged"] * 3
        assert [e.position for e in events] == sorted(e.position for e in events)  # type: ignore[type-var]
        assert (
            store.read_customer(cid, after=events[1].position or 0, limit=1)[0].stream_id
            == calls[1].stream_id
        )


def test_sqlite_synchronous_normal_is_set_on_every_connection(tmp_path: Path) -> None:
    store = open_store(f"sqlite:///{tmp_path}/fast.db?synchronous=normal", env={})
    try:
        store.append([registered()])
        with store.backend.datastore.transaction(commit=False) as c:  # type: ignore[attr-defined]
            c.execute("PRAGMA synchronous")
            assert c.fetchone()[0] == 1  # NORMAL
        assert store.head() == 1
    finally:
        store.close()


@pytest.mark.parametrize("query", ["", "?synchronous=normal"])
def test_sqlite_connections_overwrite_deleted_content(tmp_path: Path, query: str) -> None:
    """A view row blanked when a customer is forgotten must not leave its plaintext in the
    file's free pages: every connection has `secure_delete` on."""
    store = open_store(f"sqlite:///{tmp_path}/secure.db{query}", env={})
    try:
        with store.backend.datastore.transaction(commit=False) as c:  # type: ignore[attr-defined]
            c.execute("PRAGMA secure_delete")
            assert c.fetchone()[0] == 1
    finally:
        store.close()


class TestKeyVault:
    """`add_keys` inserts a key only where none is stored and answers what is stored: the
    keyring offers a fresh key for every customer it has not cached (one round trip)."""

    def test_the_stored_key_wins_and_a_forgotten_one_stays_forgotten(
        self, store: EventStore
    ) -> None:
        vault = store.backend.vault
        kept, forgotten, new = uuid4(), uuid4(), uuid4()
        vault.add_keys({kept: b"k" * 40})
        vault.forget_key(forgotten)
        found = vault.add_keys({kept: b"x" * 40, forgotten: b"y" * 40, new: b"n" * 40})
        assert found == {kept: b"k" * 40, forgotten: None, new: b"n" * 40}
        assert vault.load_keys([kept, forgotten, new]) == found

    def test_a_key_committed_while_the_insert_waited_is_the_one_answered(self) -> None:
        """The insert waits on another transaction's uncommitted key for the same customer;
        after that commits, neither the insert's RETURNING nor its snapshot has the row."""
        with fresh_schema("keys") as schema:
            store = open_store(pg_url_with_schema(schema), env={})
            try:
                customer = uuid4()
                answer: list[dict[UUID, bytes | None]] = []
                with psycopg.connect(PG_URL) as other:
                    other.execute(
                        SQL(
                            "INSERT INTO {0}.crm_data_keys (customer_id, wrapped) VALUES (%s, %s)"
                        ).format(Identifier(schema)),
                        (customer, b"first" * 8),
                    )
                    racer = threading.Thread(
                        target=lambda: answer.append(
                            store.backend.vault.add_keys({customer: b"second" * 8})
                        )
                    )
                    racer.start()
                    racer.join(0.5)
                    assert racer.is_alive()  # waiting on the uncommitted row
                    other.commit()
                racer.join(10)
                assert answer == [{customer: b"first" * 8}]
            finally:
                store.close()
