"""Adapters and composition: stores, codec, crypto, NATS, logging, settings, CLI."""
