"""The `reminders` view against a recomputation written here (oracle), as the clock moves with
no new event, and completing or snoozing through the bus; on both backends."""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, time, timedelta
from typing import Any
from uuid import UUID, uuid4

import pytest
from dateutil.relativedelta import relativedelta

from domain.errors import DomainError
from handlers.decision import CommandContext
from infra.clock import FixedClock
from infra.engine import Engine, open_engine
from infra.projector import open_runner
from projections.reminders import customer_reminder_rows, reminders_list
from projections.runner import Runner

NOW = datetime(2026, 6, 1, 12, tzinfo=UTC)
LATER = NOW + timedelta(days=120)
START = NOW - timedelta(days=400)
SLA_HOURS = {"critical": (1, 8), "high": (4, 24), "normal": (8, 72), "low": (24, 168)}
OWNERS = ["employee:ann", "employee:bo"]
DEAL_OWNERS = [None, "employee:cy", "employee:di"]
TECHS = ["employee:tech1", "employee:tech2"]
AGENTS = ["employee:kim", "employee:lee"]
Expected = tuple[str, UUID, str, datetime]


def eur(x: str) -> dict[str, str]:
    return {"amount": x, "currency": "EUR"}


def minutes(rng: random.Random, low_days: float, high_days: float) -> timedelta:
    return timedelta(minutes=rng.randrange(int(low_days * 1440), int(high_days * 1440)))


@dataclass
class History:
    """A seeded history as (business time, command, data, actor), and what it implies."""

    seed: int
    commands: list[tuple[datetime, str, dict[str, Any], str]] = field(default_factory=list)
    expected_rows: list[Expected] = field(default_factory=list)

    def add(self, at: datetime, command: str, actor: str = "employee:desk", **data: Any) -> None:
        data["occurred_at"] = at.isoformat()
        self.commands.append((at, command, data, actor))

    def feed(self, engine: Engine) -> None:
        for _, name, data, actor in sorted(self.commands, key=lambda c: c[0]):
            engine.bus.execute_json(
                name,
                {k: str(v) if isinstance(v, UUID) else v for k, v in data.items()},
                CommandContext(actor=actor, channel="test"),
            )


