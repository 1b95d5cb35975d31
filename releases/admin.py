"""Admin for approvers, release managers and operations: environments and releases with their plans."""
import datetime as dt
import json

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import HttpResponse, HttpResponseNotAllowed, HttpResponseRedirect, JsonResponse
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html

from pmrelease import audit, errors
from pmrelease.admin import AuditHistoryMixin
from pmrelease.roles import Capability

from . import access, services
from . import deployments as deployment_services
from .models import (
    CommunicationPlan,
    Deployment,
    DeploymentStrategy,
    DeploymentTarget,
    Environment,
    EnvironmentAccess,
    HealthCheck,
    Prerequisite,
    Release,
    ReleaseApproval,
    ReleaseChange,
    ReleaseStatus,
    RiskAssessment,
    RollbackPlan,
    RollbackStep,
    RollbackStrategy,
    TestingGate,
    TestingRequirement,
)


# --- environments ------------------------------------------------------------------------------------
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


@admin.register(Environment)
class EnvironmentAdmin(AuditHistoryMixin, admin.ModelAdmin):
    list_display = ["display_name", "name", "tier", "promotes_to", "attached_to", "attachment", "my_access",
                    "is_active"]
    list_filter = ["tier", "is_active"]
    search_fields = ["name", "display_name", "purpose"]
    inlines = [EnvironmentAccessInline]
    fieldsets = [
        (None, {"fields": ["name", "display_name", "purpose", "tier", "position", "is_active"]}),
        ("Promotion path", {"fields": ["promotes_to", "attached_to", "attachment"]}),
        ("Specification", {"fields": ["infrastructure", "data_source", "data_retention", "data_backup"]}),
    ]

    def get_queryset(self, request):
        return access.visible_environments(request.user).select_related("promotes_to", "attached_to")

    @admin.display(description="your access")
    def my_access(self, obj):
        return access.access_level(self._request.user, obj).label

    def changelist_view(self, request, extra_context=None):
        self._request = request
        return super().changelist_view(request, extra_context)

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
            data = {name: form.cleaned_data[name] for name in ["name", *services.ENVIRONMENT_FIELDS]
                    if name in form.cleaned_data}
            try:
                obj.pk = services.environment_create(data=data, by=request.user).pk
            except errors.DomainError as exc:
                raise PermissionDenied(exc.message) from exc
            return
        data = {name: form.cleaned_data[name] for name in form.changed_data if name in services.ENVIRONMENT_FIELDS}
        original = Environment.objects.get(pk=obj.pk)
        try:
            services.environment_update(environment=original, data=data, by=request.user)
        except errors.DomainError as exc:
            raise PermissionDenied(exc.message) from exc

    def save_formset(self, request, form, formset, change):
        if formset.model is not EnvironmentAccess:
            before = {obj.pk: audit.snapshot(obj) for obj in formset.get_queryset()}
            saved = formset.save()
            for obj in saved:
                audit.record(action=f"environment.{formset.model._meta.model_name}", obj=form.instance,
                             by=request.user, before=before.get(obj.pk), after=audit.snapshot(obj))
            for obj in formset.deleted_objects:
                audit.record(action=f"environment.{formset.model._meta.model_name}.delete", obj=form.instance,
                             by=request.user, before=before.get(obj.pk))
            return
        for row in formset.save(commit=False):
            services.environment_set_access(environment=row.environment, group=row.group, level=row.level,
                                            note=row.note, by=request.user)
        for row in formset.deleted_objects:
            services.environment_set_access(environment=row.environment, group=row.group, level=0,
                                            note="access removed", by=request.user)


# --- releases ----------------------------------------------------------------------------------------
class PlanInlineMixin:
    """Plan rows follow the release's permissions and are editable only while it is planned."""

    extra = 0

    def _editable(self, request, obj):
        if obj is None:
            return request.user.has_perm("releases.add_release")
        return obj.status == ReleaseStatus.PLANNED and request.user.has_perm("releases.change_release")

    def has_view_permission(self, request, obj=None):
        return request.user.has_perm("releases.view_release") or request.user.has_perm("releases.change_release")

    def has_add_permission(self, request, obj=None):
        return self._editable(request, obj)

    def has_change_permission(self, request, obj=None):
        return self._editable(request, obj)

    def has_delete_permission(self, request, obj=None):
        return self._editable(request, obj)


