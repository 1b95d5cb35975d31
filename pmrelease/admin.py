"""Admin for the audit trail (read-only, filterable, CSV export) and the per-object history mixin."""
from django.contrib import admin
from django.http import StreamingHttpResponse
from django.template.response import TemplateResponse
from django.urls import path

from .exports import audit_csv_rows
from .models import AuditEvent


@admin.register(AuditEvent)
class AuditEventAdmin(admin.ModelAdmin):
    list_display = ["id", "created_at", "actor_username", "action", "object_type", "object_repr", "reason_short"]
    list_filter = ["action", "object_type", "actor_username", ("created_at", admin.DateFieldListFilter)]
    search_fields = ["object_repr", "reason", "actor_username", "action", "object_id", "request_id"]
    date_hierarchy = "created_at"
    readonly_fields = [f.name for f in AuditEvent._meta.fields]
    actions = ["export_csv"]
    change_list_template = "admin/pmrelease/auditevent/change_list.html"

    @admin.display(description="reason")
    def reason_short(self, obj):
        return (obj.reason[:80] + "…") if len(obj.reason) > 80 else obj.reason

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    def get_urls(self):
        return [path("export/", self.admin_site.admin_view(self.export_view), name="pmrelease_auditevent_export"),
                *super().get_urls()]

    def _csv_response(self, queryset):
        response = StreamingHttpResponse(audit_csv_rows(queryset.order_by("id")), content_type="text/csv; charset=utf-8")
        response["Content-Disposition"] = 'attachment; filename="audit-trail.csv"'
        return response

    def export_view(self, request):
        """Export what the change list currently shows (its filters and search applied)."""
        if not self.has_view_permission(request):
            from django.core.exceptions import PermissionDenied

            raise PermissionDenied
        changelist = self.get_changelist_instance(request)
        return self._csv_response(changelist.get_queryset(request))

    @admin.action(description="Export selected events as CSV")
    def export_csv(self, request, queryset):
        return self._csv_response(queryset)


class AuditHistoryMixin:
    """Replace the admin's "History" page with the object's rows from the audit trail."""

    object_history_template = "admin/pmrelease/audit_history.html"

    def history_view(self, request, object_id, extra_context=None):
        obj = self.get_object(request, object_id)
        if obj is None or not self.has_view_or_change_permission(request, obj):
            return self._get_obj_does_not_exist_redirect(request, self.opts, object_id)
        context = {
            **self.admin_site.each_context(request),
            "title": f"Audit history: {obj}",
            "subtitle": None,
            "object": obj,
            "opts": self.opts,
            "app_label": self.opts.app_label,
            "events": AuditEvent.objects.for_object(obj).order_by("-id"),
            **(extra_context or {}),
        }
        request.current_app = self.admin_site.name
        return TemplateResponse(request, self.object_history_template, context)