def build(seed: int) -> History:  # noqa: PLR0915  (one generator, read top to bottom)
    rng = random.Random(seed)

    def uuid4() -> UUID:
        return UUID(int=rng.getrandbits(128), version=4)

    h = History(seed)
    customers = [uuid4() for _ in range(8)]
    for c in customers:
        h.add(START, "customer.register", customer_id=c, name="C")
    h.add(START, "product.define", sku="M-1", name="M", category="M", list_price=eur("10.00"))
    h.add(
        START,
        "pipeline.define",
        name="sales",
        stages=[{"name": "interest", "probability": "0.2"}],
    )
    assigned: dict[UUID, tuple[datetime, str]] = {}
    for c in customers[:4]:
        for _ in range(rng.randint(1, 2)):
            at = START + minutes(rng, 1, 300)
            owner = rng.choice(OWNERS)
            h.add(at, "customer.assign_owner", customer_id=c, owner=owner)
            if c not in assigned or at > assigned[c][0]:
                assigned[c] = (at, owner)
    deals: list[dict[str, Any]] = []
    for _ in range(10):
        d, c = uuid4(), rng.choice(customers)
        at = NOW - minutes(rng, 2, 200)
        owner = rng.choice(DEAL_OWNERS)
        deal = {"customer": c, "opened": at, "owner": owner, "quote": None, "open": True}
        deals.append(deal)
        h.add(
            at,
            "deal.open",
            deal_id=d,
            pipeline="sales",
            customer_id=c,
            value=eur("100.00"),
            **({"owner": owner} if owner else {}),
        )
        t = at
        if rng.random() < 0.3:
            t += timedelta(hours=1)
            deal["owner"] = rng.choice(DEAL_OWNERS[1:])
            h.add(t, "deal.assign", deal_id=d, owner=deal["owner"])
        if rng.random() < 0.7:
            t += minutes(rng, 0.1, 1)
            h.add(
                t,
                "deal.send_quote",
                deal_id=d,
                quote_number=f"Q-{d.hex[:6]}",
                amount=eur("100.00"),
                valid_until=(t + timedelta(days=30)).date().isoformat(),
            )
            deal["quote"] = t
        if rng.random() < 0.3:
            t += timedelta(hours=2)
            h.add(t, "deal.lose", deal_id=d, reason="price")
            deal["open"] = False

    def owner_of(c: UUID) -> str:
        if c in assigned:
            return assigned[c][1]
        owned = [d for d in deals if d["customer"] == c and d["owner"]]
        return max(owned, key=lambda d: d["opened"])["owner"] if owned else "unassigned"

    out = h.expected_rows
    for d in deals:
        if d["quote"] is not None and d["open"]:
            c = d["customer"]
            who = d["owner"] or owner_of(c)  # the deal's owner first
            out.append(("quote_follow_up", c, who, d["quote"] + timedelta(days=3)))
    for _ in range(6):  # equipment with a plan by days, maintained now and then
        e, c = uuid4(), rng.choice(customers)
        installed = NOW - minutes(rng, 30, 300)
        every = rng.choice((30, 90, 180))
        h.add(
            installed,
            "equipment.register",
            equipment_id=e,
            customer_id=c,
            model="Barista",
            serial=e.hex[:8],
            installed_at=installed.isoformat(),
        )
        h.add(installed, "equipment.set_maintenance_plan", equipment_id=e, every_days=every)
        base, tech = installed, None
        for _ in range(rng.randint(0, 2)):
            done = base + minutes(rng, 5, 60)
            if done >= NOW:
                break
            base, tech = done, rng.choice(TECHS)
            h.add(base, "equipment.record_maintenance", tech, equipment_id=e, kind="service")
        out.append(("maintenance_due", c, tech or owner_of(c), base + timedelta(days=every)))
    for _ in range(8):  # tickets opened lately, some answered, some resolved
        k, c = uuid4(), rng.choice(customers)
        opened = NOW - timedelta(minutes=rng.randrange(0, 100 * 60))
        severity = rng.choice(sorted(SLA_HOURS))
        h.add(
            opened,
            "ticket.open",
            ticket_id=k,
            customer_id=c,
            kind="complaint",
            category="x",
            severity=severity,
            subject="Broken",
        )
        agent = None
        t = opened
        if rng.random() < 0.5:
            agent = rng.choice(AGENTS)
            h.add(t, "ticket.assign", ticket_id=k, agent=agent)
        responded = rng.random() < 0.4
        if responded:
            t += timedelta(minutes=rng.randrange(1, 600))
            h.add(t, "ticket.respond", ticket_id=k, agent=agent or AGENTS[0], message="Hi")
        resolved = rng.random() < 0.3
        if resolved:
            t += timedelta(minutes=rng.randrange(1, 600))
            h.add(t, "ticket.resolve", ticket_id=k, resolution="done")
        first, whole = SLA_HOURS[severity]
        who = agent or owner_of(c)
        if not responded and not resolved:
            out.append(("sla_at_risk", c, who, opened + timedelta(hours=first) * 0.75))
        if not resolved:
            out.append(("sla_at_risk", c, who, opened + timedelta(hours=whole) * 0.75))
    for i in range(6):  # meetings: the employee who held one follows it up
        c, at = rng.choice(customers), NOW - minutes(rng, 0, 8)
        actor = ("employee:kai", "service:webform", "employee:lea")[i % 3]
        h.add(at, "interaction.log_meeting", actor, customer_id=c, duration_min=30)
        who = actor if actor.startswith("employee:") else owner_of(c)
        out.append(("meeting_follow_up", c, who, at + timedelta(days=2)))
    for _ in range(8):  # NPS answers
        s, c = uuid4(), rng.choice(customers)
        at = NOW - minutes(rng, 0, 3)
        score = rng.randint(0, 10)
        h.add(
            at - timedelta(days=1),
            "survey.send",
            survey_id=s,
            customer_id=c,
            kind="nps",
            trigger="periodic",
        )
        h.add(at, "survey.answer", survey_id=s, score=score)
        if score <= 6:
            out.append(("detractor_call_back", c, owner_of(c), at + timedelta(days=1)))
    last_order: dict[UUID, datetime] = {}
    for _ in range(14):  # orders, some gifts, some on invoice
        o, c = uuid4(), rng.choice(customers)
        at = START + minutes(rng, 1, 395)
        gift = rng.random() < 0.4
        method = "invoice" if rng.random() < 0.5 else "card"
        h.add(
            at,
            "order.place",
            order_id=o,
            customer_id=c,
            items=[{"sku": "M-1", "quantity": 1, "unit_price": eur("10.00")}],
            payment_method=method,
            **({"occasion": {"kind": "birthday", "for_person": "Bob"}} if gift else {}),
        )
        last_order[c] = max(last_order.get(c, at), at)
        if rng.random() < 0.1:
            h.add(at + timedelta(hours=1), "order.cancel", order_id=o, reason="no")
            continue
        if gift:
            out.append(("anniversary", c, owner_of(c), at + relativedelta(months=11)))
        if method == "invoice":
            due = (at + timedelta(days=14)).date()
            h.add(
                at + timedelta(hours=1),
                "order.issue_invoice",
                order_id=o,
                number=f"I-{o.hex[:6]}",
                due_date=due.isoformat(),
            )
            if rng.random() < 0.5:
                h.add(at + timedelta(days=3), "order.pay", order_id=o, amount=eur("10.00"))
            else:
                overdue = datetime.combine(due + timedelta(days=1), time(), tzinfo=UTC)
                out.append(("overdue_invoice", c, owner_of(c), overdue))
    for c, at in last_order.items():
        out.append(("dormant_customer", c, owner_of(c), at + timedelta(days=180)))
    return h


