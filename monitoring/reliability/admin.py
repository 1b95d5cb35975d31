"""The DORA page (server-rendered SVG charts, no script) in the admin."""
from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.http import QueryDict
from django.template.response import TemplateResponse

from pmrelease import errors

from .. import dora_views
from .models import DoraReport


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

