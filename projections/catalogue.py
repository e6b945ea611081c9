"""Every projection the projector runs, by name."""

from __future__ import annotations

from projections.audiences import Audiences
from projections.campaigns import CampaignsView
from projections.customer_profile import CustomerProfile
from projections.demand import Demand
from projections.equipment_view import EquipmentView
from projections.offers_view import OffersView
from projections.orders_view import OrdersView
from projections.pipeline_view import PipelineView
from projections.projection import Projection
from projections.reminders import Reminders
from projections.retention import Retention
from projections.satisfaction import Satisfaction
from projections.service_view import ServiceView
from projections.timeline import Timeline


def all_projections() -> list[Projection]:
    return [
        CustomerProfile(),
        Timeline(),
        PipelineView(),
        OrdersView(),
        OffersView(),
        Demand(),
        Retention(),
        Satisfaction(),
        ServiceView(),
        Reminders(),
        EquipmentView(),
        CampaignsView(),
        Audiences(),
    ]
