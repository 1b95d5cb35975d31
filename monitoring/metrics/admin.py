"""The metrics provider on the environment's page (an inline added to the releases app's environment admin),
and the page its "test query" button opens."""
from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html

from pmrelease import errors
from pmrelease.admin import save_formset_through
from pmrelease.roles import Capability
from releases import access
from releases.admin.environments import EXTRA_INLINES
from releases.models import Environment

from . import services
from .models import MetricsConfig


class MetricsConfigInline(admin.StackedInline):
    model = MetricsConfig
    max_num = 1
    extra = 0
    fields = [*services.CONFIG_FIELDS, "test"]
    readonly_fields = ["test"]
    verbose_name = "metrics provider"
    verbose_name_plural = "metrics provider (none: the builtin store applications push to)"

    @admin.display(description="test")
    def test(self, obj):
        if obj is None or obj.environment_id is None:
            return "save first"
        return format_html('<a class="button" href="{}">Test query: each named metric once</a>',
                           reverse("admin:monitoring_metricsconfig_test", args=[obj.environment_id]))

    def has_view_permission(self, request, obj=None):
        return request.user.has_perm("releases.view_environment")

    def _configurable(self, request, obj):
        return obj is not None and access.can(request.user, obj, Capability.CONFIGURE)

    def has_add_permission(self, request, obj=None):
        return self._configurable(request, obj)

    def has_change_permission(self, request, obj=None):
        return self._configurable(request, obj)

    def has_delete_permission(self, request, obj=None):
        return self._configurable(request, obj)

    @staticmethod
    def save_through(request, environment, formset):
        save_formset_through(
            formset, fields=services.CONFIG_FIELDS,
            save=lambda row, data: services.config_save(environment=environment, data=data, by=request.user),
            delete=lambda row: services.config_reset(environment=environment, by=request.user))


EXTRA_INLINES.append(MetricsConfigInline)


@admin.register(MetricsConfig)
class MetricsConfigAdmin(admin.ModelAdmin):
    """The list of environments' providers (edited on each environment's page), and the test-query page."""

    list_display = ["environment", "kind", "url", "app", "rate_window"]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    def has_view_permission(self, request, obj=None):
        return request.user.has_perm("releases.view_environment")

    def get_queryset(self, request):
        return super().get_queryset(request).filter(environment__in=access.visible_environments(request.user))

    def get_urls(self):
        return [path("test/<int:environment_id>/", self.admin_site.admin_view(self.test_view),
                     name="monitoring_metricsconfig_test"), *super().get_urls()]

    def test_view(self, request, environment_id):
        environment = get_object_or_404(Environment, pk=environment_id)
        try:
            rows = services.test_queries(environment=environment, by=request.user)
        except errors.PermissionDenied as exc:
            raise PermissionDenied(exc.message) from exc
        provider = services.provider_for(environment)
        context = {**self.admin_site.each_context(request), "opts": self.opts, "environment": environment,
                   "title": f"Metrics of {environment.name}: test query", "rows": rows, "provider": provider}
        return TemplateResponse(request, "admin/monitoring/metricsconfig/test.html", context)
