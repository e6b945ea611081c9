"""Every projection the projector runs, by name."""

from __future__ import annotations

from projections.customer_profile import CustomerProfile
from projections.demand import Demand
from projections.orders_view import OrdersView
from projections.pipeline_view import PipelineView
from projections.projection import Projection
from projections.retention import Retention
from projections.timeline import Timeline


def all_projections() -> list[Projection]:
    return [CustomerProfile(), Timeline(), PipelineView(), OrdersView(), Demand(), Retention()]
