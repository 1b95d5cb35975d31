"""URL routes of the changes app."""
from django.urls import include, path

urlpatterns = [
    path("api/v1/", include("changes.api")),
]
