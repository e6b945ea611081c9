"""The projection runner and the customer_profile and timeline views, on both backends.

Oracle tests compute the expected answers from the test's own list of commands, with code
written here; they never call projection code.
"""

from __future__ import annotations

import gc
import random
import threading
from collections import defaultdict
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from typing import Any, ClassVar
from uuid import UUID

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from domain.envelope import Envelope
from handlers.decision import CommandContext
from infra.clock import FixedClock
from infra.codec import StoredRow
from infra.engine import Engine, open_engine
from infra.projector import open_runner, views
from projections.freshness import ViewNotCaughtUp, wait_until_applied
from projections.projection import Projection, Tables
from projections.runner import Runner

CTX = CommandContext(actor="employee:test", channel="test")
T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
CHANNEL_COMMANDS = {
    "email": ("interaction.log_email", {"direction": "in", "subject": "Re: offer"}),
    "call": (
        "interaction.log_call",
        {"direction": "out", "duration_min": 7.5, "notes": "called back"},
    ),
    "meeting": ("interaction.log_meeting", {"duration_min": 30, "notes": "demo"}),
    "web": ("interaction.log_web", {"action": "visit", "page": "/pricing"}),
    "conversation": ("interaction.log_conversation", {"medium": "chat", "summary": "asked"}),
    "questionnaire": (
        "interaction.log_questionnaire",
        {"questionnaire": "onboarding", "answers": [{"question": "q", "answer": "a"}]},
    ),
}


def uid(rng: random.Random) -> UUID:
    return UUID(int=rng.getrandbits(128), version=4)


@pytest.fixture
def engine(store_url: str) -> Iterator[Engine]:
    with open_engine(store_url, env={}, clock=FixedClock(T0)) as e:
        yield e


def run(engine: Engine, command: str, /, **data: Any) -> None:
    engine.bus.execute_json(
        command, {k: str(v) if isinstance(v, UUID) else v for k, v in data.items()}, CTX
    )


