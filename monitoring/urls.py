"""URL routes of the monitoring app (public status page, Statuspage v2 JSON, feed, subscriptions, operator API).

Everything under /status/ except the subscription flows is a published static file (see statuspage/publishing.py).
"""
from django.urls import include, path, re_path
from rest_framework.routers import SimpleRouter

from .alerting.api import AlertRuleViewSet
from .dora_views import DoraView
from .metrics.api import MetricsIngestView
from .reliability.api import SloViewSet
from .statuspage import api, views

router = SimpleRouter()
router.register("components", api.ComponentViewSet, basename="status-component")
router.register("component-groups", api.ComponentGroupViewSet, basename="status-component-group")
router.register("incidents", api.IncidentViewSet, basename="status-incident")
router.register("maintenances", api.MaintenanceViewSet, basename="status-maintenance")
router.register("incident-policies", api.IncidentPolicyViewSet, basename="status-incident-policy")
router.register("status-subscribers", api.SubscriberViewSet, basename="status-subscriber")
router.register("slos", SloViewSet, basename="slo")
router.register("alert-rules", AlertRuleViewSet, basename="alert-rule")

urlpatterns = [
    path("api/v1/metrics/", MetricsIngestView.as_view(), name="metrics-ingest"),
    path("api/v1/metrics/dora/", DoraView.as_view(), name="metrics-dora"),
    path("api/v1/", include(router.urls)),
    path("status/subscriptions/", views.subscribe, name="status-subscribe"),
    path("status/subscriptions/confirm/<str:token>/", views.confirm, name="status-confirm"),
    path("status/subscriptions/unsubscribe/<str:token>/", views.unsubscribe, name="status-unsubscribe"),
    path("status/", views.published, name="status-page"),
    path("status/feed.atom", views.published, {"path": "feed.atom"}, name="status-feed"),
    path("status/api/v2/summary.json", views.published, {"path": "api/v2/summary.json"}, name="status-summary"),
    re_path(r"^status/(?P<path>.+)$", views.published, name="status-file"),
]
