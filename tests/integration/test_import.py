"""`crm import`'s engine on both backends: bulk batches, bad lines, re-runs, same-batch chains."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from typing import Any
from uuid import uuid4

import pytest

from handlers.decision import CommandContext
from handlers.importer import Importer
from handlers.states import CustomerStates
from infra.engine import Engine, open_engine

CTX = CommandContext(actor="import", channel="import")


@pytest.fixture
def engine(store_url: str) -> Iterator[Engine]:
    with open_engine(store_url, env={}) as e:
        yield e


def line(command: str, **data: Any) -> bytes:
    return json.dumps({"command": command, "data": data}, default=str).encode()


def around_batch_read(
    engine: Engine, call: int, action: Callable[[], object], *, before: bool = False
) -> list[int]:
    """Another writer: `action` runs at the importer's `call`-th batch read, just before it
    or just after it (the batch then decides on what it read). The list counts the reads."""
    real = engine.store.batch_reads
    calls = [0]

    def read(*args: Any, **kwargs: Any) -> Any:
        calls[0] += 1
        if before and calls[0] == call:
            action()
        found = real(*args, **kwargs)
        if not before and calls[0] == call:
            action()
        return found

    engine.store.batch_reads = read  # type: ignore[method-assign]
    return calls


def importer(engine: Engine, batch_size: int = 3, *, pipeline: bool = True) -> Importer:
    return Importer(engine.bus, engine.store, batch_size=batch_size, pipeline=pipeline)


class TestImport:
    def test_a_file_in_several_batches_with_chains_inside_a_batch(self, engine: Engine) -> None:
        a, b = uuid4(), uuid4()
        lines = [
            line("customer.register", customer_id=a, name="A", email="a@x.org"),
            line(
                "interaction.log_call",
                customer_id=a,
                direction="in",
                duration_min=3,
                notes="about A",
            ),
            line("customer.register", customer_id=b, name="B"),
            line("customer.grant_consent", customer_id=b, consent_channel="email"),
            line("customer.withdraw_consent", customer_id=b, consent_channel="email"),
            line("customer.merge", survivor_id=a, merged_id=b),
            line("interaction.log_web", customer_id=a, action="visit", page="/"),
        ]
        report = importer(engine).run(lines, CTX)
        assert (report.lines, report.appended, report.events, report.errors) == (7, 7, 8, [])
        types = [e.type for e in engine.store.read(0, limit=100)]
        assert types.count("customer.registered") == 2
        assert "customer.merged_into" in types and "customer.absorbed" in types
        assert [e.actor for e in engine.store.read(0, limit=100)] == ["import"] * 8

    def test_bad_lines_are_reported_with_number_and_field_and_good_lines_kept(
        self, engine: Engine
    ) -> None:
        a = uuid4()
        lines = [
            line("customer.register", customer_id=a, name="A"),
            line("interaction.log_call", customer_id=a, direction="in", duration_min="long"),
            b'{"command": "customer.register", "data": ',
            line("customer.teleport", customer_id=a),
            b"",
            line("interaction.log_call", customer_id=uuid4(), direction="in", duration_min=1),
            line("interaction.log_email", customer_id=a, direction="out", subject="hello"),
            line("customer.register", name="Same mail", email="dup@x.org"),
            line("customer.register", name="Same mail again", email="DUP@x.org"),
        ]
        report = importer(engine).run(lines, CTX)
        assert [(e.line, e.code, e.field) for e in report.errors] == [
            (2, "invalid_command", "duration_min"),
            (3, "malformed_message", None),
            (4, "unknown_command", None),
            (6, "customer_not_found", None),
            (9, "contact_already_registered", None),
        ]
        assert report.appended == 3
        assert [e.type for e in engine.store.read(0)] == [
            "customer.registered",
            "interaction.email_logged",
            "customer.registered",
        ]

    def test_a_re_run_of_the_same_file_appends_nothing(self, engine: Engine) -> None:
        a = uuid4()
        lines = [line("customer.register", customer_id=a, name="A")] + [
            line("interaction.log_call", customer_id=a, direction="in", duration_min=i)
            for i in range(10)
        ]
        first = importer(engine, batch_size=4).run(lines, CTX)
        head = engine.store.head()
        again = importer(engine, batch_size=7).run(lines, CTX)
        assert (first.appended, again.appended, again.duplicates) == (11, 0, 11)
        assert engine.store.head() == head

    def test_explicit_command_ids_and_actors_are_kept(self, engine: Engine) -> None:
        a = uuid4()
        body = {
            "command": "customer.register",
            "command_id": "crm-1",
            "actor": "service:shop",
            "data": {"customer_id": str(a), "name": "A"},
        }
        importer(engine).run([json.dumps(body).encode()], CTX)
        [event] = engine.store.read(0)
        assert (event.command_id, event.actor, event.channel) == ("crm-1", "service:shop", "import")
        assert engine.store.find_command("crm-1") is not None

    def test_forget_inside_a_file(self, engine: Engine) -> None:
        a = uuid4()
        lines = [
            line("customer.register", customer_id=a, name="Zsófia"),
            line(
                "interaction.log_call",
                customer_id=a,
                direction="in",
                duration_min=1,
                notes="Zsófia called",
            ),
            line("customer.forget", customer_id=a),
            line("interaction.log_call", customer_id=a, direction="in", duration_min=1),
        ]
        report = importer(engine, batch_size=10).run(lines, CTX)
        assert [(e.line, e.code) for e in report.errors] == [(4, "customer_forgotten")]
        assert all("Zsófia" not in repr(e.payload) for e in engine.store.read(0))

    def test_a_conflicting_batch_falls_back_to_one_by_one(self, engine: Engine) -> None:
        a = uuid4()
        engine.bus.execute_json("customer.register", {"customer_id": str(a), "name": "A"}, CTX)
        lines = [
            line("customer.change_stage", customer_id=a, stage="customer"),
            line("interaction.log_web", customer_id=a, action="visit", page="/"),
        ]
        real_batch_reads = engine.store.batch_reads

        def stale_batch_reads(*args: Any, **kwargs: Any) -> Any:
            found = real_batch_reads(*args, **kwargs)
            engine.bus.execute_json(
                "customer.grant_consent", {"customer_id": str(a), "consent_channel": "sms"}, CTX
            )
            return found  # the batch now decides on a stale version of customer a

        engine.store.batch_reads = stale_batch_reads  # type: ignore[method-assign]
        report = importer(engine).run(lines, CTX)
        assert (report.appended, report.errors) == (2, [])
        assert [e.type for e in engine.store.read_stream(a)] == [
            "customer.registered",
            "customer.consent_granted",
            "customer.stage_changed",
        ]

    def test_a_failed_pipelined_append_redecides_the_batch_decided_on_top_of_it(
        self, engine: Engine
    ) -> None:
        """Batch 2 is decided while batch 1 is being appended, on the state batch 1 leaves.
        Batch 1's append fails (a concurrent writer), so batch 1 runs one by one and batch 2
        is decided again: every command lands once, in file order per customer."""
        a = uuid4()
        engine.bus.execute_json("customer.register", {"customer_id": str(a), "name": "A"}, CTX)
        lines = [
            line("customer.change_stage", customer_id=a, stage="customer"),
            line("interaction.log_web", customer_id=a, action="visit", page="/"),
            line("customer.change_stage", customer_id=a, stage="former_customer"),
            line("interaction.log_web", customer_id=a, action="visit", page="/bye"),
        ]
        calls = around_batch_read(
            engine,
            1,
            lambda: engine.bus.execute_json(
                "customer.grant_consent", {"customer_id": str(a), "consent_channel": "sms"}, CTX
            ),
        )
        report = importer(engine, batch_size=2, pipeline=True).run(lines, CTX)
        assert (report.appended, report.events, report.errors) == (4, 4, [])
        stream = engine.store.read_stream(a)
        assert [(e.type, getattr(e.payload, "stage", None)) for e in stream] == [
            ("customer.registered", "lead"),
            ("customer.consent_granted", None),
            ("customer.stage_changed", "customer"),
            ("customer.stage_changed", "former_customer"),
        ]
        assert calls[0] >= 3  # batch 2 was decided twice
        assert len(engine.store.read(0, 100)) == 6  # 4 on the customer, 2 interactions

    def test_a_batch_sees_the_events_still_in_flight_when_its_state_cache_is_dropped(
        self, engine: Engine
    ) -> None:
        """Batch 2 is decided while batch 1 (which registers c) is still being appended, and
        the state cache has just been emptied: the overlay still shows c's registration."""
        c, d = uuid4(), uuid4()
        lines = [
            line("customer.register", customer_id=c, name="C"),
            line("interaction.log_web", customer_id=c, action="visit", page="/"),
            line("customer.register", customer_id=d, name="D"),
            line("interaction.log_web", customer_id=c, action="visit", page="/again"),
        ]
        real_append = engine.store.append_prepared

        def slow_append(*args: Any, **kwargs: Any) -> Any:
            time.sleep(0.3)  # batch 2 is decided meanwhile
            return real_append(*args, **kwargs)

        engine.store.append_prepared = slow_append  # type: ignore[method-assign]
        imp = importer(engine, batch_size=2, pipeline=True)
        imp.states = CustomerStates(capacity=1)  # registering d empties it
        report = imp.run(lines, CTX)
        assert (report.appended, report.errors) == (4, [])
        assert len(engine.store.read_customer(c)) == 3