class ReleaseChangeInline(PlanInlineMixin, admin.TabularInline):
    model = ReleaseChange
    fields = ["kind", "summary", "reference", "position"]


class PrerequisiteInline(PlanInlineMixin, admin.TabularInline):
    model = Prerequisite


class RiskAssessmentInline(PlanInlineMixin, admin.StackedInline):
    model = RiskAssessment
    readonly_fields = ["level"]
    fields = ["impact", "likelihood", "level", "mitigation", "contingency"]


class RollbackPlanInline(PlanInlineMixin, admin.StackedInline):
    model = RollbackPlan


class RollbackStrategyInline(PlanInlineMixin, admin.TabularInline):
    model = RollbackStrategy


class RollbackStepInline(PlanInlineMixin, admin.TabularInline):
    model = RollbackStep


class CommunicationPlanInline(PlanInlineMixin, admin.StackedInline):
    model = CommunicationPlan
    classes = ["collapse"]


class TestingRequirementInline(PlanInlineMixin, admin.TabularInline):
    model = TestingRequirement


class ApprovalInline(admin.TabularInline):
    model = ReleaseApproval
    extra = 0
    fields = ["approver", "round", "decision", "comment", "created_at"]
    readonly_fields = fields
    verbose_name_plural = "approval votes"

    def has_view_permission(self, request, obj=None):
        return request.user.has_perm("releases.view_release")

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


class ReleaseAdminForm(forms.ModelForm):
    version = forms.CharField(max_length=64, required=False,
                              help_text="Semantic version. Leave empty to take the proposed next version.")

    class Meta:
        model = Release
        fields = "__all__"

    def clean(self):
        cleaned = super().clean()
        release_type = cleaned.get("type")
        version = cleaned.get("version")
        if release_type and not version:
            cleaned["version"] = services.propose_version(release_type)
        if release_type and cleaned.get("version"):
            try:
                services.check_version(cleaned["version"], release_type, exclude_pk=self.instance.pk)
            except errors.ValidationFailed as exc:
                for field, messages_ in exc.field_errors.items():
                    self.add_error(field, messages_)
        return cleaned


class AwaitingMyApprovalFilter(admin.SimpleListFilter):
    title = "approval"
    parameter_name = "awaiting"

    def lookups(self, request, model_admin):
        return [("me", "Awaiting my approval")]

    def queryset(self, request, queryset):
        if self.value() == "me":
            return queryset.filter(pk__in=[r.pk for r in services.awaiting_approval(request.user)])
        return queryset


