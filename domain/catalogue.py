"""Imports every module that registers event types and commands, so that both are complete."""

from domain.audiences import events as audience_events  # noqa: F401  (registry events)
from domain.campaigns import decide as campaign_decide  # noqa: F401  (its commands and events)
from domain.customers import commands as customer_commands
from domain.customers import events as customer_events
from domain.equipment import commands as equipment_commands
from domain.equipment import events as equipment_events
from domain.events import EVENTS
from domain.interactions import commands as interaction_commands
from domain.interactions import events as interaction_events
from domain.offers import commands as offer_commands  # noqa: F401  (and its events)
from domain.orders import commands as order_commands
from domain.orders import events as order_events
from domain.pipeline import commands as pipeline_commands
from domain.pipeline import events as pipeline_events
from domain.products import commands as product_commands
from domain.products import events as product_events
from domain.reminders import decide as reminder_decide  # noqa: F401  (its commands and events)
from domain.subscriptions import commands as subscription_commands
from domain.subscriptions import events as subscription_events
from domain.surveys import commands as survey_commands
from domain.surveys import events as survey_events
from domain.tickets import commands as ticket_commands
from domain.tickets import events as ticket_events

__all__ = [
    "EVENTS",
    "customer_commands",
    "customer_events",
    "equipment_commands",
    "equipment_events",
    "interaction_commands",
    "interaction_events",
    "order_commands",
    "order_events",
    "pipeline_commands",
    "pipeline_events",
    "product_commands",
    "product_events",
    "subscription_commands",
    "subscription_events",
    "survey_commands",
    "survey_events",
    "ticket_commands",
    "ticket_events",
]
