"""Review of issue 7: bugs found in the offers command and the reminders view, each shown by a
test first; on both backends."""

from __future__ import annotations

from uuid import UUID, uuid4

from infra.engine import Engine
from infra.projection_db import projection_db
from projections.reminders import ReminderRow, customer_reminder_rows
from tests.integration import test_offers as offers
from tests.integration.test_offers import buy, customer, do, ranked, refused

engine = offers.engine  # the fixtures of the offers tests: products defined, a shop
shop = offers.shop


def test_an_offer_to_a_survivor_excludes_what_its_merged_customer_owns(
    engine: Engine, shop: dict[str, UUID]
) -> None:
    """The view follows merges (a merged customer's orders count for its survivor); the
    command must too, or it presents what the customer owns."""
    dup = customer(engine, "Ada bis")
    buy(engine, dup, 35, "A-TAMP")
    do(engine, "customer.merge", survivor_id=shop["ada"], merged_id=dup)
    assert "A-TAMP" not in ranked(engine, shop["ada"])  # the view: owned by the survivor
    refused(
        engine,
        "already_owned",
        "offer.present",
        customer_id=shop["ada"],
        sku="A-TAMP",
        channel="email",
    )


def test_a_merged_customers_declined_offer_is_not_presented_again(
    engine: Engine, shop: dict[str, UUID]
) -> None:
    dup = customer(engine, "Ada ter", "email")
    offer = uuid4()
    do(engine, "offer.present", offer_id=offer, customer_id=dup, sku="A-CUPS", channel="email")
    do(engine, "offer.decline", offer_id=offer)
    do(engine, "customer.merge", survivor_id=shop["ada"], merged_id=dup)
    assert "A-CUPS" not in ranked(engine, shop["ada"])
    refused(
        engine,
        "declined_before",
        "offer.present",
        customer_id=shop["ada"],
        sku="A-CUPS",
        channel="email",
    )


def test_a_decline_reason_is_personal_and_leaves_no_trace_in_the_offers_view(
    engine: Engine, shop: dict[str, UUID]
) -> None:
    """Free text a customer gave is personal data (DESIGN): the view must not hold it."""
    secret = "call my wife Jane on 0612345678"
    offer = uuid4()
    do(
        engine,
        "offer.present",
        offer_id=offer,
        customer_id=shop["ada"],
        sku="A-CUPS",
        channel="email",
    )
    do(engine, "offer.decline", offer_id=offer, reason=secret)
    do(engine, "customer.forget", customer_id=shop["ada"])
    ranked(engine, shop["ada"])  # catch up every view
    db = projection_db(engine.store)
    try:
        rows = db.fetch(f"SELECT data FROM {db.dialect.qualify('offers_facts')}")
    finally:
        db.close()
    assert rows and not any("0612345678" in str(data) for (data,) in rows)
    assert all(e.payload.reason != secret for e in engine.store.load(offer)[1:])


def reminder_rows(engine: Engine, who: UUID) -> list[ReminderRow]:
    ranked(engine, who)  # catch up every view
    db = projection_db(engine.store)
    try:
        return customer_reminder_rows(db, who)
    finally:
        db.close()


def test_a_merged_away_customer_is_not_a_dormant_customer_to_win_back(
    engine: Engine, shop: dict[str, UUID]
) -> None:
    """Once merged, the duplicate lives on as its survivor (who may order every week): a
    win-back reminder for the duplicate's last order is wrong. Unmerged, it is due again."""
    dup = customer(engine, "Ada bis")
    buy(engine, dup, 35, "C-BEANS")
    dormant = [r for r in reminder_rows(engine, dup) if r.rule == "dormant_customer"]
    assert [r.status for r in dormant] == ["open"]
    do(engine, "customer.merge", survivor_id=shop["ada"], merged_id=dup)
    assert not [
        r for r in reminder_rows(engine, dup) if r.rule == "dormant_customer" and r.status == "open"
    ]
    do(engine, "customer.unmerge", survivor_id=shop["ada"], merged_id=dup)
    again = [r for r in reminder_rows(engine, dup) if r.rule == "dormant_customer"]
    assert [(r.status, r.key) for r in again] == [("open", dormant[0].key)]
