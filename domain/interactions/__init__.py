"""Interactions from every channel. Each interaction is a one-event stream of its own, keyed by
the customer it is about, so customers with long histories stay cheap to load."""