class TestHeldStates:
    """The importer keeps the customer states it folded between batches and asks the log only
    what another writer appended since (see CustomerStates): a change lands either before a
    batch's read (that batch sees it) or after (the next one does)."""

    @pytest.mark.parametrize("pipeline", [False, True])
    def test_a_customer_forgotten_by_another_writer_before_a_batch_is_read_again(
        self, engine: Engine, pipeline: bool
    ) -> None:
        a = uuid4()
        engine.bus.execute_json("customer.register", {"customer_id": str(a), "name": "A"}, CTX)
        lines = [
            line("interaction.log_web", customer_id=a, action="visit", page=f"/{i}")
            for i in range(4)
        ]
        around_batch_read(
            engine,
            2,
            lambda: engine.bus.execute_json("customer.forget", {"customer_id": str(a)}, CTX),
            before=True,
        )
        report = importer(engine, batch_size=2, pipeline=pipeline).run(lines, CTX)
        assert report.appended == 2
        assert [(e.line, e.code) for e in report.errors] == [
            (3, "customer_forgotten"),
            (4, "customer_forgotten"),
        ]

    def test_a_change_landing_after_a_batch_read_is_seen_by_the_next_batch(
        self, engine: Engine
    ) -> None:
        a, b = uuid4(), uuid4()
        for c in (a, b):
            engine.bus.execute_json("customer.register", {"customer_id": str(c), "name": "X"}, CTX)
        lines = [
            line("interaction.log_web", customer_id=a, action="visit", page="/1"),
            line("interaction.log_web", customer_id=b, action="visit", page="/2"),
            line("interaction.log_web", customer_id=a, action="visit", page="/3"),
        ]
        around_batch_read(  # batch 2 (customer b) is decided on what it read
            engine,
            2,
            lambda: engine.bus.execute_json(
                "customer.merge", {"survivor_id": str(b), "merged_id": str(a)}, CTX
            ),
        )
        report = importer(engine, batch_size=1, pipeline=False).run(lines, CTX)
        assert report.appended == 2
        [error] = report.errors
        assert (error.line, error.code) == (3, "customer_merged")
        assert str(b) in error.message


