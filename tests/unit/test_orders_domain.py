"""decide/evolve of orders: placing, invoices, payments, fulfilment, returns, overdue (pure)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from uuid import uuid4

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from domain.events import EVENTS, DomainEvent
from domain.money import Money
from domain.orders import commands as cmd
from domain.orders import decide
from domain.orders import errors as err
from domain.orders import events as ev
from domain.orders.state import (
    OrderState,
    fold,
    is_overdue,
    line_net,
    net_total,
    outstanding,
    overdue_from,
)

T0 = datetime(2026, 5, 1, 9, tzinfo=UTC)
SKUS = frozenset({"tea", "cup", "pot"})


def eur(x: str) -> Money:
    return Money(amount=Decimal(x), currency="EUR")


def line(
    sku: str, quantity: int, price: str, discount: str = "0", cur: str = "EUR"
) -> ev.OrderLine:
    return ev.OrderLine(
        sku=sku,
        quantity=quantity,
        unit_price=Money(amount=Decimal(price), currency=cur),
        discount=Decimal(discount),
    )


def apply(state: OrderState, events: list[DomainEvent], at: datetime) -> OrderState:
    return fold(
        state.order_id, [(state.version + i, at, e) for i, e in enumerate(events, 1)], state
    )


def a_place(items: list[ev.OrderLine] | None = None, **kw: object) -> cmd.PlaceOrder:
    fields: dict[str, object] = {
        "customer_id": uuid4(),
        "items": items if items is not None else [line("tea", 2, "10.00", "0.1")],
        "payment_method": "card",
    }
    fields.update(kw)
    return cmd.PlaceOrder(**fields)  # type: ignore[arg-type]


def placed(items: list[ev.OrderLine] | None = None, **kw: object) -> OrderState:
    state = OrderState(order_id=uuid4())
    events = decide.place(state, a_place(items, **kw), known_skus=SKUS, customer_live=True, at=T0)
    return apply(state, events, T0)


def step(
    state: OrderState,
    fn: Callable[..., list[DomainEvent]],
    command: cmd.OrderCommand,
    hours: int = 1,
) -> OrderState:
    at = (state.last_occurred_at or T0) + timedelta(hours=hours)
    return apply(state, fn(state, command, at=at), at)


def shipped(state: OrderState) -> OrderState:
    return step(state, decide.ship, cmd.ShipOrder(order_id=state.order_id))


def invoiced(state: OrderState, due: date = date(2026, 5, 10), **kw: object) -> OrderState:
    c = cmd.IssueInvoice(order_id=state.order_id, number="INV-1", due_date=due, **kw)  # type: ignore[arg-type]
    return step(state, decide.issue_invoice, c)


def paying(state: OrderState, amount: str) -> OrderState:
    return step(state, decide.pay, cmd.PayOrder(order_id=state.order_id, amount=eur(amount)))


def returning(state: OrderState, *lines: tuple[str, int], **kw: object) -> OrderState:
    items = [ev.ReturnLine(sku=s, quantity=q) for s, q in lines]
    c = cmd.ReturnOrder(order_id=state.order_id, items=items, reason="broken", **kw)  # type: ignore[arg-type]
    return step(state, decide.return_items, c)


class TestPlace:
    def test_total_is_the_sum_of_discounted_lines_and_the_state_keeps_it_all(self) -> None:
        state = OrderState(order_id=uuid4())
        deal = uuid4()
        c = a_place(
            [line("tea", 2, "10.00", "0.1"), line("cup", 3, "4.99")],
            deal_id=deal,
            occasion=ev.Occasion(kind="birthday", for_person="Grace", date=date(2026, 6, 1)),
        )
        events = decide.place(state, c, known_skus=SKUS, customer_live=True, at=T0)
        assert events == [
            ev.OrderPlaced(
                customer_id=c.customer_id,
                items=c.items,
                total=eur("32.97"),
                payment_method="card",
                occasion="birthday",
                occasion_for="Grace",
                occasion_date=date(2026, 6, 1),
                deal_id=deal,
            )
        ]
        s = apply(state, events, T0)
        assert (s.status, s.customer_id, s.total, s.paid, s.refunded) == (
            "placed",
            c.customer_id,
            eur("32.97"),
            eur("0"),
            eur("0"),
        )
        assert (s.placed_at, s.last_occurred_at, s.version, s.deal_id) == (T0, T0, 1, deal)
        assert s.occasion == c.occasion and s.items == tuple(c.items)

    def test_the_occasions_person_and_date_are_personal(self) -> None:
        spec = EVENTS.get("order.placed")
        assert spec is not None and set(spec.personal) == {"occasion_for", "occasion_date"}

    def test_the_wire_form_decodes_with_decimal_amounts(self) -> None:
        raw = (
            b'{"customer_id": "6f1c2e8a-0b8e-4c1e-9a51-3f2b8c7d6e5f", "payment_method": "invoice",'
            b' "items": [{"sku": "tea", "quantity": 1,'
            b' "unit_price": {"amount": "19.99", "currency": "EUR"}, "discount": "0.25"}]}'
        )
        c = msgspec.json.decode(raw, type=cmd.PlaceOrder)
        assert c.items[0].discount == Decimal("0.25") and c.command_name() == "order.place"
        events = decide.place(
            OrderState(order_id=uuid4()), c, known_skus=SKUS, customer_live=True, at=T0
        )
        assert events[0].total == eur("14.99")  # type: ignore[attr-defined]

    def test_place_items_serves_a_won_deal_and_takes_a_mappings_keys(self) -> None:
        catalogue = {"pot": "active product", "tea": "active product"}
        deal, customer = uuid4(), uuid4()
        events = decide.place_items(
            OrderState(order_id=uuid4()),
            customer_id=customer,
            items=[line("pot", 1, "30")],
            payment_method="transfer",
            known_skus=catalogue.keys(),
            customer_live=True,
            at=T0,
            deal_id=deal,
        )
        assert isinstance(events[0], ev.OrderPlaced) and events[0].deal_id == deal

    def test_twice_is_an_error(self) -> None:
        with pytest.raises(err.OrderAlreadyPlaced):
            decide.place(placed(), a_place(), known_skus=SKUS, customer_live=True, at=T0)

    def test_the_customer_must_be_live(self) -> None:
        c = a_place()
        with pytest.raises(err.CustomerNotLive) as info:
            decide.place(
                OrderState(order_id=uuid4()), c, known_skus=SKUS, customer_live=False, at=T0
            )
        assert info.value.customer_id == c.customer_id and info.value.code == "customer_not_live"

    @pytest.mark.parametrize(
        ("items", "error"),
        [
            ([], err.EmptyOrder),
            ([line("tea", 0, "1")], err.InvalidQuantity),
            ([line("tea", -2, "1")], err.InvalidQuantity),
            ([line("tea", 1, "1", "-0.1")], err.InvalidDiscount),
            ([line("tea", 1, "1", "1")], err.InvalidDiscount),
            ([line("tea", 1, "1", "NaN")], err.InvalidDiscount),
            ([line("tea", 1, "-1")], err.InvalidAmount),
            ([line("tea", 1, "1"), line("cup", 1, "1", cur="USD")], err.MixedCurrencies),
            ([line("tea", 1, "1"), line("tea", 2, "1")], err.DuplicateSku),
            ([line("tea", 1, "1"), line("mug", 1, "1")], err.UnknownSku),
        ],
    )
    def test_bad_lines_are_named(self, items: list[ev.OrderLine], error: type[Exception]) -> None:
        with pytest.raises(error):
            decide.place(
                OrderState(order_id=uuid4()),
                a_place(items),
                known_skus=SKUS,
                customer_live=True,
                at=T0,
            )

    def test_unknown_sku_names_the_sku(self) -> None:
        with pytest.raises(err.UnknownSku) as info:
            placed([line("mug", 1, "1")])
        assert info.value.sku == "mug" and info.value.code == "unknown_sku"

    @pytest.mark.parametrize(
        ("method", "instalments"), [("instalments", None), ("instalments", 1), ("card", 3)]
    )
    def test_instalments_only_and_always_for_payment_by_instalments(
        self, method: str, instalments: int | None
    ) -> None:
        with pytest.raises(err.InvalidInstalments):
            placed(payment_method=method, instalments=instalments)

    def test_instalments_are_kept(self) -> None:
        s = placed(payment_method="instalments", instalments=6)
        assert (s.payment_method, s.instalments) == ("instalments", 6)


class TestInvoice:
    def test_amount_defaults_to_the_total(self) -> None:
        s = invoiced(placed())
        assert s.invoice is not None
        assert (s.invoice.number, s.invoice.amount, s.invoice.due_date) == (
            "INV-1",
            eur("18.00"),
            date(2026, 5, 10),
        )
        assert s.invoice.issued_at == T0 + timedelta(hours=1)

    def test_an_explicit_amount_is_what_is_due(self) -> None:
        s = invoiced(placed(), amount=eur("20.00"))
        assert outstanding(s) == eur("20.00")

    def test_only_once(self) -> None:
        with pytest.raises(err.InvoiceAlreadyIssued) as info:
            invoiced(invoiced(placed()))
        assert info.value.number == "INV-1"

    @pytest.mark.parametrize(
        ("amount", "error"),
        [
            (Money(amount=Decimal(5), currency="USD"), err.MixedCurrencies),
            (eur("0"), err.InvalidAmount),
        ],
    )
    def test_bad_amounts(self, amount: Money, error: type[Exception]) -> None:
        with pytest.raises(error):
            invoiced(placed(), amount=amount)

    def test_not_below_what_was_paid(self) -> None:
        with pytest.raises(err.InvalidAmount):
            invoiced(paying(placed(), "10.00"), amount=eur("10.00"))


class TestPayments:
    def test_partial_payments_until_paid(self) -> None:
        s = paying(placed(), "5.00")
        assert (s.paid, outstanding(s), s.fully_paid) == (eur("5.00"), eur("13.00"), False)
        s = paying(s, "8.00")
        at = s.last_occurred_at + timedelta(hours=1)  # type: ignore[operator]
        events = decide.pay(
            s, cmd.PayOrder(order_id=s.order_id, amount=eur("5"), method="cash"), at=at
        )
        assert events == [
            ev.PaymentReceived(amount=eur("5"), method="cash"),
            ev.OrderPaid(amount=eur("18.00")),
        ]
        s = apply(s, events, at)
        assert (s.paid, s.paid_at, s.fully_paid, outstanding(s)) == (
            eur("18.00"),
            at,
            True,
            eur("0"),
        )

    def test_the_invoice_amount_is_what_must_be_paid(self) -> None:
        s = paying(invoiced(placed(), amount=eur("20.00")), "18.00")
        assert not s.fully_paid
        assert paying(s, "2.00").fully_paid

    def test_overpaying_and_paying_a_paid_order(self) -> None:
        with pytest.raises(err.AlreadyPaid) as info:
            paying(paying(placed(), "10.00"), "8.01")
        assert info.value.outstanding == eur("8.00")
        with pytest.raises(err.AlreadyPaid):
            paying(paying(placed(), "18"), "0.01")

    @pytest.mark.parametrize(
        ("amount", "error"), [("0", err.InvalidAmount), ("-1", err.InvalidAmount)]
    )
    def test_a_payment_is_positive(self, amount: str, error: type[Exception]) -> None:
        with pytest.raises(error):
            paying(placed(), amount)

    def test_in_the_orders_currency(self) -> None:
        s = placed()
        with pytest.raises(err.MixedCurrencies):
            decide.pay(
                s,
                cmd.PayOrder(order_id=s.order_id, amount=Money(amount=Decimal(1), currency="USD")),
                at=T0,
            )


class TestFulfilment:
    def test_ship_then_deliver(self) -> None:
        s = shipped(placed())
        assert (s.status, s.shipped_at) == ("shipped", T0 + timedelta(hours=1))
        assert decide.ship(s, cmd.ShipOrder(order_id=s.order_id), at=T0 + timedelta(hours=2)) == []
        s = step(s, decide.deliver, cmd.DeliverOrder(order_id=s.order_id))
        assert (s.status, s.delivered_at) == ("delivered", T0 + timedelta(hours=2))
        assert (
            decide.deliver(s, cmd.DeliverOrder(order_id=s.order_id), at=T0 + timedelta(hours=3))
            == []
        )

    def test_shipped_events_carry_the_tracking(self) -> None:
        s = placed()
        assert decide.ship(s, cmd.ShipOrder(order_id=s.order_id, tracking="Z1"), at=T0) == [
            ev.OrderShipped(tracking="Z1")
        ]

    def test_no_delivery_before_shipping(self) -> None:
        s = placed()
        with pytest.raises(err.NotShippedYet):
            decide.deliver(s, cmd.DeliverOrder(order_id=s.order_id), at=T0)

    def test_nothing_ships_or_cancels_after_delivery(self) -> None:
        s = step(shipped(placed()), decide.deliver, cmd.DeliverOrder(order_id=uuid4()))
        with pytest.raises(err.AlreadyDelivered):
            decide.ship(s, cmd.ShipOrder(order_id=s.order_id), at=T0 + timedelta(days=1))
        with pytest.raises(err.AlreadyDelivered):
            decide.cancel(
                s, cmd.CancelOrder(order_id=s.order_id, reason="late"), at=T0 + timedelta(days=1)
            )

    def test_cancel_before_delivery_once(self) -> None:
        s = step(shipped(placed()), decide.cancel, cmd.CancelOrder(order_id=uuid4(), reason="late"))
        assert (s.status, s.cancelled_at) == ("cancelled", T0 + timedelta(hours=2))
        again = cmd.CancelOrder(order_id=s.order_id, reason="late")
        assert decide.cancel(s, again, at=T0 + timedelta(days=1)) == []

    @pytest.mark.parametrize(
        "act",
        [
            invoiced,
            lambda s: paying(s, "1"),
            shipped,
            lambda s: step(s, decide.deliver, cmd.DeliverOrder(order_id=s.order_id)),
            lambda s: returning(s, ("tea", 1)),
        ],
        ids=["invoice", "pay", "ship", "deliver", "return"],
    )
    def test_a_cancelled_order_takes_nothing_more(
        self, act: Callable[[OrderState], OrderState]
    ) -> None:
        s = step(placed(), decide.cancel, cmd.CancelOrder(order_id=uuid4(), reason="changed mind"))
        with pytest.raises(err.OrderCancelled):
            act(s)


ACTS: list[Callable[[OrderState, datetime], list[DomainEvent]]] = [
    lambda s, at: decide.issue_invoice(
        s, cmd.IssueInvoice(order_id=s.order_id, number="I", due_date=date(2026, 6, 1)), at=at
    ),
    lambda s, at: decide.pay(s, cmd.PayOrder(order_id=s.order_id, amount=eur("1")), at=at),
    lambda s, at: decide.ship(s, cmd.ShipOrder(order_id=s.order_id), at=at),
    lambda s, at: decide.cancel(s, cmd.CancelOrder(order_id=s.order_id, reason="r"), at=at),
    lambda s, at: decide.deliver(s, cmd.DeliverOrder(order_id=s.order_id), at=at),
    lambda s, at: decide.return_items(
        s,
        cmd.ReturnOrder(
            order_id=s.order_id, items=[ev.ReturnLine(sku="tea", quantity=1)], reason="r"
        ),
        at=at,
    ),
]
ACT_IDS = ["invoice", "pay", "ship", "cancel", "deliver", "return"]


class TestStreamRules:
    @pytest.mark.parametrize("act", ACTS, ids=ACT_IDS)
    def test_an_order_not_placed_is_not_found(self, act: Callable[..., list[DomainEvent]]) -> None:
        with pytest.raises(err.OrderNotFound):
            act(OrderState(order_id=uuid4()), T0)

    @pytest.mark.parametrize("act", ACTS, ids=ACT_IDS)
    def test_an_event_before_the_last_is_refused(
        self, act: Callable[..., list[DomainEvent]]
    ) -> None:
        s = shipped(placed())
        with pytest.raises(err.EventBeforeLast) as info:
            act(s, s.last_occurred_at - timedelta(seconds=1))  # type: ignore[operator]
        assert info.value.last == s.last_occurred_at and info.value.code == "event_before_last"
        act(s, s.last_occurred_at)  # the same instant is not before


class TestReturns:
    def test_in_several_steps_refunding_the_discounted_unit_price(self) -> None:
        s = shipped(placed([line("tea", 3, "9.99", "0.15"), line("cup", 2, "5.00")]))
        assert s.total == eur("35.47")  # 25.4745 -> 25.47, plus 10.00
        s = returning(s, ("tea", 1))
        assert (s.returned, s.refunded) == ({"tea": 1}, eur("8.49"))
        s = returning(s, ("tea", 1), ("cup", 2))
        assert (s.returned, s.refunded) == ({"tea": 2, "cup": 2}, eur("26.98"))
        s = returning(s, ("tea", 1))
        assert s.refunded == s.total and net_total(s) == eur("0")

    def test_the_refunds_of_a_line_add_up_to_its_net_however_split(self) -> None:
        item = line("tea", 2, "2.03", "0.5")  # 1.015 a unit
        s = shipped(placed([item]))
        assert line_net(item) == eur("2.03") == s.total
        s = returning(s, ("tea", 1))
        assert s.refunded == eur("1.02")
        s = returning(s, ("tea", 1))
        assert s.refunded == eur("2.03") and net_total(s) == eur("0")

    def test_the_event_names_items_reason_and_refund(self) -> None:
        s = step(shipped(placed()), decide.deliver, cmd.DeliverOrder(order_id=uuid4()))
        c = cmd.ReturnOrder(
            order_id=s.order_id,
            items=[ev.ReturnLine(sku="tea", quantity=1), ev.ReturnLine(sku="tea", quantity=1)],
            reason="wrong colour",
        )
        assert decide.return_items(s, c, at=T0 + timedelta(days=2)) == [
            ev.OrderReturned(
                items=[ev.ReturnLine(sku="tea", quantity=2)],
                reason="wrong colour",
                refund=eur("18.00"),
            )
        ]

    def test_not_more_than_bought_minus_returned(self) -> None:
        s = returning(shipped(placed()), ("tea", 1))
        with pytest.raises(err.ReturnExceedsPurchase) as info:
            returning(s, ("tea", 2))
        assert (info.value.sku, info.value.bought, info.value.returned, info.value.asked) == (
            "tea",
            2,
            1,
            2,
        )
        with pytest.raises(err.ReturnExceedsPurchase) as info:
            returning(s, ("cup", 1))
        assert info.value.bought == 0

    def test_only_after_shipping(self) -> None:
        with pytest.raises(err.NotShippedYet):
            returning(placed(), ("tea", 1))

    def test_bad_return_lines(self) -> None:
        s = shipped(placed())
        with pytest.raises(err.EmptyOrder):
            returning(s)
        with pytest.raises(err.InvalidQuantity):
            returning(s, ("tea", 0))

    def test_a_given_refund_is_kept_within_what_is_left(self) -> None:
        s = returning(shipped(placed()), ("tea", 1), refund=eur("5.00"))
        assert s.refunded == eur("5.00") and net_total(s) == eur("13.00")
        with pytest.raises(err.InvalidAmount):
            returning(s, ("tea", 1), refund=eur("13.01"))
        with pytest.raises(err.InvalidAmount):
            returning(s, ("tea", 1), refund=eur("-1"))
        with pytest.raises(err.MixedCurrencies):
            returning(s, ("tea", 1), refund=Money(amount=Decimal(1), currency="USD"))

    @settings(max_examples=60, deadline=None)
    @given(
        lines=st.lists(
            st.tuples(
                st.integers(1, 5),
                st.integers(0, 10_000),
                st.sampled_from(["0", "0.1", "0.15", "0.333", "0.5", "0.99"]),
            ),
            min_size=1,
            max_size=3,
        ),
        asks=st.lists(st.tuples(st.integers(0, 2), st.integers(1, 4)), max_size=12),
    )
    def test_random_returns_never_exceed_purchases_nor_make_net_negative(
        self, lines: list[tuple[int, int, str]], asks: list[tuple[int, int]]
    ) -> None:
        skus = ["tea", "cup", "pot"][: len(lines)]
        items = [
            line(sku, q, f"{cents / 100:.2f}", d)
            for sku, (q, cents, d) in zip(skus, lines, strict=True)
        ]
        s = shipped(placed(items))
        for index, quantity in asks:
            sku = ["tea", "cup", "pot"][index]
            try:
                s = returning(s, (sku, quantity))
            except err.ReturnExceedsPurchase as e:
                assert e.returned + e.asked > e.bought
            assert net_total(s) == s.total - s.refunded and eur("0") <= net_total(s)
            for item in items:
                assert s.returned.get(item.sku, 0) <= item.quantity
        if all(s.returned.get(item.sku, 0) == item.quantity for item in items):
            assert net_total(s) == eur("0")


class TestOverdue:
    def test_an_unpaid_invoice_turns_overdue_the_day_after_it_is_due(self) -> None:
        s = invoiced(placed(), due=date(2026, 5, 10))
        assert overdue_from(s) == datetime(2026, 5, 11, tzinfo=UTC)
        assert not is_overdue(s, datetime(2026, 5, 10, 23, 59, tzinfo=UTC))
        assert is_overdue(s, datetime(2026, 5, 11, tzinfo=UTC))
        assert is_overdue(s, datetime(2026, 5, 11, 0, 30))  # naive is UTC

    def test_partly_paid_is_still_overdue_paid_or_cancelled_is_not(self) -> None:
        later = datetime(2026, 6, 1, tzinfo=UTC)
        s = paying(invoiced(placed()), "10.00")
        assert is_overdue(s, later)
        assert not is_overdue(paying(s, "8.00"), later)
        cancelled = step(s, decide.cancel, cmd.CancelOrder(order_id=s.order_id, reason="r"))
        assert not is_overdue(cancelled, later) and overdue_from(cancelled) is None

    def test_no_invoice_no_overdue(self) -> None:
        assert not is_overdue(placed(), datetime(2030, 1, 1, tzinfo=UTC))


def test_evolve_ignores_events_of_other_streams() -> None:
    from domain.customers.events import StageChanged
    from domain.orders.state import evolve

    s = placed()
    assert evolve(s, StageChanged(stage="customer", previous="lead"), T0) is s