@admin.register(Release)
class ReleaseAdmin(AuditHistoryMixin, admin.ModelAdmin):
    form = ReleaseAdminForm
    change_form_template = "admin/releases/release/change_form.html"
    change_list_template = "admin/releases/release/change_list.html"
    list_display = ["version", "title", "type", "status_badge", "target_environments", "scheduled_for",
                    "approvals_progress", "created_by"]
    list_filter = [AwaitingMyApprovalFilter, "status", "type", "environments", "risk_assessment__level"]
    search_fields = ["version", "title", "description", "changes__summary"]
    date_hierarchy = "scheduled_for"
    filter_horizontal = ["environments", "required_approvers", "required_roles"]
    readonly_fields = ["status", "approval_round", "created_by", "created_at", "approved_at", "deployed_at"]
    fieldsets = [
        (None, {"fields": ["version", "type", "title", "description", "status"]}),
        ("Targets and schedule", {"fields": ["environments", "scheduled_for", "scheduled_until"]}),
        ("Approval", {"fields": ["required_approvers", "required_roles", "quorum", "approval_round"]}),
        ("Record", {"classes": ["collapse"], "fields": ["created_by", "created_at", "approved_at", "deployed_at"]}),
    ]
    inlines = [ReleaseChangeInline, PrerequisiteInline, RiskAssessmentInline, RollbackPlanInline,
               RollbackStrategyInline, RollbackStepInline, CommunicationPlanInline, TestingRequirementInline,
               ApprovalInline]

    def get_queryset(self, request):
        return (super().get_queryset(request).select_related("created_by", "risk_assessment")
                .prefetch_related("environments", "approvals"))

    # --- list columns ---
    @admin.display(description="status", ordering="status")
    def status_badge(self, obj):
        colours = {"planned": "#555", "approved": "#1f6feb", "deploying": "#9a6700", "deployed": "#1a7f37",
                   "failed": "#cf222e", "rolled_back": "#8250df"}
        return format_html('<strong style="color:{}">{}</strong>', colours.get(obj.status, "#000"),
                           obj.get_status_display())

    @admin.display(description="environments")
    def target_environments(self, obj):
        return ", ".join(e.name for e in obj.environments.all())

    @admin.display(description="approvals")
    def approvals_progress(self, obj):
        have = sum(1 for a in obj.approvals.all() if a.round == obj.approval_round and a.decision == "approved")
        return f"{have}/{obj.effective_quorum()}"

    # --- editing ---
    def get_readonly_fields(self, request, obj=None):
        fields = list(super().get_readonly_fields(request, obj))
        if obj is not None and obj.status != ReleaseStatus.PLANNED:
            fields += ["version", "type", "title", "description", "environments", "scheduled_for",
                       "scheduled_until", "required_approvers", "required_roles", "quorum"]
        return fields

    def has_delete_permission(self, request, obj=None):
        return super().has_delete_permission(request, obj) and (obj is None or obj.status == ReleaseStatus.PLANNED)

    def changeform_view(self, request, object_id=None, form_url="", extra_context=None):
        if object_id and request.method == "POST":
            release = self.get_object(request, object_id)
            if release is not None:
                request._release_before = services.release_snapshot(release)
        return super().changeform_view(request, object_id, form_url, extra_context)

    def save_model(self, request, obj, form, change):
        if not change:
            obj.created_by = request.user
        super().save_model(request, obj, form, change)

    def save_related(self, request, form, formsets, change):
        super().save_related(request, form, formsets, change)
        services.release_record_admin_edit(release=form.instance, before=getattr(request, "_release_before", None),
                                           by=request.user, created=not change)

    def delete_model(self, request, obj):
        services.release_delete(release=obj, by=request.user)

    # --- transition buttons, notes, awaiting approval, cadence ---
    def change_view(self, request, object_id, form_url="", extra_context=None):
        release = self.get_object(request, object_id)
        extra_context = extra_context or {}
        if release is not None:
            extra_context.update({
                # deploy/complete/fail/rollback of the release itself are for external CI reporting through the
                # API; in the admin, deployments drive the release's status.
                "release_actions": [a for a in services.available_actions(release, request.user)
                                    if a.name in ("approve", "reject")],
                "approval_blockers": release.approval_blockers() if release.status == ReleaseStatus.PLANNED else [],
                "approval_reason": services.approval_eligibility(release, request.user)[1],
                "release_deployments": release.deployments.select_related("environment").order_by("-id"),
                "deploy_options": self._deploy_options(release, request.user),
                "strategies": DeploymentStrategy.choices,
            })
        return super().change_view(request, object_id, form_url, extra_context)

    def _deploy_options(self, release, user):
        """[(environment, refusals)] for the environments this user may deploy the release to."""
        if release.status not in deployment_services.DEPLOYABLE:
            return []
        options = []
        for env in release.environments.all():
            if access.can(user, env, Capability.DEPLOY):
                options.append((env, deployment_services.promotion_refusals(release, env)))
        return options

    def deploy_view(self, request, object_id):
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        release = get_object_or_404(Release, pk=object_id)
        env = Environment.objects.filter(pk=request.POST.get("environment") or 0).first()
        try:
            params = json.loads(request.POST.get("parameters") or "{}")
            if not isinstance(params, dict):
                raise ValueError("not an object")
            if request.POST.get("simulate_failure"):
                params["simulate"] = {"fail_health_check_at_weight": 50}
            if env is None:
                raise errors.ValidationFailed("choose an environment")
            dep = deployment_services.deployment_create(
                release=release, environment=env, by=request.user, strategy=request.POST.get("strategy") or None,
                parameters=params)
        except ValueError as exc:
            self.message_user(request, f"Parameters must be a JSON object: {exc}", messages.ERROR)
        except errors.DomainError as exc:
            self.message_user(request, _error_text(exc), messages.ERROR)
        else:
            self.message_user(request, f"Deployment #{dep.pk} of {release.version} to {env.name}: {dep.status}.",
                              messages.SUCCESS)
            return HttpResponseRedirect(reverse("admin:releases_deployment_change", args=[dep.pk]))
        return HttpResponseRedirect(reverse("admin:releases_release_change", args=[object_id]))

    def get_urls(self):
        wrap = self.admin_site.admin_view
        return [
            path("<int:object_id>/deploy/", wrap(self.deploy_view), name="releases_release_deploy"),
            path("awaiting-my-approval/", wrap(self.awaiting_view), name="releases_release_awaiting"),
            path("cadence/", wrap(self.cadence_view), name="releases_release_cadence"),
            path("<int:object_id>/act/<str:name>/", wrap(self.act_view), name="releases_release_act"),
            path("<int:object_id>/notes/", wrap(self.notes_view), name="releases_release_notes"),
            *super().get_urls(),
        ]

    def act_view(self, request, object_id, name):
        """Run a transition from a button; the service re-checks state and permission."""
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        release = get_object_or_404(Release, pk=object_id)
        try:
            services.release_transition(release=release, name=name, by=request.user,
                                        text=request.POST.get("text", ""))
        except errors.DomainError as exc:
            detail = "; ".join(exc.reasons) if exc.reasons else ""
            field = "; ".join(f"{k}: {' '.join(map(str, v))}" for k, v in exc.field_errors.items())
            self.message_user(request, " — ".join(x for x in (exc.message, detail, field) if x), messages.ERROR)
        else:
            release.refresh_from_db()
            self.message_user(request, f"{services.ACTIONS[name].label}: release {release.version} is now "
                                       f"{release.get_status_display().lower()}.", messages.SUCCESS)
        return HttpResponseRedirect(reverse("admin:releases_release_change", args=[object_id]))

    def notes_view(self, request, object_id):
        release = get_object_or_404(Release, pk=object_id)
        if not self.has_view_or_change_permission(request, release):
            raise PermissionDenied
        markdown = services.release_notes(release)
        if request.GET.get("download"):
            response = HttpResponse(markdown, content_type="text/markdown; charset=utf-8")
            response["Content-Disposition"] = f'attachment; filename="release-{release.version}.md"'
            return response
        context = {**self.admin_site.each_context(request), "opts": self.opts, "original": release,
                   "title": f"Release notes {release.version}", "markdown": markdown}
        return TemplateResponse(request, "admin/releases/release/notes.html", context)

    def awaiting_view(self, request):
        context = {**self.admin_site.each_context(request), "opts": self.opts, "title": "Awaiting my approval",
                   "releases": services.awaiting_approval(request.user)}
        return TemplateResponse(request, "admin/releases/release/awaiting.html", context)

    def cadence_view(self, request):
        today = timezone.localdate()
        try:
            year = int(request.GET.get("year", today.year))
            month = int(request.GET.get("month", today.month))
            first = dt.date(year, month, 1)
        except ValueError:
            first = today.replace(day=1)
        prev_month = (first - dt.timedelta(days=1)).replace(day=1)
        next_month = (first + dt.timedelta(days=32)).replace(day=1)
        context = {
            **self.admin_site.each_context(request), "opts": self.opts, "title": "Release cadence",
            "month": first, "prev_month": prev_month, "next_month": next_month, "today": today,
            "weeks": services.cadence_calendar(first.year, first.month), "report": services.cadence_report(today),
        }
        return TemplateResponse(request, "admin/releases/release/cadence.html", context)


