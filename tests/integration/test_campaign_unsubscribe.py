"""An unsubscribe is a response and a withdrawn consent, in one transaction."""

from __future__ import annotations

from domain.customers.state import fold as fold_customer
from infra.engine import Engine
from tests.integration.test_campaigns import customer, day, define, do, engine, launch

__all__ = ["engine"]  # the fixture, on both backends


def consents(engine: Engine, cid: object) -> frozenset[tuple[str, str]]:
    events = engine.store.load(cid)  # type: ignore[arg-type]
    state = fold_customer(cid, [(e.version, e.occurred_at, e.payload) for e in events])  # type: ignore[arg-type]
    return state.consents


def test_an_unsubscribe_withdraws_the_channel_s_marketing_consent(engine: Engine) -> None:
    ada = customer(engine, "email", "sms")
    campaign = define(engine, "newsletter")
    assert launch(engine, campaign, [ada], at=10).sent == [ada]
    head = engine.store.head()
    do(
        engine,
        "campaign.record_response",
        campaign_id=campaign,
        customer_id=ada,
        kind="unsubscribed",
        occurred_at=day(11),
    )
    appended = engine.store.read(head)
    assert [e.type for e in appended] == [
        "campaign.response_recorded",
        "customer.consent_withdrawn",
    ]
    withdrawn = appended[1].payload
    assert (withdrawn.consent_channel, withdrawn.purpose) == ("email", "marketing")  # type: ignore[attr-defined]
    assert withdrawn.source == "campaign:newsletter"  # type: ignore[attr-defined]
    assert set(consents(engine, ada)) == {("sms", "marketing")}  # the other channel stays
    second = launch(engine, campaign, [ada], at=20)
    assert second.sent == [] and [x.reason for x in second.excluded] == ["no_consent"]
    head = engine.store.head()  # a second unsubscribe has no consent left to withdraw
    do(
        engine,
        "campaign.record_response",
        campaign_id=campaign,
        customer_id=ada,
        kind="unsubscribed",
        occurred_at=day(21),
    )
    assert [e.type for e in engine.store.read(head)] == ["campaign.response_recorded"]
