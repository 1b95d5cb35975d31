"""Alert rules in the admin: editing through the services (the condition's errors shown at their column), the
"test" button, the list of active alerts, and every state change (history)."""
from django import forms
from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html, format_html_join

from pmrelease import errors
from pmrelease.admin import AuditHistoryMixin, ServiceAdminMixin, status_badge
from pmrelease.roles import Capability
from releases import access

from . import promql, services
from .models import ActiveAlert, AlertEvent, AlertRule

STATE_COLOURS = {"inactive": "#1a7f37", "pending": "#9a6700", "firing": "#cf222e"}
CHANGE_COLOURS = {"firing": "#cf222e", "pending": "#9a6700", "resolved": "#1a7f37", "cleared": "#555"}


def _series_html(series):
    if not series:
        return "—"
    return format_html_join(
        "", '<div style="margin-bottom:2px"><code style="white-space:normal;overflow-wrap:anywhere">{}</code>{}</div>',
        (("{" + ", ".join(f'{k}="{v}"' for k, v in sorted(s["labels"].items())) + "}",
          "" if s["value"] is None else f" = {s['value']:g}") for s in series[:10]))


class AlertRuleForm(forms.ModelForm):
    class Meta:
        model = AlertRule
        fields = ["environment", *services.RULE_FIELDS]
        widgets = {"condition": forms.Textarea(attrs={"rows": 3, "cols": 100, "style": "font-family: monospace"})}

    def clean_condition(self):
        condition = promql.normalise(self.cleaned_data["condition"])
        where = promql.locate(" ".join(condition.split()))
        if where is not None:
            column, message = where
            flat = " ".join(condition.split())
            raise forms.ValidationError(format_html(
                '{} at column {}:<pre style="margin:4px 0">{}\n{}^</pre>', message, column + 1, flat, " " * column))
        return condition


class RuleFilter(admin.RelatedFieldListFilter):
    """The rules the user may see, each named with its environment fetched with it (the default choices ask each
    rule's environment in its own query)."""

    def field_choices(self, field, request, model_admin):
        rules = AlertRule.objects.filter(environment__in=access.visible_environments(request.user)) \
            .select_related("environment")
        ordering = self.field_admin_ordering(field, request, model_admin)
        return [(rule.pk, str(rule)) for rule in (rules.order_by(*ordering) if ordering else rules)]


class AlertEventInline(admin.TabularInline):
    model = AlertEvent
    extra = 0
    can_delete = False
    fields = readonly_fields = ["at", "change_shown", "from_state", "to_state", "notified", "detail"]
    verbose_name_plural = "history (state changes)"

    @admin.display(description="change")
    def change_shown(self, obj):
        return status_badge(obj, field="change", colours=CHANGE_COLOURS)

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def get_queryset(self, request):
        return super().get_queryset(request).order_by("-at", "-id")


@admin.register(AlertRule)
class AlertRuleAdmin(ServiceAdminMixin, AuditHistoryMixin, admin.ModelAdmin):
    form = AlertRuleForm
    list_display = ["name", "environment", "severity", "state_shown", "enabled", "cooldown", "for_seconds",
                    "last_evaluated_at", "last_error"]
    list_filter = ["environment", "severity", "state", "enabled"]
    search_fields = ["name", "description", "condition"]
    filter_horizontal = ["channels"]
    readonly_fields = ["state_shown", "state_since", "last_evaluated_at", "last_notified_at", "last_error",
                       "last_result_shown", "test"]
    inlines = [AlertEventInline]
    list_select_related = ["environment"]

    def get_fieldsets(self, request, obj=None):
        return [(None, {"fields": ["environment", *services.RULE_FIELDS]}),
                ("State", {"fields": self.readonly_fields})]

    def get_readonly_fields(self, request, obj=None):
        return [*self.readonly_fields, "environment"] if obj else self.readonly_fields

    @admin.display(description="state")
    def state_shown(self, obj):
        return status_badge(obj, field="state", colours=STATE_COLOURS)

    @admin.display(description="last result")
    def last_result_shown(self, obj):
        return _series_html(obj.last_result)

    @admin.display(description="test")
    def test(self, obj):
        if obj is None or obj.pk is None:
            return "save first"
        return format_html('<a class="button" href="{}">Test: run the condition now</a>',
                           reverse("admin:monitoring_alertrule_test", args=[obj.pk]))

    def get_queryset(self, request):
        return super().get_queryset(request).filter(environment__in=access.visible_environments(request.user))

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        if db_field.name == "environment":
            kwargs["queryset"] = access.visible_environments(request.user)
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

    def _configurable(self, request, obj):
        if obj is None:
            return request.user.has_perm("monitoring.add_alertrule") or request.user.is_superuser
        return access.can(request.user, obj.environment, Capability.CONFIGURE)

    def has_add_permission(self, request):
        return self._configurable(request, None)

    def has_change_permission(self, request, obj=None):
        return self._configurable(request, obj) if obj else super().has_change_permission(request)

    def has_delete_permission(self, request, obj=None):
        return self._configurable(request, obj) if obj else super().has_delete_permission(request)

    def save_model(self, request, obj, form, change):
        data = {name: form.cleaned_data[name] for name in services.RULE_FIELDS if name in form.cleaned_data}
        environment = obj.environment if change else form.cleaned_data["environment"]
        saved = services.rule_save(environment=environment, data=data, by=request.user,
                                   rule=obj if change else None)
        obj.pk = saved.pk
        obj.refresh_from_db()

    def save_related(self, request, form, formsets, change):
        for formset in formsets:  # channels are set by the service; the history inline is read-only
            formset.new_objects, formset.changed_objects, formset.deleted_objects = [], [], []

    def get_inlines(self, request, obj):
        return self.inlines if obj is not None else []

    def delete_model(self, request, obj):
        services.rule_delete(rule=obj, by=request.user)

    def get_urls(self):
        return [path("<int:rule_id>/test/", self.admin_site.admin_view(self.test_view),
                     name="monitoring_alertrule_test"), *super().get_urls()]

    def test_view(self, request, rule_id):
        rule = get_object_or_404(AlertRule.objects.select_related("environment"), pk=rule_id)
        try:
            result = services.rule_test(environment=rule.environment, condition=rule.condition, by=request.user)
        except errors.PermissionDenied as exc:
            raise PermissionDenied(exc.message) from exc
        except errors.ValidationFailed as exc:
            result = {"ok": False, "matched": False, "series": [], "error": exc.text()}
        context = {**self.admin_site.each_context(request), "opts": self.opts, "rule": rule, "result": result,
                   "series": _series_html(result["series"]), "title": f"Test of {rule.name} ({rule.environment})"}
        return TemplateResponse(request, "admin/monitoring/alertrule/test.html", context)


