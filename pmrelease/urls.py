"""The portal's routes: the admin, the ground floor's own (audit trail API, token, schema, health) and each
app's ``urls`` module (included by name: the ground floor imports no app)."""
from django.contrib import admin
from django.urls import include, path
from django.views.generic import RedirectView
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView
from rest_framework.routers import DefaultRouter

from . import views
from .api import ApiTokenViewSet, AuditEventViewSet, ObtainTokenView
from .delivery_api import ChannelViewSet, NotificationViewSet

router = DefaultRouter()
router.register("audit-events", AuditEventViewSet, basename="audit-event")
router.register("channels", ChannelViewSet, basename="channel")
router.register("notifications", NotificationViewSet, basename="notification")
router.register("tokens", ApiTokenViewSet, basename="api-token")

admin.site.site_header = "PenguinMails Release Portal"
admin.site.site_title = "Release Portal"
admin.site.index_title = "Releases, changes, flags and the status page"

urlpatterns = [
    path("", RedirectView.as_view(url="/admin/", permanent=False)),
    path("admin/", admin.site.urls),
    path("", include("pmrelease.identity.urls")),
    path("", include("releases.urls")),
    path("api/v1/", include(router.urls)),
    path("api/v1/auth/token/", ObtainTokenView.as_view(), name="api-token"),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="api-docs"),
    path("", include("changes.urls")),
    path("", include("flags.urls")),
    path("", include("monitoring.urls")),
    path("healthz", views.healthz, name="healthz"),
    path("readyz", views.readyz, name="readyz"),
    path("metrics", views.metrics, name="metrics"),
]

handler403 = "pmrelease.views.permission_denied"
