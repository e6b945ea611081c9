"""Rebuild, as-of, ad-hoc questions, audit, seal and verify (built by the replay issue)."""
