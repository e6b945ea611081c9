"""Subscriptions: a customer pays a plan's price per month or year; plans change over time and
the stream keeps each plan's term (from, to) for revenue, retention and lifetime value."""