class Script:
    """A seeded history sent as commands, with what the test expects of it (the oracle)."""

    def __init__(
        self, engine: Engine, seed: int, customers: int = 12, interactions: int = 120
    ) -> None:
        rng = random.Random(seed)
        self.ids = [uid(rng) for _ in range(customers)]
        self.names = {c: f"Customer {i}" for i, c in enumerate(self.ids)}
        self.own: dict[UUID, list[tuple[datetime, str, UUID]]] = defaultdict(list)
        self.merged_into: dict[UUID, UUID] = {}
        self.forgotten: set[UUID] = set()
        for i, c in enumerate(self.ids):
            run(
                engine,
                "customer.register",
                customer_id=c,
                name=self.names[c],
                email=f"c{i}@x.org",
                occurred_at=(T0 - timedelta(days=400)).isoformat(),
            )
        used: set[datetime] = set()
        live = list(self.ids)
        for n in range(interactions):
            customer = rng.choice(live)
            channel = rng.choice(sorted(CHANNEL_COMMANDS))
            at = T0 - timedelta(minutes=rng.randrange(1, 500_000))  # late arrivals: any order
            while at in used:
                at -= timedelta(seconds=1)
            used.add(at)
            interaction_id = uid(rng)
            name, data = CHANNEL_COMMANDS[channel]
            run(
                engine,
                name,
                customer_id=customer,
                interaction_id=interaction_id,
                occurred_at=at.isoformat(),
                **data,
            )
            self.own[customer].append((at, channel, interaction_id))
            if n in (interactions // 3, interactions // 2):  # merge a live customer into another
                merged, survivor = rng.sample(live, 2)
                run(engine, "customer.merge", survivor_id=survivor, merged_id=merged)
                self.merged_into[merged] = survivor
                live.remove(merged)
        self.live = live

    def family(self, customer: UUID) -> set[UUID]:
        """The customer and everyone merged into it, directly or not."""
        found = {customer}
        changed = True
        while changed:
            changed = False
            for m, s in self.merged_into.items():
                if s in found and m not in found:
                    found.add(m)
                    changed = True
        return found

    def expected_counts(self, customer: UUID) -> dict[str, int]:
        counts: dict[str, int] = defaultdict(int)
        for member in self.family(customer):
            for _, channel, _ in self.own[member]:
                counts[channel] += 1
        return {c: counts.get(c, 0) for c in CHANNEL_COMMANDS}

    def expected_timeline(self, customer: UUID) -> list[UUID]:
        entries = [e for m in self.family(customer) for e in self.own[m]]
        return [i for _, _, i in sorted(entries, key=lambda e: e[0], reverse=True)]


def dump(runner: Runner) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every view, in a stable order (views compared across runs)."""
    out = {}
    for table, key in (
        ("customer_profile", "customer_id"),
        ("timeline", "position"),
        ("timeline_merges", "merged_id"),
    ):
        rows = runner.db.fetch(f"SELECT * FROM {runner.db.dialect.qualify(table)} ORDER BY {key}")
        out[table] = [tuple(str(v) for v in r) for r in rows]
    return out


class TestOracle:
    def test_counts_and_timelines_equal_a_recomputation_from_the_commands(
        self, engine: Engine
    ) -> None:
        script = Script(engine, seed=3)
        runner = open_runner(engine, page=17)  # many small pages
        runner.catch_up()
        v = views(runner)
        for customer in script.ids:
            profile = v.profile(customer)
            assert profile is not None
            counts = {c.channel: c.count for c in profile.channels}
            if customer in script.merged_into:
                assert profile.merged_into == script.merged_into[customer]
                continue
            assert counts == script.expected_counts(customer), customer
            assert [t.interaction_id for t in v.timeline(customer, limit=1000)] == (
                script.expected_timeline(customer)
            )
            last = max(
                (at for m in script.family(customer) for at, _, _ in script.own[m]), default=None
            )
            assert profile.last_contact_at == last
        assert all(s.lag == 0 and s.dead_letters == 0 for s in runner.status())

    def test_unmerge_gives_the_history_back(self, engine: Engine) -> None:
        script = Script(engine, seed=5, customers=4, interactions=30)
        merged, survivor = next(iter(script.merged_into.items()))
        run(engine, "customer.unmerge", survivor_id=survivor, merged_id=merged)
        runner = open_runner(engine)
        runner.catch_up()
        v = views(runner)
        del script.merged_into[merged]
        for customer in (merged, survivor):
            profile = v.profile(customer)
            assert profile is not None
            assert profile.merged_into == script.merged_into.get(customer)
            if customer in script.merged_into:
                continue
            assert {c.channel: c.count for c in profile.channels} == script.expected_counts(
                customer
            )
            assert [t.interaction_id for t in v.timeline(customer, limit=1000)] == (
                script.expected_timeline(customer)
            )

    def test_an_organisation_lists_its_contact_persons_and_a_person_its_organisations(
        self, engine: Engine
    ) -> None:
        rng = random.Random(1)
        org, ada, bob = uid(rng), uid(rng), uid(rng)
        run(engine, "customer.register", customer_id=org, name="ACME", kind="organisation")
        run(engine, "customer.register", customer_id=ada, name="Ada")
        run(engine, "customer.register", customer_id=bob, name="Bob")
        run(
            engine, "customer.link_contact_person", organisation_id=org, person_id=ada, role="buyer"
        )
        run(engine, "customer.link_contact_person", organisation_id=org, person_id=bob, role="cto")
        run(engine, "customer.unlink_contact_person", organisation_id=org, person_id=bob)
        runner = open_runner(engine)
        runner.catch_up()
        v = views(runner)
        org_profile, ada_profile, bob_profile = v.profile(org), v.profile(ada), v.profile(bob)
        assert org_profile and ada_profile and bob_profile
        assert org_profile.contact_persons == [{"person_id": str(ada), "role": "buyer"}]
        assert ada_profile.organisations == [{"organisation_id": str(org), "role": "buyer"}]
        assert bob_profile.organisations == []

    def test_forget_blanks_the_personal_fields_of_both_views(self, engine: Engine) -> None:
        rng = random.Random(2)
        c = uid(rng)
        run(
            engine,
            "customer.register",
            customer_id=c,
            name="Zsófia Kovács",
            email="zs@x.org",
            phone="+36 1 234",
            birth_date="1980-02-03",
        )
        run(
            engine,
            "interaction.log_call",
            customer_id=c,
            direction="in",
            duration_min=3,
            notes="Zsófia asked about her order",
        )
        runner = open_runner(engine)
        runner.catch_up()
        assert views(runner).timeline(c)[0].summary == "Zsófia asked about her order"
        run(engine, "customer.forget", customer_id=c)
        runner.catch_up()
        profile = views(runner).profile(c)
        assert profile is not None and profile.forgotten
        assert (profile.name, profile.birth_date, profile.age, profile.contacts) == (
            None,
            None,
            None,
            [],
        )
        (entry,) = views(runner).timeline(c)
        assert entry.summary is None and entry.duration_min == 3
        assert "Zs" not in repr(dump(runner))


class TestRunner:
    def test_rows_and_checkpoint_survive_a_rebuild_and_the_views_keep_their_names(
        self, engine: Engine
    ) -> None:
        Script(engine, seed=8, customers=5, interactions=40)
        runner = open_runner(engine, page=9)
        runner.catch_up()
        before = dump(runner)
        assert runner.rebuild("timeline") > 0 and runner.rebuild("customer_profile") > 0
        assert dump(runner) == before
        status = {s.name: s for s in runner.status()}
        assert status["timeline"].generation == 2 and status["timeline"].lag == 0

    def test_a_poison_event_goes_to_the_dead_letters_and_stops_the_projection(
        self, engine: Engine
    ) -> None:
        Script(engine, seed=9, customers=3, interactions=10)
        poison = engine.store.append_stored(
            [
                StoredRow(
                    uid(random.Random(4)), 1, "interaction.call_logged", b"\xce\x00\x00\x01garbage"
                )
            ],
            bulk=False,
        )[0]
        after = uid(random.Random(6))
        run(engine, "customer.register", customer_id=after, name="After")
        runner = open_runner(engine)
        runner.catch_up()
        status = {s.name: s for s in runner.status()}
        for name in ("timeline", "customer_profile"):  # both handle calls (and stop there)
            assert status[name].state == "stopped" and status[name].dead_letters == 1
            assert status[name].position == poison - 1 and status[name].lag == 2
            assert "CorruptEvent" in (status[name].error or "")
            (letter,) = runner.dead_letters(name)
            assert (letter.position, letter.event_type) == (poison, "interaction.call_logged")
        assert views(runner).profile(after) is None  # it waits at the poison event
        # Skip policy: the same poison is set aside and the projections go on.
        handling = [
            n for n, p in runner.projections.items() if "interaction.call_logged" in p.handles
        ]
        runner = open_runner(engine, policies=dict.fromkeys(handling, "skip"))
        for name in handling:
            runner.resume(name)
        runner.catch_up()
        for s in runner.status():
            poisoned = "interaction.call_logged" in runner.projections[s.name].handles
            assert (s.state, s.lag, s.dead_letters) == ("live", 0, int(poisoned))
        assert views(runner).profile(after) is not None

    def test_an_event_a_projection_cannot_apply_is_isolated_from_its_page(
        self, engine: Engine
    ) -> None:
        Script(engine, seed=10, customers=3, interactions=20)
        bad = engine.store.read(0, 1000)[15].position

        class Fragile(Projection):
            name = "fragile"
            handles = frozenset(
                {
                    "interaction.web_activity",
                    "interaction.call_logged",
                    "interaction.email_logged",
                    "interaction.meeting_logged",
                    "interaction.conversation_logged",
                    "interaction.questionnaire_answered",
                    "customer.registered",
                }
            )
            tables = {"fragile": "position {int} PRIMARY KEY"}

            def apply(self, t: Tables, events: list[Envelope[Any]], now: datetime) -> None:
                for e in events:
                    if e.position == bad:
                        raise ValueError("cannot apply this one")
                t.executemany(
                    "INSERT INTO {fragile} (position) VALUES (?)", [(e.position,) for e in events]
                )

        runner = Runner(
            open_runner(engine).db,
            engine.store,
            [Fragile()],
            engine.clock,
            page=1000,
            policies={"fragile": "skip"},
        )
        runner.setup()
        runner.catch_up()
        applied = {
            r[0]
            for r in runner.db.fetch(f"SELECT position FROM {runner.db.dialect.qualify('fragile')}")
        }
        assert bad not in applied and len(applied) == 23 - 1
        (letter,) = runner.dead_letters("fragile")
        assert letter.position == bad and "cannot apply this one" in letter.error

    def test_the_collector_is_paused_while_pages_apply_and_back_on_after(
        self, engine: Engine
    ) -> None:
        Script(engine, seed=11, customers=3, interactions=20)

        class Stop(BaseException):
            pass

        class Watching(Projection):
            name = "watching"
            handles = frozenset({"customer.registered", "interaction.call_logged"})
            tables = {"watching": "position {int} PRIMARY KEY"}
            seen: ClassVar[list[bool]] = []
            fail = False

            def apply(self, t: Tables, events: list[Envelope[Any]], now: datetime) -> None:
                self.seen.append(gc.isenabled())
                if self.fail:
                    raise Stop

        watching = Watching()
        runner = Runner(open_runner(engine).db, engine.store, [watching], engine.clock, page=5)
        runner.setup()
        assert gc.isenabled()
        watching.fail = True
        with pytest.raises(Stop):  # an error that escapes the page loop
            runner.catch_up()
        assert gc.isenabled()
        watching.fail = False
        assert runner.catch_up() > 0
        assert gc.isenabled()
        assert len(Watching.seen) > 2 and not any(Watching.seen)
        gc.disable()  # a caller that paused it itself keeps it paused
        try:
            runner.catch_up()
            assert not gc.isenabled()
        finally:
            gc.enable()

    def test_two_runners_at_once_apply_each_event_once(self, engine: Engine) -> None:
        script = Script(engine, seed=11, customers=6, interactions=80)
        first = open_runner(engine, page=5)
        runners = [first, open_runner(engine, page=7), open_runner(engine, page=3)]
        threads = [threading.Thread(target=r.catch_up) for r in runners]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        first.catch_up()
        assert all(s.dead_letters == 0 and s.lag == 0 for s in first.status())
        rows = first.db.fetch(f"SELECT count(*) FROM {first.db.dialect.qualify('timeline')}")
        assert rows[0][0] == sum(len(v) for v in script.own.values())

    def test_a_timer_fires_when_only_the_clock_moves(self, engine: Engine) -> None:
        clock = engine.clock
        assert isinstance(clock, FixedClock)
        c = uid(random.Random(12))
        run(engine, "customer.register", customer_id=c, name="Ada", birth_date="1990-03-05")
        runner = open_runner(engine)
        runner.catch_up()
        assert views(runner).profile(c).age == 35  # type: ignore[union-attr]
        head = engine.store.head()
        assert runner.fire_timers() == 0
        clock.advance_to(datetime(2026, 3, 5, 0, 0, 1, tzinfo=UTC))
        assert runner.fire_timers() == 1
        assert views(runner).profile(c).age == 36  # type: ignore[union-attr]
        assert engine.store.head() == head  # no event was needed
        assert runner.next_timer() == datetime(2027, 3, 5, tzinfo=UTC)

    def test_rows_a_timer_changed_elsewhere_are_not_overwritten_from_a_cache(
        self, engine: Engine
    ) -> None:
        """Runner b caches a profile row; runner a's birthday timer changes it; b's next page
        must start from the changed row, not write its cached copy back."""
        clock = engine.clock
        assert isinstance(clock, FixedClock)
        c = uid(random.Random(15))
        run(engine, "customer.register", customer_id=c, name="Ada", birth_date="1990-03-05")
        with open_runner(engine) as b, open_runner(engine) as a:
            b.catch_up()
            clock.advance_to(datetime(2026, 3, 5, 0, 0, 1, tzinfo=UTC))
            assert a.fire_timers() == 1
            run(engine, "interaction.log_call", customer_id=c, direction="in", duration_min=2)
            b.catch_up()
            profile = views(b).profile(c)
        assert profile is not None and profile.age == 36
        assert {ch.channel: ch.count for ch in profile.channels}["call"] == 1

    def test_wait_for_a_position_read_your_writes(self, engine: Engine) -> None:
        c = uid(random.Random(13))
        with open_runner(engine) as runner, open_runner(engine) as projector:
            stop = threading.Event()
            follower = threading.Thread(target=projector.follow, args=(stop, 0.05))
            follower.start()
            try:
                result = engine.bus.execute_json(
                    "customer.register", {"customer_id": str(c), "name": "A"}, CTX
                )
                position = result.positions[-1]
                assert views(runner).profile(c, min_position=position) is not None
                assert runner.wait_for(position, timeout=10)
                assert views(runner).timeline(c, min_position=position) == []
            finally:
                stop.set()
                follower.join()


@settings(
    max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(seed=st.integers(0, 10_000), page=st.integers(1, 50))
def test_catch_up_in_pages_equals_one_event_at_a_time(
    tmp_path_factory: pytest.TempPathFactory, seed: int, page: int
) -> None:
    path = tmp_path_factory.mktemp("eq") / "crm.db"
    with open_engine(f"sqlite:///{path}", env={}, clock=FixedClock(T0)) as engine:
        Script(engine, seed=seed, customers=5, interactions=25)
        paged = open_runner(engine, page=max(page, 20))
        paged.catch_up()
        expected = dump(paged)
        one = open_runner(engine, page=1)
        for name in ("customer_profile", "timeline"):
            one.rebuild(name)
        assert dump(one) == expected


def test_one_page_across_registrations_merges_and_unmerges_equals_one_event_at_a_time(
    engine: Engine,
) -> None:
    """customer_profile counts a page's interactions per customer and channel in runs that
    end where a registration, merge or unmerge changes where they count: one page over all
    of them must give what one event at a time gives."""
    rng = random.Random(21)
    a, b, c = uid(rng), uid(rng), uid(rng)

    def interact(customer: UUID, channel: str, n: int) -> None:
        command, fields = CHANNEL_COMMANDS[channel]
        for _ in range(n):
            run(engine, command, customer_id=customer, **fields)

    run(engine, "customer.register", customer_id=a, name="A")
    interact(a, "call", 2)
    run(engine, "customer.register", customer_id=b, name="B")
    interact(b, "call", 1)
    interact(a, "email", 1)
    run(engine, "customer.merge", survivor_id=a, merged_id=b)
    interact(a, "call", 2)
    run(engine, "customer.unmerge", survivor_id=a, merged_id=b)
    interact(b, "call", 1)
    interact(a, "call", 1)
    run(engine, "customer.register", customer_id=c, name="C")
    interact(c, "web", 3)
    run(engine, "customer.merge", survivor_id=c, merged_id=a)
    interact(c, "email", 1)
    paged = open_runner(engine, page=10_000)
    paged.catch_up()
    expected = dump(paged)
    one = open_runner(engine, page=1)
    one.rebuild("customer_profile")
    assert dump(one) == expected
    profile = views(paged).profile(c)
    assert profile is not None
    counts = {ch.channel: ch.count for ch in profile.channels if ch.count}
    # c: its own 3 web and 1 e-mail, and a's 5 calls and 1 e-mail (b was given back first)
    assert counts == {"web": 3, "call": 5, "email": 2}
    profile = views(paged).profile(b)
    assert profile is not None
    assert {ch.channel: ch.count for ch in profile.channels if ch.count} == {"call": 2}


def test_age_is_derived_at_the_clock(engine: Engine) -> None:
    c = uid(random.Random(14))
    run(engine, "customer.register", customer_id=c, name="Leap", birth_date="2000-02-29")
    runner = open_runner(engine)
    runner.catch_up()
    profile = views(runner).profile(c)
    assert profile is not None and profile.birth_date == date(2000, 2, 29) and profile.age == 26


def test_a_query_for_a_position_no_view_reached_gets_a_typed_error(engine: Engine) -> None:
    with open_runner(engine) as runner:
        runner.catch_up()
        head = engine.store.head()
        with pytest.raises(ViewNotCaughtUp) as caught:
            wait_until_applied(runner.db, ["customer_profile"], head + 5, timeout=0.2)
        assert caught.value.code == "view_not_caught_up" and caught.value.reached == head
