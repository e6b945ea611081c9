"""The pure core: events, commands, value types, decide/evolve. No I/O, no clock."""
