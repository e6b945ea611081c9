"""Reminders routed to one employee: derived from the other streams by rules (`rules`), and
completed or snoozed on a stream of their own per reminder (one stream per occurrence)."""
