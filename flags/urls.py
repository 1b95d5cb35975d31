"""URL routes of the flags app (OFREP, Unleash client and frontend APIs, flag management API)."""
from django.urls import include, path

from . import views

urlpatterns = [
    path("ofrep/v1/evaluate/flags/<str:key>", views.ofrep_flag, name="ofrep-flag"),
    path("ofrep/v1/evaluate/flags", views.ofrep_bulk, name="ofrep-bulk"),
    path("api/client/features", views.client_features, name="unleash-client-features"),
    path("api/client/register", views.client_register, name="unleash-client-register"),
    path("api/client/metrics", views.client_metrics, name="unleash-client-metrics"),
    path("api/frontend", views.frontend, name="unleash-frontend"),
    path("api/frontend/", views.frontend),
    path("api/frontend/client/register", views.frontend_register, name="unleash-frontend-register"),
    path("api/frontend/client/metrics", views.frontend_metrics, name="unleash-frontend-metrics"),
    path("api/v1/flags/", include("flags.api")),
]
