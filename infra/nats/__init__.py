"""NATS adapters: the command service, the relay to JetStream, queries and the change feed."""