def expected(h: History, at: datetime, employee: str | None = None) -> list[Expected]:
    return sorted(
        r for r in h.expected_rows if r[3] <= at and (employee is None or r[2] == employee)
    )


def listed(runner: Runner, at: datetime, employee: str | None = None) -> list[Expected]:
    rows = reminders_list(runner.db, now=at, employee=employee)
    return sorted((r.rule, r.customer_id, r.employee, r.due_at) for r in rows)


@pytest.fixture
def engine(store_url: str) -> Iterator[Engine]:
    with open_engine(store_url, env={}, clock=FixedClock(NOW)) as e:
        yield e


def do(engine: Engine, command: str, /, **data: Any) -> Any:
    return engine.bus.execute_json(
        command,
        {k: str(v) if isinstance(v, UUID) else v for k, v in data.items()},
        CommandContext(actor="employee:ann", channel="test"),
    )


def refused(engine: Engine, code: str, command: str, /, **data: Any) -> None:
    head = engine.store.head()
    with pytest.raises(DomainError) as caught:
        do(engine, command, **data)
    assert caught.value.code == code, caught.value
    assert engine.store.head() == head


@pytest.mark.parametrize("seed", [1, 3, 5])
def test_reminders_equal_a_recomputation_at_two_times(engine: Engine, seed: int) -> None:
    history = build(seed)
    history.feed(engine)
    with open_runner(engine, page=37) as runner:  # small pages: subjects carried across pages
        runner.catch_up()
        now = expected(history, NOW)
        later = expected(history, LATER)
        assert len(now) > 20 and len(later) > len(now)  # both times have something to show
        assert {r[0] for r in now} == {
            "quote_follow_up",
            "maintenance_due",
            "sla_at_risk",
            "meeting_follow_up",
            "detractor_call_back",
            "overdue_invoice",
            "dormant_customer",
            "anniversary",
        }
        assert listed(runner, NOW) == now
        recent = NOW - timedelta(days=30)  # a work list that leaves out what fell due long ago
        rows = reminders_list(runner.db, now=NOW, due_after=recent)
        assert sorted((r.rule, r.customer_id, r.employee, r.due_at) for r in rows) == [
            r for r in now if r[3] > recent
        ]
        for employee in {r[2] for r in later}:
            assert listed(runner, LATER, employee) == expected(history, LATER, employee)
        head = engine.store.head()
        assert isinstance(engine.clock, FixedClock)
        engine.clock.advance_to(LATER)  # only the clock moves
        runner.fire_timers()
        assert listed(runner, engine.clock.now()) == later
        assert engine.store.head() == head


def test_a_maintenance_comes_due_as_only_time_passes(engine: Engine) -> None:
    customer, machine = uuid4(), uuid4()
    do(engine, "customer.register", customer_id=customer, name="Ada")
    installed = NOW - timedelta(days=50)
    do(
        engine,
        "equipment.register",
        equipment_id=machine,
        customer_id=customer,
        model="Barista",
        serial="B-1",
        installed_at=installed.isoformat(),
        occurred_at=installed.isoformat(),
    )
    do(engine, "equipment.set_maintenance_plan", equipment_id=machine, every_days=30)
    engine.bus.execute_json(
        "equipment.record_maintenance",
        {"equipment_id": str(machine), "kind": "descaling"},
        CommandContext(actor="employee:tech1", channel="test"),
    )  # at NOW (the engine's clock): the next one is due NOW + 30 days
    due = NOW + timedelta(days=30)
    with open_runner(engine) as runner:
        runner.catch_up()
        head = engine.store.head()
        assert reminders_list(runner.db, now=engine.clock.now()) == []
        (ahead,) = reminders_list(runner.db, now=NOW, due_before=due)
        assert (ahead.rule, ahead.employee, ahead.due_at) == (
            "maintenance_due",
            "employee:tech1",
            due,
        )
        assert isinstance(engine.clock, FixedClock)
        engine.clock.advance_to(due - timedelta(seconds=1))
        runner.fire_timers()
        assert reminders_list(runner.db, now=engine.clock.now()) == []
        engine.clock.advance_to(due)
        runner.fire_timers()
        (row,) = reminders_list(runner.db, now=engine.clock.now(), employee="employee:tech1")
        assert row == ahead
        assert reminders_list(runner.db, now=engine.clock.now(), employee="employee:ann") == []
        assert engine.store.head() == head  # no event made it appear


