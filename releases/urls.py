"""URL routes of the releases app."""
from django.urls import include, path

from .api import waits

urlpatterns = [
    # waiting for a deployment (async views: releases.api.waits); without ?wait= the DRF view answers
    path("api/v1/deployments/<int:pk>/", waits.deployment_detail, name="deployment-wait"),
    path("api/v1/deployments/<int:pk>/events/", waits.deployment_events, name="deployment-events"),
    path("api/v1/", include("releases.api.urls")),
]
