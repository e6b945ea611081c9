"""Review of issue 8 (audiences): cases the live view got wrong, against the answer the
definition gives (`members --as-of`, backtest: a customer exists from its first fact's
business time). On both backends."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID, uuid4

import pytest

from handlers.decision import CommandContext
from infra.clock import FixedClock
from infra.engine import Engine, open_engine
from infra.projector import open_runner
from projections.audiences import explain, members

NOW = datetime(2026, 6, 1, 12, tzinfo=UTC)


@pytest.fixture
def engine(store_url: str) -> Iterator[Engine]:
    with open_engine(store_url, env={}, clock=FixedClock(NOW)) as e:
        yield e


def do(engine: Engine, command: str, /, **data: Any) -> Any:
    return engine.bus.execute_json(
        command,
        {k: str(v) if isinstance(v, UUID | datetime) else v for k, v in data.items()},
        CommandContext(actor="employee:ann", channel="test"),
    )


def ids(engine: Engine, name: str, now: datetime, as_of: datetime | None = None) -> set[UUID]:
    with open_runner(engine) as runner:
        return {m.customer_id for m in members(runner.db, name, now=now, as_of=as_of)}


def test_a_customer_whose_first_fact_is_later_than_now_is_no_member_yet(engine: Engine) -> None:
    """A customer registered with a business time after the clock's now does not exist yet
    at now (as `members --as-of` and backtest say): a `not ...` rule must not select it
    until then, and must select it once the clock passes its first fact."""
    now_customer, future_customer = uuid4(), uuid4()
    do(engine, "customer.register", customer_id=now_customer, name="A", occurred_at=NOW)
    born = NOW + timedelta(days=10)
    do(engine, "customer.register", customer_id=future_customer, name="B", occurred_at=born)
    do(engine, "audience.define", name="unmailable", rule="not consent(email)")
    with open_runner(engine) as runner:
        runner.catch_up()
        live = {m.customer_id for m in members(runner.db, "unmailable", now=NOW)}
        as_of = {
            m.customer_id
            for m in members(runner.db, "unmailable", now=NOW, as_of=NOW - timedelta(seconds=1))
        }
        assert as_of == set()  # nobody existed a second before now... (sanity)
        assert live == {now_customer}
        assert not explain(runner.db, "unmailable", future_customer, now=NOW).member
        assert isinstance(engine.clock, FixedClock)
        engine.clock.advance_to(born + timedelta(hours=1))
        runner.fire_timers()
        live = {m.customer_id for m in members(runner.db, "unmailable", now=engine.clock.now())}
        assert live == {now_customer, future_customer}
