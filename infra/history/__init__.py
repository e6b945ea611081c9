"""A seeded, realistic demo history drawn from a documented latent model (docs/demo-model.md).

`population(config)` is the ground truth (who the customers are, their segment, traits, rates
and lifecycle); `history(config)` is what the CRM observes of it: `crm import` lines. The package
only produces lines; it knows no store.
"""

from infra.history.generate import history
from infra.history.model import SEGMENTS, HistoryConfig, LatentCustomer, Segment, population

__all__ = ["SEGMENTS", "HistoryConfig", "LatentCustomer", "Segment", "history", "population"]
