"""As-of oracle tests on both backends, over a history where many events arrive late.

- `--as-of T` (business time): the reports' own as-of and the customer profile replayed with
  `occurred_at <= T` equal a fresh store fed only the commands that occurred by T.
- `--recorded-as-of P|T`: scratch views replayed up to position P (or the last position
  recorded by T) equal a fresh store fed only the first k commands.
The expected answers come from stores fed by this test, never from the live views' rows.
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import UUID

import msgspec
import pytest
from typer.testing import CliRunner

from handlers.decision import CommandContext
from infra.clock import FixedClock
from infra.engine import Engine, open_engine
from infra.projector import open_runner
from infra.replay_views import parse_recorded, recorded_point, scratch_views
from projections.equipment_view import equipment_report
from projections.orders_view import orders_report
from projections.ports import ProjectionDB
from projections.queries import Views
from projections.retention import retention_report
from projections.satisfaction import satisfaction_report
from projections.service_view import service_report

NOW = datetime(2026, 6, 1, tzinfo=UTC)
START = NOW - timedelta(days=120)
PRICES = {"M-1": "249.00", "B-1": "12.50", "A-1": "34.90"}
CTX = CommandContext(actor="employee:test", channel="test")
Command = tuple[datetime, str, dict[str, Any]]


def uid(rng: random.Random) -> UUID:
    return UUID(int=rng.getrandbits(128), version=4)


class LateHistory:
    """Commands with business times, in the order they are recorded: after the registrations,
    units of work (an order's commands, a survey sent and answered, one interaction) are
    shuffled, so many arrive after others that occurred later."""

    def __init__(self, seed: int) -> None:
        rng = random.Random(seed)
        self.customers = [uid(rng) for _ in range(6)]
        base: list[Command] = [
            (START, "customer.register", {"customer_id": c, "name": f"C{i}"})
            for i, c in enumerate(self.customers)
        ]
        base += [
            (
                START,
                "product.define",
                {"sku": s, "name": s, "category": s[0], "list_price": _eur(p)},
            )
            for s, p in PRICES.items()
        ]
        units: list[list[Command]] = []
        for _ in range(40):
            at = START + timedelta(hours=rng.randrange(1, 110 * 24))
            c = rng.choice(self.customers)
            kind = rng.choice(("call", "email", "meeting", "web"))
            data: dict[str, Any] = {"customer_id": c}
            if kind == "call":
                data.update(direction=rng.choice(("in", "out")), duration_min=rng.randint(1, 30))
            elif kind == "email":
                data.update(direction="in")
            elif kind == "meeting":
                data.update(duration_min=45)
            else:
                data.update(action="visit", page="/shop")
            name = {"web": "interaction.log_web"}.get(kind, f"interaction.log_{kind}")
            units.append([(at, name, data)])
        for _ in range(14):
            order = uid(rng)
            at = START + timedelta(hours=rng.randrange(1, 100 * 24))
            sku = rng.choice(sorted(PRICES))
            unit: list[Command] = [
                (
                    at,
                    "order.place",
                    {
                        "order_id": order,
                        "customer_id": rng.choice(self.customers),
                        "items": [
                            {
                                "sku": sku,
                                "quantity": rng.randint(1, 3),
                                "unit_price": _eur(PRICES[sku]),
                            }
                        ],
                        "payment_method": "card",
                    },
                )
            ]
            if rng.random() < 0.3:
                unit.append(
                    (at + timedelta(days=2), "order.cancel", {"order_id": order, "reason": "x"})
                )
            units.append(unit)
        for _ in range(8):
            survey = uid(rng)
            at = START + timedelta(hours=rng.randrange(1, 100 * 24))
            units.append(
                [
                    (
                        at,
                        "survey.send",
                        {
                            "survey_id": survey,
                            "customer_id": rng.choice(self.customers),
                            "kind": "nps",
                            "trigger": "periodic",
                        },
                    ),
                    (
                        at + timedelta(days=3),
                        "survey.answer",
                        {"survey_id": survey, "score": rng.randint(0, 10)},
                    ),
                ]
            )
        rng.shuffle(units)
        self.recorded: list[Command] = base + [c for u in units for c in u]

    def feed(
        self,
        engine: Engine,
        keep: Callable[[int, Command], bool] = lambda i, c: True,
        after_each: Callable[[int, list[int]], None] | None = None,
    ) -> None:
        for i, (at, name, data) in enumerate(self.recorded):
            if not keep(i, (at, name, data)):
                continue
            body = {k: str(v) if isinstance(v, UUID) else v for k, v in data.items()}
            result = engine.bus.execute_json(name, {**body, "occurred_at": at.isoformat()}, CTX)
            if after_each is not None:
                after_each(i, list(result.positions))

    def late_ones(self) -> int:
        """How many commands are recorded after one that occurred later."""
        latest, late = START, 0
        for at, _, _ in self.recorded:
            late += at < latest
            latest = max(latest, at)
        return late


def _eur(x: str) -> dict[str, str]:
    return {"amount": x, "currency": "EUR"}


def answers(
    db: ProjectionDB, customers: list[UUID], *, now: datetime, as_of: datetime | None
) -> Any:
    """The answers compared: counts per channel of each customer, the orders report's spend,
    the retention and satisfaction reports."""
    views = Views(db)
    channels = {}
    for c in customers:
        profile = views.profile(c)
        channels[str(c)] = (
            None
            if profile is None
            else sorted((x.channel, x.count, str(x.last_at)) for x in profile.channels)
        )
    orders = orders_report(db, now=now, as_of=as_of, top=100)
    return msgspec.to_builtins(
        {
            "channels": channels,
            "spend": [(t.currency, t.orders, str(t.gross), str(t.net)) for t in orders.totals],
            "top": [(str(t.customer_id), str(t.net)) for t in orders.top_customers],
            "retention": retention_report(db, now=now, as_of=as_of),
            "satisfaction": satisfaction_report(db, now=now, as_of=as_of),
        }
    )


@pytest.fixture
def history() -> LateHistory:
    h = LateHistory(seed=11)
    assert h.late_ones() > 20  # the point of the exercise
    return h


@pytest.fixture
def live(store_url: str, history: LateHistory) -> Iterator[tuple[Engine, list[list[int]]]]:
    """The store fed the whole history; positions of each command (by index)."""
    positions: list[list[int]] = [[] for _ in history.recorded]

    def note(i: int, p: list[int]) -> None:
        positions[i] = p
        time.sleep(0.003)  # distinct record times (SQLite keeps milliseconds)

    with open_engine(store_url, env={}, clock=FixedClock(NOW)) as engine:
        history.feed(engine, after_each=note)
        yield engine, positions


def oracle(
    tmp_path: Path,
    name: str,
    history: LateHistory,
    keep: Callable[[int, Command], bool],
    now: datetime,
) -> Any:
    with open_engine(f"sqlite:///{tmp_path}/{name}.db", env={}, clock=FixedClock(now)) as engine:
        history.feed(engine, keep)
        with open_runner(engine) as runner:
            runner.catch_up()
            runner.fire_timers()
            return answers(runner.db, history.customers, now=now, as_of=None)


class TestBusinessAsOf:
    def test_as_of_answers_equal_a_store_fed_only_what_occurred_by_then(
        self, live: tuple[Engine, list[list[int]]], history: LateHistory, tmp_path: Path
    ) -> None:
        engine, _ = live
        with open_runner(engine) as runner:
            runner.catch_up()
            runner.fire_timers()
        for days in (20, 55, 90):
            cut = START + timedelta(days=days, hours=7)
            expected = oracle(
                tmp_path, f"cut{days}", history, lambda i, c, cut=cut: c[0] <= cut, cut
            )
            with scratch_views(
                engine.store,
                position=engine.store.head(),
                now=cut,
                occurred_by=cut,
                projections=["customer_profile", "timeline"],
            ) as db:
                profile = answers_channels(db, history.customers)
            with open_runner(engine) as runner:
                got = answers(runner.db, history.customers, now=NOW, as_of=cut)
                assert profile != answers_channels(runner.db, history.customers)  # not the head
            got["channels"] = profile
            assert got == expected, days
            assert got["spend"] and any(got["channels"].values())


def answers_channels(db: ProjectionDB, customers: list[UUID]) -> Any:
    views = Views(db)
    out = {}
    for c in customers:
        profile = views.profile(c)
        out[str(c)] = (
            None
            if profile is None
            else sorted((x.channel, x.count, str(x.last_at)) for x in profile.channels)
        )
    return msgspec.to_builtins(out)


class TestRecordedAsOf:
    def test_recorded_as_of_equals_a_store_fed_only_the_first_k_commands(
        self, live: tuple[Engine, list[list[int]]], history: LateHistory, tmp_path: Path
    ) -> None:
        engine, positions = live
        n = len(history.recorded)
        for k in (n // 4, n // 2, n - 5):
            position = positions[k - 1][-1]
            by_position = recorded_point(engine.store, parse_recorded(str(position)))
            assert by_position.position == position
            by_time = recorded_point(engine.store, by_position.at)
            assert by_time == by_position  # the last position recorded by then is P itself
            expected = oracle(
                tmp_path, f"first{k}", history, lambda i, c, k=k: i < k, by_position.at
            )
            projections = ["customer_profile", "timeline", "orders", "retention", "satisfaction"]
            with scratch_views(
                engine.store, position=position, now=by_position.at, projections=projections
            ) as db:
                got = answers(db, history.customers, now=by_position.at, as_of=None)
            assert got == expected, k

    def test_both_options_give_the_bitemporal_view(
        self, live: tuple[Engine, list[list[int]]], history: LateHistory, tmp_path: Path
    ) -> None:
        engine, positions = live
        k = len(history.recorded) * 2 // 3
        point = recorded_point(engine.store, positions[k - 1][-1])
        cut = START + timedelta(days=60)
        expected = oracle(tmp_path, "bitemporal", history, lambda i, c: i < k and c[0] <= cut, cut)
        with scratch_views(engine.store, position=point.position, now=point.at) as db:
            got = answers(db, history.customers, now=point.at, as_of=cut)
        with scratch_views(
            engine.store,
            position=point.position,
            now=cut,
            occurred_by=cut,
            projections=["customer_profile", "timeline"],
        ) as db:
            got["channels"] = answers_channels(db, history.customers)
        assert got == expected
        assert got["spend"] and any(got["channels"].values())

    def test_scratch_views_at_the_head_equal_the_live_views(
        self, live: tuple[Engine, list[list[int]]]
    ) -> None:
        """The projections each CLI report replays are enough for it: at the head the
        scratch answer is the live one."""
        engine, _ = live
        with open_runner(engine) as runner:
            runner.catch_up()
            runner.fire_timers()
            expected = _reports(runner.db)
        for names, report in (
            (["orders"], "orders"),
            (["retention"], "retention"),
            (["satisfaction", "customer_profile"], "satisfaction"),
            (["service"], "service"),
            (["equipment"], "equipment"),
        ):
            with scratch_views(
                engine.store, position=engine.store.head(), now=NOW, projections=names
            ) as db:
                assert _reports(db, only=report) == {report: expected[report]}


def oracle_orders_as_of(tmp_path: Path, history: LateHistory, k: int, cut: datetime) -> Any:
    with open_engine(f"sqlite:///{tmp_path}/orders{k}.db", env={}, clock=FixedClock(cut)) as e:
        history.feed(e, lambda i, c: i < k and c[0] <= cut)
        with open_runner(e) as runner:
            runner.catch_up()
            r = orders_report(runner.db, now=cut, top=100)
    return (
        [[t.currency, t.orders, str(t.gross), str(t.net)] for t in r.totals],
        [[str(t.customer_id), str(t.net)] for t in r.top_customers],
    )


def _reports(db: ProjectionDB, only: str | None = None) -> dict[str, Any]:
    makers: dict[str, Callable[[], Any]] = {
        "orders": lambda: orders_report(db, now=NOW),
        "retention": lambda: retention_report(db, now=NOW),
        "satisfaction": lambda: satisfaction_report(db, now=NOW),
        "service": lambda: service_report(db, now=NOW),
        "equipment": lambda: equipment_report(db, now=NOW),
    }
    return {k: msgspec.to_builtins(f()) for k, f in makers.items() if only is None or k == only}


@pytest.mark.parametrize("store_url", ["sqlite"], indirect=True)
class TestCommandLine:
    def test_reports_and_customer_show_take_recorded_as_of(
        self,
        live: tuple[Engine, list[list[int]]],
        history: LateHistory,
        store_url: str,
        monkeypatch: pytest.MonkeyPatch,
        tmp_path: Path,
    ) -> None:
        from infra.cli import app

        _, positions = live
        k = len(history.recorded) // 2
        position = positions[k - 1][-1]
        env = {"CRM_STORE_URL": store_url, "CRM_NOW": NOW.isoformat(), "CRM_ENV": "development"}
        monkeypatch.delenv("CRM_MASTER_KEY", raising=False)
        cli = CliRunner()
        out = cli.invoke(
            app,
            [
                "orders",
                "report",
                "--format",
                "json",
                "--recorded-as-of",
                str(position),
                "--as-of",
                "2026-05-01",
            ],
            env=env,
        )
        assert out.exit_code == 0, out.output
        totals = json.loads(out.stdout.splitlines()[0])
        expected, _ = oracle_orders_as_of(
            tmp_path,
            history,
            k,
            datetime(2026, 5, 1, 23, 59, 59, tzinfo=UTC),
        )
        assert [[t["currency"], t["orders"], t["gross"], t["net"]] for t in totals] == expected
        customer = str(history.customers[0])
        shown = cli.invoke(
            app,
            ["customer", "show", customer, "--format", "json", "--recorded-as-of", str(position)],
            env=env,
        )
        assert shown.exit_code == 0, shown.output
        assert json.loads(shown.stdout.splitlines()[0])[0] == {
            "field": "customer_id",
            "value": customer,
        }
        bad = cli.invoke(app, ["orders", "report", "--recorded-as-of", "yesterday"], env=env)
        assert bad.exit_code == 2 and "--recorded-as-of" in bad.output