def test_complete_and_snooze_and_what_is_refused(engine: Engine) -> None:
    customer = uuid4()
    do(engine, "customer.register", customer_id=customer, name="Ada")
    do(engine, "customer.assign_owner", customer_id=customer, owner="employee:bo")
    for days in (5, 4):  # logged by a calendar service: the account owner follows them up
        engine.bus.execute_json(
            "interaction.log_meeting",
            {
                "customer_id": str(customer),
                "duration_min": 20,
                "occurred_at": (NOW - timedelta(days=days)).isoformat(),
            },
            CommandContext(actor="service:calendar", channel="test"),
        )
    with open_runner(engine) as runner:
        runner.catch_up()
        first, second = reminders_list(runner.db, now=NOW, employee="employee:bo")
        assert (first.rule, first.due_at) == ("meeting_follow_up", NOW - timedelta(days=3))
        until = NOW + timedelta(days=5)
        do(
            engine,
            "reminder.snooze",
            key=first.key,
            reminder_id=first.reminder_id,
            until=until.isoformat(),
        )
        do(engine, "reminder.complete", key=second.key, note="called, all fine")
        runner.catch_up()
        assert reminders_list(runner.db, now=NOW) == []
        rows = {r.key: r for r in customer_reminder_rows(runner.db, customer)}
        assert rows[second.key].status == "done" and rows[second.key].completed_at == NOW
        assert rows[first.key].snoozed_until == until and rows[first.key].status == "open"
        # a later event recomputes the customer: the snooze and the completion stay
        do(engine, "customer.assign_owner", customer_id=customer, owner="employee:ann")
        runner.catch_up()
        assert reminders_list(runner.db, now=until - timedelta(seconds=1)) == []
        (back,) = reminders_list(runner.db, now=until)
        assert (back.key, back.employee, back.effective_at) == (first.key, "employee:ann", until)
        done = {r.key: r for r in customer_reminder_rows(runner.db, customer)}[second.key]
        assert done.status == "done"
        # bad input: typed errors, nothing appended
        refused(engine, "reminder_already_completed", "reminder.complete", key=second.key)
        refused(
            engine,
            "reminder_already_completed",
            "reminder.snooze",
            key=second.key,
            until=until.isoformat(),
        )
        refused(
            engine,
            "snooze_in_the_past",
            "reminder.snooze",
            key=first.key,
            until=(NOW - timedelta(hours=1)).isoformat(),
        )
        refused(engine, "invalid_reminder_key", "reminder.complete", key="call:someone")
        refused(
            engine,
            "reminder_id_mismatch",
            "reminder.complete",
            key=first.key,
            reminder_id=uuid4(),
        )
        refused(
            engine, "customer_not_found", "customer.assign_owner", customer_id=uuid4(), owner="x"
        )


def test_an_order_moves_the_dormant_reminder(engine: Engine) -> None:
    customer = uuid4()
    do(engine, "customer.register", customer_id=customer, name="Ada")
    do(engine, "product.define", sku="M-1", name="M", category="M", list_price=eur("10.00"))
    items = [{"sku": "M-1", "quantity": 1, "unit_price": eur("10.00")}]
    first = NOW - timedelta(days=200)
    do(
        engine,
        "order.place",
        customer_id=customer,
        items=items,
        payment_method="card",
        occurred_at=first.isoformat(),
    )
    with open_runner(engine) as runner:
        runner.catch_up()
        (dormant,) = reminders_list(runner.db, now=NOW)
        assert (dormant.rule, dormant.due_at) == ("dormant_customer", first + timedelta(days=180))
        do(engine, "order.place", customer_id=customer, items=items, payment_method="card")
        runner.catch_up()
        assert reminders_list(runner.db, now=NOW) == []
        (moved,) = customer_reminder_rows(runner.db, customer)
        assert moved.due_at == NOW + timedelta(days=180) and moved.key != dormant.key


def test_rebuild_gives_the_same_rows(engine: Engine) -> None:
    history = build(11)
    history.feed(engine)
    with open_runner(engine) as runner:
        runner.catch_up()
        before = listed(runner, LATER)
        runner.rebuild("reminders")
        assert listed(runner, LATER) == before == expected(history, LATER)