# --- deployments -------------------------------------------------------------------------------------
class DeploymentTargetInline(EnvironmentConfigInlineMixin, admin.StackedInline):
    model = DeploymentTarget
    fields = ["backend", "config", "concurrency", "default_strategy", "default_parameters"]


class TestingGateInline(EnvironmentConfigInlineMixin, admin.TabularInline):
    model = TestingGate
    fields = ["name", "slug", "tests", "required", "timeout", "on_failure", "position"]
    prepopulated_fields = {"slug": ["name"]}


class HealthCheckInline(EnvironmentConfigInlineMixin, admin.TabularInline):
    model = HealthCheck


EnvironmentAdmin.inlines = [EnvironmentAccessInline, DeploymentTargetInline, TestingGateInline, HealthCheckInline]


@admin.register(Deployment)
class DeploymentAdmin(AuditHistoryMixin, admin.ModelAdmin):
    change_form_template = "admin/releases/deployment/change_form.html"
    list_display = ["id", "release", "environment", "strategy", "status_badge", "progress_bar", "started_at",
                    "finished_at"]
    list_filter = ["status", "strategy", "environment", "backend"]
    search_fields = ["release__version", "release__title", "failure_reason"]
    readonly_fields = ["release", "environment", "strategy", "parameters", "backend", "status", "previous_version",
                       "auto_rollback", "failure_reason", "waiting_for", "requested_by", "created_at", "started_at",
                       "finished_at", "watchdog_restarts"]
    fields = readonly_fields

    def get_queryset(self, request):
        return (super().get_queryset(request).filter(environment__in=access.visible_environments(request.user))
                .select_related("release", "environment").prefetch_related("steps"))

    def has_view_permission(self, request, obj=None):
        return request.user.has_perm("releases.view_release")

    def has_add_permission(self, request):
        return False  # deployments start from a release's page (or the API)

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    @admin.display(description="status", ordering="status")
    def status_badge(self, obj):
        colours = {"succeeded": "#1a7f37", "failed": "#cf222e", "rolled_back": "#8250df", "running": "#9a6700",
                   "rolling_back": "#bc4c00", "awaiting_approval": "#1f6feb", "paused": "#555"}
        return format_html('<strong style="color:{}">{}</strong>', colours.get(obj.status, "#000"),
                           obj.get_status_display())

    @admin.display(description="progress")
    def progress_bar(self, obj):
        done, total = obj.progress()
        percent = round(100 * done / total) if total else 0
        return format_html('<progress max="100" value="{}" aria-label="{}% of steps done"></progress> {}/{}',
                           percent, percent, done, total)

    def change_view(self, request, object_id, form_url="", extra_context=None):
        dep = self.get_object(request, object_id)
        extra_context = extra_context or {}
        if dep is not None:
            extra_context.update(self._live_context(request, dep))
        return super().change_view(request, object_id, form_url, extra_context)

    def _live_context(self, request, dep):
        done, total = dep.progress()
        gates = deployment_services.gate_states_for_display(dep)
        may_deploy = access.can(request.user, dep.environment, Capability.DEPLOY)
        return {"deployment_actions": deployment_services.available_actions(dep, request.user),
                "progress": {"done": done, "total": total, "percent": round(100 * done / total) if total else 0},
                "gates": gates, "may_override": may_deploy,
                "may_report": access.can(request.user, dep.environment, Capability.REPORT) and not dep.is_finished}

    def get_urls(self):
        wrap = self.admin_site.admin_view
        return [
            path("<int:object_id>/act/<str:name>/", wrap(self.act_view), name="releases_deployment_act"),
            path("<int:object_id>/progress/", wrap(self.progress_view), name="releases_deployment_progress"),
            path("<int:object_id>/gates/<int:gate_id>/override/", wrap(self.override_view),
                 name="releases_deployment_override"),
            path("<int:object_id>/gates/<int:gate_id>/result/", wrap(self.result_view),
                 name="releases_deployment_gate_result"),
            *super().get_urls(),
        ]

    def _get(self, request, object_id):
        dep = self.get_queryset(request).filter(pk=object_id).first()
        if dep is None:
            raise PermissionDenied
        return dep

    def act_view(self, request, object_id, name):
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        dep = self._get(request, object_id)
        try:
            deployment_services.deployment_action(deployment=dep, name=name, by=request.user,
                                                  reason=request.POST.get("text", ""))
        except errors.DomainError as exc:
            self.message_user(request, _error_text(exc), messages.ERROR)
        else:
            self.message_user(request, f"{deployment_services.ACTIONS[name][0]}: deployment #{dep.pk} is now "
                                       f"{Deployment.objects.get(pk=dep.pk).get_status_display().lower()}.",
                              messages.SUCCESS)
        return HttpResponseRedirect(reverse("admin:releases_deployment_change", args=[object_id]))

    def override_view(self, request, object_id, gate_id):
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        dep = self._get(request, object_id)
        gate = get_object_or_404(TestingGate, pk=gate_id, environment=dep.environment)
        try:
            deployment_services.gate_override(deployment=dep, gate=gate, by=request.user,
                                              reason=request.POST.get("text", ""))
        except errors.DomainError as exc:
            self.message_user(request, _error_text(exc), messages.ERROR)
        else:
            self.message_user(request, f"Gate '{gate.name}' overridden.", messages.SUCCESS)
        return HttpResponseRedirect(reverse("admin:releases_deployment_change", args=[object_id]))

    def result_view(self, request, object_id, gate_id):
        """Record a gate result by hand (a manual QA sign-off, or CI that cannot call the API)."""
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        dep = self._get(request, object_id)
        gate = get_object_or_404(TestingGate, pk=gate_id, environment=dep.environment)
        try:
            passed, failed = int(request.POST.get("passed", "")), int(request.POST.get("failed", ""))
        except ValueError:
            self.message_user(request, "Passed and failed must be whole numbers.", messages.ERROR)
        else:
            try:
                result = deployment_services.gate_report(deployment=dep, gate=gate, by=request.user, passed=passed,
                                                         failed=failed, url=request.POST.get("url", ""))
            except errors.DomainError as exc:
                self.message_user(request, _error_text(exc), messages.ERROR)
            else:
                self.message_user(request, f"{gate.name}: {result.get_status_display().lower()} recorded.",
                                  messages.SUCCESS)
        return HttpResponseRedirect(reverse("admin:releases_deployment_change", args=[object_id]))

    def progress_view(self, request, object_id):
        """What the change page polls to show the deployment live."""
        dep = self._get(request, object_id)
        done, total = dep.progress()
        steps = [{"position": s.position, "phase": s.phase, "name": s.name, "status": s.status,
                  "attempts": s.attempts, "outcome": s.outcome,
                  "started_at": s.started_at and s.started_at.isoformat(),
                  "finished_at": s.finished_at and s.finished_at.isoformat(),
                  "log": [f"{line.get('t', '')} {line.get('msg', '')}".strip() for line in s.log[-8:]]}
                 for s in dep.steps.all()]
        return JsonResponse({
            "status": dep.status, "status_display": dep.get_status_display(), "waiting_for": dep.waiting_for,
            "failure_reason": dep.failure_reason, "progress": {"done": done, "total": total},
            "actions": [name for name, _, _ in deployment_services.available_actions(dep, request.user)],
            "steps": steps, "finished": dep.is_finished,
        })


def _error_text(exc):
    detail = "; ".join(exc.reasons) if exc.reasons else ""
    field = "; ".join(f"{k}: {' '.join(map(str, v))}" for k, v in exc.field_errors.items())
    return " — ".join(x for x in (exc.message, detail, field) if x)


@admin.register(TestingGate)
class TestingGateAdmin(admin.ModelAdmin):
    list_display = ["name", "environment", "required", "timeout", "on_failure", "tests"]
    list_filter = ["environment", "required", "on_failure"]
    search_fields = ["name"]

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
