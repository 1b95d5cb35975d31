"""URL routes of the releases app."""
from django.urls import include, path

urlpatterns = [
    path("api/v1/", include("releases.api.urls")),
]
