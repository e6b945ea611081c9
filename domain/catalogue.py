"""Imports every module that registers event types, so that EVENTS is complete."""

from domain.customers import events as customer_events
from domain.events import EVENTS

__all__ = ["EVENTS", "customer_events"]
