"""Next best offers: the pure ranking of what to offer a customer, with its reasons, and the
offers presented, accepted and declined, one stream per offer.

Never offered: what the customer owns (durable goods bought and kept, equipment in service,
the plan running now), anything they returned or declined, and nothing through a channel
without the customer's consent for marketing. Consumables (coffee) and services are bought
again and again, so buying one does not make it owned.
"""