class TestRecordedCommands:
    @pytest.mark.parametrize("pipeline", [False, True])
    def test_recorded_lines_past_the_first_batches_are_skipped_by_their_append(
        self, engine: Engine, pipeline: bool
    ) -> None:
        """The first batch finds no recorded command, so the next ones are not asked about:
        the batch holding lines of an earlier import fails to append and is decided again
        without them. Nothing is written twice and nothing is lost."""
        a = uuid4()
        engine.bus.execute_json("customer.register", {"customer_id": str(a), "name": "A"}, CTX)

        def call(i: int) -> bytes:
            return line("interaction.log_call", customer_id=a, direction="in", duration_min=i)

        earlier = [call(i) for i in range(100, 104)]
        importer(engine, batch_size=10).run(earlier, CTX)
        head = engine.store.head()
        lines = [call(1), call(2), call(3), earlier[1], earlier[2], call(4), call(5), call(6)]
        imp = importer(engine, batch_size=3, pipeline=pipeline)
        report = imp.run(lines, CTX)
        assert (report.appended, report.duplicates, report.errors) == (6, 2, [])
        calls = [e for e in engine.store.read(head, 100) if e.type == "interaction.call_logged"]
        assert sorted(e.payload.duration_min for e in calls) == [1, 2, 3, 4, 5, 6]
        assert imp.probe is False  # the last batch asked again and found none

    def test_a_re_run_keeps_asking_until_a_batch_finds_none(self, engine: Engine) -> None:
        a = uuid4()
        lines = [line("customer.register", customer_id=a, name="A")] + [
            line("interaction.log_call", customer_id=a, direction="in", duration_min=i)
            for i in range(10)
        ]
        importer(engine, batch_size=4).run(lines[:7], CTX)
        head = engine.store.head()
        asked: list[int] = []
        real = engine.store.recorded_commands

        def counting(ids: Any) -> Any:
            found = real(ids)
            asked.append(len(found))
            return found

        engine.store.recorded_commands = counting  # type: ignore[method-assign]
        report = importer(engine, batch_size=3).run(lines, CTX)
        assert (report.appended, report.duplicates, report.errors) == (4, 7, [])
        assert asked == [3, 3, 1, 0]  # lines 1-7 landed before; batch 4 finds none
        assert len(engine.store.read(head, 100)) == 4

    @pytest.mark.parametrize("pipeline", [False, True])
    def test_recorded_lines_that_would_now_be_refused_count_as_duplicates(
        self, engine: Engine, pipeline: bool
    ) -> None:
        """Past the first batches nobody asks before deciding; a recorded line that appends
        nothing now (a second registration is refused, a stage already set decides nothing)
        meets no unique key, so the batch asks about those: duplicates, not errors."""
        a = uuid4()
        earlier = [
            line("customer.register", customer_id=a, name="A"),
            line("customer.change_stage", customer_id=a, stage="customer"),
        ]
        importer(engine, batch_size=10).run(earlier, CTX)
        visits = [
            line("interaction.log_web", customer_id=a, action="visit", page=f"/{i}")
            for i in range(4)
        ]
        imp = importer(engine, batch_size=3, pipeline=pipeline)
        report = imp.run([*visits[:3], *earlier, visits[3]], CTX)
        assert (report.lines, report.appended, report.duplicates, report.errors) == (6, 4, 2, [])
        assert imp.probe is True  # found recorded ones: the next batch is asked about again

    @pytest.mark.parametrize("pipeline", [False, True])
    def test_a_batch_redone_for_a_recorded_command_decides_its_refused_commands_again(
        self, engine: Engine, pipeline: bool
    ) -> None:
        """w-1 (a withdrawal) landed before; consent was granted again since. A batch holds
        w-1 again, then w-2: deciding on w-1's replay refuses w-2 (nothing to withdraw). The
        append finds w-1 recorded, and the whole batch is decided again without it: w-2
        lands."""
        a = uuid4()
        engine.bus.execute_json("customer.register", {"customer_id": str(a), "name": "A"}, CTX)
        consent = {"customer_id": str(a), "consent_channel": "email"}
        engine.bus.execute_json("customer.grant_consent", consent, CTX)

        def withdraw(command_id: str) -> bytes:
            body = {"command": "customer.withdraw_consent", "command_id": command_id}
            return json.dumps({**body, "data": consent}).encode()

        importer(engine, batch_size=10).run([withdraw("w-1")], CTX)
        engine.bus.execute_json("customer.grant_consent", consent, CTX)
        visits = [
            line("interaction.log_web", customer_id=a, action="visit", page=f"/{i}")
            for i in range(3)
        ]
        report = importer(engine, batch_size=3, pipeline=pipeline).run(
            [*visits, withdraw("w-1"), withdraw("w-2")], CTX
        )
        assert (report.appended, report.duplicates, report.errors) == (4, 1, [])
        assert [e.type for e in engine.store.read_stream(a)][-2:] == [
            "customer.consent_granted",
            "customer.consent_withdrawn",
        ]
        assert engine.store.find_command("w-2") is not None


