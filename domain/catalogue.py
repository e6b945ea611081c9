"""Imports every module that registers event types and commands, so that both are complete."""

from domain.customers import commands as customer_commands
from domain.customers import events as customer_events
from domain.events import EVENTS
from domain.interactions import commands as interaction_commands
from domain.interactions import events as interaction_events

__all__ = [
    "EVENTS",
    "customer_commands",
    "customer_events",
    "interaction_commands",
    "interaction_events",
]
