"""Equipment and surveys through the command bus, on both backends."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID, uuid4

import pytest

from domain.errors import DomainError
from handlers.decision import CommandContext
from infra.clock import FixedClock
from infra.engine import Engine, open_engine

NOW = datetime(2026, 6, 1, 12, tzinfo=UTC)
CTX = CommandContext(actor="employee:service", channel="test")


@pytest.fixture
def engine(store_url: str) -> Iterator[Engine]:
    with open_engine(store_url, env={}, clock=FixedClock(NOW)) as e:
        yield e


def do(engine: Engine, command: str, /, **data: Any) -> Any:
    return engine.bus.execute_json(
        command, {k: str(v) if isinstance(v, UUID) else v for k, v in data.items()}, CTX
    )


def refused(engine: Engine, code: str, command: str, /, **data: Any) -> None:
    head = engine.store.head()
    with pytest.raises(DomainError) as caught:
        do(engine, command, **data)
    assert caught.value.code == code, caught.value
    assert engine.store.head() == head


def at(days: int) -> str:
    return (NOW - timedelta(days=300) + timedelta(days=days)).isoformat()


def test_equipment_lives_its_life_and_refuses_bad_input(engine: Engine) -> None:
    customer, machine = uuid4(), uuid4()
    do(engine, "customer.register", customer_id=customer, name="Ada")
    do(
        engine,
        "equipment.register",
        equipment_id=machine,
        customer_id=customer,
        model="Barista 2",
        serial="B2-0001",
        installed_at=at(0),
        warranty_end="2027-01-01",
        expected_life_usage=10_000,
        occurred_at=at(0),
    )
    do(
        engine,
        "equipment.set_maintenance_plan",
        equipment_id=machine,
        every_days=90,
        occurred_at=at(1),
    )
    do(engine, "equipment.record_usage", equipment_id=machine, reading=1200, occurred_at=at(60))
    do(
        engine, "equipment.record_usage", equipment_id=machine, reading=800, occurred_at=at(40)
    )  # late
    do(
        engine,
        "equipment.record_maintenance",
        equipment_id=machine,
        kind="descaling",
        occurred_at=at(91),
    )
    result = do(
        engine,
        "equipment.report_breakdown",
        equipment_id=machine,
        failure_code="E42",
        occurred_at=at(120),
    )
    breakdown, opened = engine.store.read(result.positions[0] - 1, 2)
    assert breakdown.type == "equipment.breakdown_reported" and opened.type == "ticket.opened"
    assert breakdown.payload.ticket_id == opened.stream_id  # one transaction, linked
    assert opened.payload.equipment_id == machine and opened.payload.severity == "high"
    refused(
        engine,
        "reading_goes_backwards",
        "equipment.record_usage",
        equipment_id=machine,
        reading=100,
        occurred_at=at(130),
    )
    refused(
        engine, "equipment_not_found", "equipment.record_usage", equipment_id=uuid4(), reading=5
    )
    refused(
        engine,
        "event_before_last",
        "equipment.record_maintenance",
        equipment_id=machine,
        kind="check",
        occurred_at=at(100),
    )
    refused(
        engine,
        "customer_not_found",
        "equipment.register",
        customer_id=uuid4(),
        model="X",
        serial="1",
        installed_at=at(0),
    )


def test_surveys_are_answered_once_within_their_scale(engine: Engine) -> None:
    customer, nps, csat = uuid4(), uuid4(), uuid4()
    do(engine, "customer.register", customer_id=customer, name="Ada")
    do(engine, "survey.send", survey_id=nps, customer_id=customer, kind="nps", trigger="periodic")
    do(
        engine,
        "survey.send",
        survey_id=csat,
        customer_id=customer,
        kind="csat",
        trigger="after_delivery",
    )
    refused(engine, "score_out_of_range", "survey.answer", survey_id=nps, score=11)
    refused(engine, "score_out_of_range", "survey.answer", survey_id=csat, score=0)
    do(engine, "survey.answer", survey_id=nps, score=9, comment="great coffee")
    refused(engine, "already_answered", "survey.answer", survey_id=nps, score=3)
    refused(engine, "survey_not_found", "survey.answer", survey_id=uuid4(), score=3)
    events = engine.store.read_stream(nps)
    assert [e.type for e in events] == ["survey.sent", "survey.answered"]
    assert all(e.channel == "questionnaire" and e.customer_id == customer for e in events)


def test_a_ticket_from_opening_to_closing(engine: Engine) -> None:
    customer, ticket = uuid4(), uuid4()
    do(engine, "customer.register", customer_id=customer, name="Ada")
    do(
        engine,
        "ticket.open",
        ticket_id=ticket,
        customer_id=customer,
        kind="complaint",
        category="delivery",
        severity="high",
        subject="Parcel arrived broken",
        occurred_at=at(0),
    )
    do(engine, "ticket.assign", ticket_id=ticket, agent="employee:kim", occurred_at=at(0))
    do(
        engine,
        "ticket.respond",
        ticket_id=ticket,
        agent="employee:kim",
        message="Sorry!",
        occurred_at=at(1),
    )
    refused(engine, "not_resolved", "ticket.close", ticket_id=ticket, occurred_at=at(2))
    refused(
        engine, "not_resolved", "ticket.reopen", ticket_id=ticket, reason="x", occurred_at=at(2)
    )
    do(engine, "ticket.resolve", ticket_id=ticket, resolution="replaced", occurred_at=at(2))
    do(engine, "ticket.close", ticket_id=ticket, occurred_at=at(3))
    refused(engine, "ticket_closed", "ticket.close", ticket_id=ticket, occurred_at=at(4))
    refused(engine, "ticket_not_found", "ticket.assign", ticket_id=uuid4(), agent="employee:kim")
    assert [e.type for e in engine.store.read_stream(ticket)] == [
        "ticket.opened",
        "ticket.assigned",
        "ticket.responded",
        "ticket.resolved",
        "ticket.closed",
    ]
