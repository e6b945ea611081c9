"""A seeded, realistic demo history drawn from a documented latent model (docs/demo-model.md).

`population(config)` is the ground truth (who the customers are, their segment, traits, rates
and lifecycle); `history(config)` is what the CRM observes of it: `crm import` lines, commerce
included (the catalogue in `PRODUCTS`, placed in a config's time line by `Catalogue`) and the
service that follows it (equipment, tickets, surveys: `infra.history.service`). The
package only produces lines; it knows no store.
"""

from infra.history.catalogue import PRODUCTS, Catalogue, Product
from infra.history.generate import history
from infra.history.model import SEGMENTS, HistoryConfig, LatentCustomer, Segment, population

__all__ = [
    "PRODUCTS",
    "SEGMENTS",
    "Catalogue",
    "HistoryConfig",
    "LatentCustomer",
    "Product",
    "Segment",
    "history",
    "population",
]
