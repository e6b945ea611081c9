"""Read models, one module each, and the runner that feeds them (built by the projections issue)."""
