"""Admin of environments: specification, access matrix, deployment target, testing gates and health checks.
Every save goes through ``releases.environments``, which checks access and audits."""
from django import forms
from django.contrib import admin

from pmrelease.admin import AuditHistoryMixin, ServiceAdminMixin, save_formset_through
from pmrelease.roles import Capability

from .. import access, environments
from ..deploy import backends
from ..models import (
    DeploymentTarget,
    Environment,
    EnvironmentAccess,
    HealthCheck,
    RollbackTrigger,
    TestingGate,
)


class EnvironmentConfigInlineMixin:
    """Configuration rows of an environment: visible with it, editable with administrative access to it."""

    extra = 0

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


class EnvironmentAccessInline(EnvironmentConfigInlineMixin, admin.TabularInline):
    """The environment's row of the access matrix."""

    model = EnvironmentAccess


class DeploymentTargetForm(forms.ModelForm):
    def clean(self):
        cleaned = super().clean()
        for problem in backends.stored_config_problems(cleaned.get("backend"), cleaned.get("config")):
            self.add_error("config", problem)
        return cleaned


class DeploymentTargetInline(EnvironmentConfigInlineMixin, admin.StackedInline):
    model = DeploymentTarget
    form = DeploymentTargetForm
    fields = environments.TARGET_FIELDS


class TestingGateInline(EnvironmentConfigInlineMixin, admin.TabularInline):
    model = TestingGate
    fields = environments.GATE_FIELDS
    prepopulated_fields = {"slug": ["name"]}


class HealthCheckInline(EnvironmentConfigInlineMixin, admin.TabularInline):
    model = HealthCheck
    fields = environments.HEALTH_CHECK_FIELDS


class RollbackTriggerInline(EnvironmentConfigInlineMixin, admin.TabularInline):
    """The environment's default rollback triggers (a release may bring its own; a deployment copies them)."""

    model = RollbackTrigger
    fk_name = "environment"
    fields = environments.TRIGGER_FIELDS
    verbose_name_plural = "default rollback triggers"


# Inlines the apps above add to the environment's page (the monitoring app: where its metrics come from).
# Each is an InlineModelAdmin with ``save_through(request, environment, formset)``, saving through its own
# services, since this admin cannot know them.
EXTRA_INLINES = []


