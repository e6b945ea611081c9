"""Application services: load state, decide, append, reply (built by the customers issue)."""
