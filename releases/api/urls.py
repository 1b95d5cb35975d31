"""Routes of the releases API under /api/v1/."""
from rest_framework.routers import SimpleRouter

from .views import DeploymentViewSet, EnvironmentViewSet, ReleaseViewSet

router = SimpleRouter()
router.register("environments", EnvironmentViewSet, basename="environment")
router.register("releases", ReleaseViewSet, basename="release")
router.register("deployments", DeploymentViewSet, basename="deployment")

urlpatterns = router.urls
