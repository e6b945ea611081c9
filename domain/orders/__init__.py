"""Orders: placing, invoicing, payments, shipping, delivery, cancellation and returns.

One stream per order. Overdue is not an event: it is computed from the invoice as time passes.
"""