@admin.register(Environment)
class EnvironmentAdmin(ServiceAdminMixin, AuditHistoryMixin, admin.ModelAdmin):
    list_display = ["display_name", "name", "tier", "promotes_to", "attached_to", "attachment", "is_active"]
    list_filter = ["tier", "is_active"]
    search_fields = ["name", "display_name", "purpose"]
    inlines = [EnvironmentAccessInline, DeploymentTargetInline, TestingGateInline, HealthCheckInline,
               RollbackTriggerInline]
    fieldsets = [
        (None, {"fields": ["name", "display_name", "purpose", "tier", "position", "is_active"]}),
        ("Promotion path", {"fields": ["promotes_to", "attached_to", "attachment"]}),
        ("Specification", {"fields": ["infrastructure", "data_source", "data_retention", "data_backup"]}),
        ("Rollback triggers", {"fields": ["bake_minutes"]}),
    ]

    def get_queryset(self, request):
        return access.visible_environments(request.user).select_related("promotes_to", "attached_to")

    def get_inlines(self, request, obj):
        return [*super().get_inlines(request, obj), *EXTRA_INLINES]

    def get_list_display(self, request):
        """The "your access" column is built per request: the admin instance is shared by every thread of a
        worker, so it must not hold the request (one user would see another's access)."""
        @admin.display(description="your access")
        def my_access(obj):
            return access.access_level(request.user, obj).label

        columns = list(super().get_list_display(request))
        columns.insert(columns.index("is_active"), my_access)
        return columns

    def has_change_permission(self, request, obj=None):
        if not super().has_change_permission(request, obj):
            return False
        return obj is None or access.can(request.user, obj, Capability.CONFIGURE)

    def has_add_permission(self, request):
        return request.user.is_superuser

    def has_delete_permission(self, request, obj=None):
        return False

    def get_readonly_fields(self, request, obj=None):
        return ["name"] if obj else []

    def save_model(self, request, obj, form, change):
        if not change:
            data = {name: form.cleaned_data[name] for name in ["name", *environments.ENVIRONMENT_FIELDS]
                    if name in form.cleaned_data}
            obj.pk = environments.environment_create(data=data, by=request.user).pk
            obj._state.adding = False
            return
        data = {name: form.cleaned_data[name] for name in form.changed_data if name in environments.ENVIRONMENT_FIELDS}
        environments.environment_update(environment=Environment.objects.get(pk=obj.pk), data=data, by=request.user)

    def save_formset(self, request, form, formset, change):
        environment = Environment.objects.get(pk=form.instance.pk)
        by = request.user
        if formset.model is EnvironmentAccess:
            save_formset_through(
                formset, fields=["group", "level", "note"],
                save=lambda row, data: environments.environment_set_access(environment=environment, by=by, **data),
                delete=lambda row: environments.environment_set_access(
                    environment=environment, group=row.group, level=0, note="access removed", by=by))
        elif formset.model is DeploymentTarget:
            save_formset_through(
                formset, fields=environments.TARGET_FIELDS,
                save=lambda row, data: environments.target_save(environment=environment, data=data, by=by),
                delete=lambda row: environments.target_delete(target=row, by=by))
        elif formset.model is TestingGate:
            save_formset_through(
                formset, fields=environments.GATE_FIELDS,
                save=lambda row, data: environments.gate_save(environment=environment, data=data, by=by, gate=row),
                delete=lambda row: environments.gate_delete(gate=row, by=by))
        elif formset.model is HealthCheck:
            save_formset_through(
                formset, fields=environments.HEALTH_CHECK_FIELDS,
                save=lambda row, data: environments.health_check_save(environment=environment, data=data, by=by,
                                                                      check=row),
                delete=lambda row: environments.health_check_delete(check=row, by=by))
        elif formset.model is RollbackTrigger:
            save_formset_through(
                formset, fields=environments.TRIGGER_FIELDS,
                save=lambda row, data: environments.trigger_save(environment=environment, data=data, by=by,
                                                                 trigger=row),
                delete=lambda row: environments.trigger_delete(trigger=row, by=by))
        else:
            for inline in EXTRA_INLINES:
                if formset.model is inline.model:
                    inline.save_through(request, environment, formset)


@admin.register(TestingGate)
class TestingGateAdmin(ServiceAdminMixin, admin.ModelAdmin):
    list_display = ["name", "environment", "required", "timeout", "on_failure", "tests"]
    list_filter = ["environment", "required", "on_failure"]
    search_fields = ["name"]
    fields = ["environment", *environments.GATE_FIELDS]
    readonly_fields = ["environment"]

    def get_queryset(self, request):
        return super().get_queryset(request).filter(environment__in=access.visible_environments(request.user))

    def has_view_permission(self, request, obj=None):
        return request.user.has_perm("releases.view_environment")

    def has_change_permission(self, request, obj=None):
        return obj is not None and access.can(request.user, obj.environment, Capability.CONFIGURE)

    def has_add_permission(self, request):
        return False  # gates are added on their environment's page

    def has_delete_permission(self, request, obj=None):
        return self.has_change_permission(request, obj)

    def save_model(self, request, obj, form, change):
        data = {name: form.cleaned_data[name] for name in form.changed_data if name in environments.GATE_FIELDS}
        environments.gate_save(environment=obj.environment, data=data, by=request.user,
                               gate=TestingGate.objects.get(pk=obj.pk))

    def delete_model(self, request, obj):
        environments.gate_delete(gate=obj, by=request.user)

    def delete_queryset(self, request, queryset):
        for gate in queryset:
            environments.gate_delete(gate=gate, by=request.user)
