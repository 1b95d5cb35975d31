"""Admin for the audit trail (read-only, filterable, CSV export), and the pieces every app's admin uses: the
per-object history mixin, the status badge, and the mixin that turns a service's refusal into a message."""
from django.contrib import admin, messages
from django.http import HttpResponseRedirect, StreamingHttpResponse
from django.template.response import TemplateResponse
from django.urls import path
from django.utils.html import format_html
from rest_framework.authtoken.models import TokenProxy

from . import errors
from .exports import audit_csv_rows
from .models import ApiToken, AuditEvent

# Status colours shared by every admin (GitHub's palette: readable on white and in the dark theme).
STATUS_COLOURS = {
    "planned": "#555", "approved": "#1f6feb", "deploying": "#9a6700", "deployed": "#1a7f37", "failed": "#cf222e",
    "rolled_back": "#8250df", "succeeded": "#1a7f37", "running": "#9a6700", "rolling_back": "#bc4c00",
    "awaiting_approval": "#1f6feb", "paused": "#555", "pending": "#555", "cancelled": "#555",
}


def status_badge(obj, field="status", colours=None):
    """The object's status (its display label) in the status colour."""
    value = getattr(obj, field)
    label = getattr(obj, f"get_{field}_display", lambda: value)()
    return format_html('<strong style="color:{}">{}</strong>', (colours or STATUS_COLOURS).get(value, "#000"), label)


def error_message(request, exc):
    """Show a service's refusal (a DomainError) to the person, with its reasons; a step-up refusal links to the
    second-factor prompt, which comes back to the page the person acted from."""
    if getattr(exc, "code", "") == "step_up_required":
        messages.error(request, format_html('{} <a href="{}">Verify your second factor</a>, then try again.',
                                            exc.text(), _after_refusal(request, exc)))
        return
    messages.error(request, exc.text())


def _after_refusal(request, exc):
    """Back to the page, or to the second-factor prompt first when that is what the refusal asks for."""
    from urllib.parse import quote

    from django.conf import settings
    from django.utils.http import url_has_allowed_host_and_scheme

    if getattr(exc, "code", "") == "step_up_required":
        back = request.get_full_path()
        referer = request.headers.get("Referer", "")
        if request.method == "POST" and url_has_allowed_host_and_scheme(referer, {request.get_host()}):
            back = referer  # the page the button was on, not the action's own URL
        return f"{settings.STEP_UP_URL}?next={quote(back)}"
    return request.get_full_path()


class ServiceAdminMixin:
    """Admins whose saves go through services: a refusal the forms could not foresee (the state changed
    meanwhile, a permission rule) becomes an error message on the same page, and nothing is saved."""

    def changeform_view(self, request, object_id=None, form_url="", extra_context=None):
        try:
            return super().changeform_view(request, object_id, form_url, extra_context)
        except errors.DomainError as exc:
            error_message(request, exc)
            return HttpResponseRedirect(_after_refusal(request, exc))

    def delete_view(self, request, object_id, extra_context=None):
        try:
            return super().delete_view(request, object_id, extra_context)
        except errors.DomainError as exc:
            error_message(request, exc)
            return HttpResponseRedirect(request.get_full_path())


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


def save_formset_through(formset, *, save, delete, fields):
    """Save an admin inline formset through services instead of ``formset.save()``: ``save(instance, data)``
    for each new or changed row (``instance`` unsaved for a new one; ``data`` its cleaned ``fields``) and
    ``delete(instance)`` for each row marked for deletion. Keeps the formset's record of what changed, for
    the admin's change message."""
    formset.new_objects, formset.changed_objects, formset.deleted_objects = [], [], []
    for form in formset.initial_forms:
        if form in formset.deleted_forms:
            formset.deleted_objects.append(form.instance)
            delete(form.instance)
        elif form.has_changed():
            formset.changed_objects.append((save(form.instance, _cleaned(form, fields)), form.changed_data))
    for form in formset.extra_forms:
        if not form.has_changed() or (formset.can_delete and formset._should_delete_form(form)):
            continue
        formset.new_objects.append(save(None, _cleaned(form, fields)))


def _cleaned(form, fields):
    return {name: form.cleaned_data[name] for name in fields if name in form.cleaned_data}


# API tokens: only hashes are kept (pmrelease.tokens). DRF's own Token admin would issue clear-text keys that no
# longer authenticate: it is not offered.
admin.site.unregister(TokenProxy)


@admin.register(ApiToken)
class ApiTokenAdmin(admin.ModelAdmin):
    list_display = ["user", "name", "prefix", "created_at"]
    search_fields = ["user__username", "name", "prefix"]
    fields = readonly_fields = ["user", "name", "prefix", "created_at"]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False


from .identity import admin as _identity_admin  # noqa: E402,F401  (registers the identity admin)
