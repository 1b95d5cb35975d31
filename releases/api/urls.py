"""Routes of the releases API under /api/v1/."""
from django.urls import re_path
from rest_framework.routers import SimpleRouter

from .configuration import EnvironmentConfigView
from .views import DeploymentViewSet, EnvironmentViewSet, ReleaseViewSet, SecretReferenceViewSet

router = SimpleRouter()
router.register("environments", EnvironmentViewSet, basename="environment")
router.register("releases", ReleaseViewSet, basename="release")
router.register("deployments", DeploymentViewSet, basename="deployment")
router.register("secret-references", SecretReferenceViewSet, basename="secret-reference")

urlpatterns = [
    # applications read their environment's configuration with an environment API key
    re_path(r"^environments/(?P<name>[-a-zA-Z0-9_]{1,40})/config/?$", EnvironmentConfigView.as_view(),
            name="environment-config"),
    *router.urls,
]