def test_an_import_that_fails_midway_trusts_nothing_it_held(engine: Engine) -> None:
    """A batch folded into the held states may never land: after a failure the importer
    holds nothing, and a second run reads the log afresh and appends what is missing."""
    a = uuid4()
    engine.bus.execute_json("customer.register", {"customer_id": str(a), "name": "A"}, CTX)
    lines = [
        line("customer.change_stage", customer_id=a, stage=s) for s in ("prospect", "customer")
    ]
    imp = importer(engine, batch_size=1)
    real = engine.store.prepare_commands
    calls = [0]

    def fail_second(*args: Any, **kwargs: Any) -> Any:
        calls[0] += 1
        if calls[0] == 2:
            raise RuntimeError("disk full")
        return real(*args, **kwargs)

    engine.store.prepare_commands = fail_second  # type: ignore[method-assign]
    with pytest.raises(RuntimeError):
        imp.run(lines, CTX)
    assert (imp.states.watermark, len(imp.states), imp.probe) == (None, 0, True)
    engine.store.prepare_commands = real  # type: ignore[method-assign]
    report = imp.run(lines, CTX)
    assert (report.appended, report.duplicates, report.errors) == (1, 1, [])
    assert [getattr(e.payload, "stage", None) for e in engine.store.read_stream(a)] == [
        "lead",
        "prospect",
        "customer",
    ]