@admin.register(ActiveAlert)
class ActiveAlertAdmin(admin.ModelAdmin):
    """Firing and pending alerts, newest first, with what their conditions returned."""

    list_display = ["name_link", "environment", "severity", "state_shown", "state_since", "last_notified_at",
                    "last_result_shown"]
    list_filter = ["environment", "severity"]
    list_select_related = ["environment"]
    list_display_links = None

    @admin.display(description="rule")
    def name_link(self, obj):
        return format_html('<a href="{}">{}</a>', reverse("admin:monitoring_alertrule_change", args=[obj.pk]),
                           obj.name)

    @admin.display(description="state")
    def state_shown(self, obj):
        return status_badge(obj, field="state", colours=STATE_COLOURS)

    @admin.display(description="returned")
    def last_result_shown(self, obj):
        return _series_html(obj.last_result)

    def changelist_view(self, request, extra_context=None):
        extra_context = {"title": "Active alerts (firing or pending)", **(extra_context or {})}
        return super().changelist_view(request, extra_context)

    def get_queryset(self, request):
        return (super().get_queryset(request).filter(state__in=["firing", "pending"])
                .filter(environment__in=access.visible_environments(request.user)).order_by("-state_since"))

    def has_view_permission(self, request, obj=None):
        return request.user.has_perm("monitoring.view_alertrule") or request.user.is_superuser

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(AlertEvent)
class AlertEventAdmin(admin.ModelAdmin):
    """Every state change of every alert rule (the alert history)."""

    list_display = ["at", "rule_link", "environment", "change_shown", "notified", "detail_short"]
    list_filter = ["change", "notified", "rule__environment", ("rule", RuleFilter)]
    list_select_related = ["rule__environment"]
    date_hierarchy = "at"
    list_display_links = None

    def changelist_view(self, request, extra_context=None):
        extra_context = {"title": "Alert history (every state change)", **(extra_context or {})}
        return super().changelist_view(request, extra_context)

    @admin.display(description="rule")
    def rule_link(self, obj):
        return format_html('<a href="{}">{}</a>', reverse("admin:monitoring_alertrule_change", args=[obj.rule_id]),
                           obj.rule.name)

    @admin.display(description="environment")
    def environment(self, obj):
        return obj.rule.environment.name

    @admin.display(description="change")
    def change_shown(self, obj):
        return status_badge(obj, field="change", colours=CHANGE_COLOURS)

    @admin.display(description="detail")
    def detail_short(self, obj):
        text = obj.detail if len(obj.detail) < 200 else obj.detail[:200] + "…"
        return format_html('<div style="min-width:16em;max-width:24em;overflow-wrap:anywhere;white-space:pre-line">{}</div>', text)

    def get_queryset(self, request):
        return super().get_queryset(request).filter(rule__environment__in=access.visible_environments(request.user))

    def has_view_permission(self, request, obj=None):
        return request.user.has_perm("monitoring.view_alertrule") or request.user.is_superuser

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
