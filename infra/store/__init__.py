"""The event store: eventsourcing's recorders with our columns, on PostgreSQL or SQLite."""
