"""The DORA page (server-rendered SVG charts, no script) and the service level objectives in the admin."""
from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.http import QueryDict
from django.template.response import TemplateResponse
from django.utils.html import format_html, format_html_join

from pmrelease import errors
from pmrelease.admin import ServiceAdminMixin
from pmrelease.roles import Capability
from releases import access

from .. import charts, dora_views
from . import selectors, services
from .models import DoraReport, ServiceLevelObjective


@admin.register(DoraReport)
class DoraReportAdmin(admin.ModelAdmin):
    """Its change list is the DORA page; nothing to add, change or delete."""

    def has_view_permission(self, request, obj=None):
        return request.user.is_active and request.user.is_staff and request.user.has_perm("releases.view_deployment")

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    def changelist_view(self, request, extra_context=None):
        if not self.has_view_permission(request):
            raise PermissionDenied("the DORA metrics need the releases.view_deployment permission")
        try:
            report = dora_views.page_context(request.user, request.GET)
        except errors.ValidationFailed as exc:
            report = {**dora_views.page_context(request.user, QueryDict()), "error": exc.message}
        context = {**self.admin_site.each_context(request), "opts": self.opts, "title": "DORA metrics", **report}
        return TemplateResponse(request, "admin/monitoring/dorareport/report.html", context)



def _hours(seconds):
    if seconds < 3600:
        return f"{seconds / 60:g} min"
    return f"{seconds / 3600:g} h" if seconds < 86400 * 2 else f"{seconds / 86400:g} d"


@admin.register(ServiceLevelObjective)
class ServiceLevelObjectiveAdmin(ServiceAdminMixin, admin.ModelAdmin):
    """SLOs: edited through monitoring.reliability.services; the list and the page show the budget left and
    the burn-rate alerts (computed when shown)."""

    list_display = ["name", "environment", "component", "sli", "objective_shown", "window_days", "sli_value",
                    "budget", "alerts_firing", "enabled"]
    list_filter = ["environment", "sli", "enabled"]
    search_fields = ["name"]
    fields = services.SLO_FIELDS + ["status_table"]
    readonly_fields = ["status_table"]

    def get_queryset(self, request):
        return selectors.visible_slos(request.user)

    def _status(self, obj):
        """The SLO's status: computed with its page (``get_changelist_instance``) and kept on the row, not on this
        ModelAdmin (one instance serves every request of a process, threads included)."""
        status = getattr(obj, "_slo_status", None)
        if status is None:
            status = obj._slo_status = selectors.slo_status(obj)
        return status

    def get_changelist_instance(self, request):
        """The page's SLO statuses computed together (not one SLO at a time as the columns ask)."""
        changelist = super().get_changelist_instance(request)
        statuses = selectors.slo_statuses(changelist.result_list)
        for obj in changelist.result_list:
            obj._slo_status = statuses.get(obj.pk)
        return changelist

    @admin.display(description="objective")
    def objective_shown(self, obj):
        return f"{obj.objective:g} %"

    @admin.display(description="SLI now")
    def sli_value(self, obj):
        status = self._status(obj)
        return "no events" if status.sli is None else f"{status.sli * 100:.3f} %"

    @admin.display(description="budget left")
    def budget(self, obj):
        status = self._status(obj)
        return "—" if status.budget_remaining is None else charts.percent(status.budget_remaining)

    @admin.display(description="burn-rate alerts firing")
    def alerts_firing(self, obj):
        firing = self._status(obj).firing
        return ", ".join(f"{a.alert.severity} ({_hours(a.alert.long.total_seconds())}/"
                         f"{_hours(a.alert.short.total_seconds())})" for a in firing) or "none"

    @admin.display(description="error budget and burn rates")
    def status_table(self, obj):
        if obj is None or obj.pk is None:
            return "save first"
        status = selectors.slo_status(obj)
        rows = format_html_join("", "<tr><td>{}</td><td>{} / {}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>", (
            (a.alert.severity, _hours(a.alert.long.total_seconds()), _hours(a.alert.short.total_seconds()),
             f"{a.threshold:g}", "—" if a.long_burn_rate is None else f"{a.long_burn_rate:.2f}",
             "—" if a.short_burn_rate is None else f"{a.short_burn_rate:.2f}", "FIRING" if a.firing else "ok")
            for a in status.alerts))
        return format_html(
            "<p>SLI over {} days: {}; error budget {}; left: {}.</p><table><thead><tr><th>alert</th>"
            "<th>long / short window</th><th>threshold</th><th>long burn rate</th><th>short burn rate</th>"
            "<th>state</th></tr></thead><tbody>{}</tbody></table>",
            obj.window_days, "no events" if status.sli is None else f"{status.sli * 100:.4f} %",
            f"{status.error_budget * 100:.4g} %",
            "—" if status.budget_remaining is None else charts.percent(status.budget_remaining), rows)

    def _may_configure(self, request, obj):
        if obj is None:
            return request.user.has_perm("monitoring.add_servicelevelobjective")
        return access.can(request.user, obj.environment, Capability.CONFIGURE)

    def has_change_permission(self, request, obj=None):
        return request.user.has_perm("monitoring.change_servicelevelobjective") and (
            obj is None or self._may_configure(request, obj))

    def has_delete_permission(self, request, obj=None):
        return request.user.has_perm("monitoring.delete_servicelevelobjective") and (
            obj is None or self._may_configure(request, obj))

    def save_model(self, request, obj, form, change):
        data = {name: form.cleaned_data[name] for name in services.SLO_FIELDS if name in form.cleaned_data}
        saved = services.slo_save(data=data, by=request.user, slo=ServiceLevelObjective.objects.get(pk=obj.pk)
                                  if change else None)
        obj.pk = saved.pk

    def delete_model(self, request, obj):
        services.slo_delete(slo=obj, by=request.user)

    def delete_queryset(self, request, queryset):
        for obj in queryset:
            services.slo_delete(slo=obj, by=request.user)
