"""Admin of releases: the release with its plan as inlines, approval buttons, deploying, release notes,
"awaiting my approval" and the cadence calendar. Saving calls ``release_create`` / ``release_update`` with
the whole plan, exactly as the API does; the buttons call the same transition services."""
import datetime as dt
import json
from dataclasses import dataclass

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import HttpResponse, HttpResponseNotAllowed, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone

from pmrelease import errors
from pmrelease.admin import AuditHistoryMixin, ServiceAdminMixin, error_message, status_badge
from pmrelease.lists import BoundedCountPaginator
from pmrelease.roles import Capability

from .. import access, selectors, services
from ..deploy import services as deploy_services
from ..models import (
    ApproverRole,
    CommunicationPlan,
    DeploymentStrategy,
    Environment,
    Prerequisite,
    Release,
    ReleaseApproval,
    ReleaseNoteItem,
    ReleaseStatus,
    RiskAssessment,
    RollbackPlan,
    RollbackStep,
    RollbackStrategy,
    RollbackTrigger,
    TestingRequirement,
)


@dataclass(frozen=True)
class Button:
    name: str
    label: str
    needs_text: str  # "", "comment" (optional) or "reason" (required)
    style: str = "default"


BUTTONS = {  # label and style of each release transition's button
    "approve": ("Approve", "primary"), "reject": ("Reject", "danger"), "redeploy": ("Make deployable again", "default"),
}


def button(name):
    label, style = BUTTONS[name]
    return Button(name, label, services.TRANSITION_TEXT[name], style)


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


def _plan_inline(part, model, base=admin.TabularInline, **attrs):
    """An inline for one part of the release plan, with the fields the release services accept."""
    fields = services.PLAN_MANY.get(part, services.PLAN_SINGLE.get(part))[1]
    return type(f"{model.__name__}Inline", (PlanInlineMixin, base),
                {"model": model, "fields": fields, "__module__": __name__, **attrs})


NoteItemInline = _plan_inline("note_items", ReleaseNoteItem, verbose_name_plural="release-note items")
PrerequisiteInline = _plan_inline("prerequisites", Prerequisite)
RiskAssessmentInline = _plan_inline("risk_assessment", RiskAssessment, admin.StackedInline,
                                    fields=["impact", "likelihood", "level", "mitigation", "contingency"],
                                    readonly_fields=["level"])
RollbackPlanInline = _plan_inline("rollback_plan", RollbackPlan, admin.StackedInline)
RollbackStrategyInline = _plan_inline("rollback_strategies", RollbackStrategy)
RollbackStepInline = _plan_inline("rollback_steps", RollbackStep)
CommunicationPlanInline = _plan_inline("communication_plan", CommunicationPlan, admin.StackedInline,
                                       classes=["collapse"])
TestingRequirementInline = _plan_inline("testing_requirements", TestingRequirement)
RollbackTriggerInline = _plan_inline("rollback_triggers", RollbackTrigger, fk_name="release",
                                     verbose_name_plural="rollback triggers (empty: the environments' defaults)")


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
            return queryset.filter(pk__in=[r.pk for r in selectors.awaiting_approval(request.user)])
        return queryset


def _plan_from_formsets(formsets):
    """The plan parts a release form's inline formsets changed, in the shape the release services take:
    the whole list of rows for a list part, the row (or None) for a one-to-one part."""
    parts = {model: part for part, (model, _) in (services.PLAN_MANY | services.PLAN_SINGLE).items()}
    plan = {}
    for formset in formsets:
        part = parts.get(formset.model)
        if part is None or not (formset.has_changed() or formset.deleted_forms):
            continue
        fields = services.PLAN_MANY.get(part, services.PLAN_SINGLE.get(part))[1]
        rows = []
        for form in formset.forms:
            if form in formset.deleted_forms or (form in formset.extra_forms and not form.has_changed()):
                continue
            rows.append({name: form.cleaned_data[name] for name in fields if name in form.cleaned_data})
        plan[part] = rows if part in services.PLAN_MANY else (rows[0] if rows else None)
    return plan


@admin.register(ApproverRole)
class ApproverRoleAdmin(ServiceAdminMixin, AuditHistoryMixin, admin.ModelAdmin):
    """Roles an administrator allows to approve releases beside the release managers."""

    list_display = ["group", "max_risk", "where", "note"]
    list_select_related = ["group"]
    filter_horizontal = ["environments"]
    fields = services.APPROVER_ROLE_FIELDS

    def get_queryset(self, request):
        return super().get_queryset(request).prefetch_related("environments")

    @admin.display(description="environments")
    def where(self, obj):
        return ", ".join(e.name for e in obj.environments.all()) or "every environment"

    def has_view_permission(self, request, obj=None):
        return request.user.is_superuser

    has_add_permission = has_change_permission = has_delete_permission = (
        lambda self, request, obj=None: request.user.is_superuser)

    def save_model(self, request, obj, form, change):
        """Nothing here: saved with its environments in ``save_related``, through a service."""

    def save_related(self, request, form, formsets, change):
        data = {name: form.cleaned_data[name] for name in services.APPROVER_ROLE_FIELDS if name in form.cleaned_data}
        role = services.approver_role_save(data=data, by=request.user,
                                           role=ApproverRole.objects.get(pk=form.instance.pk) if change else None)
        form.instance.pk = role.pk
        form.instance._state.adding = False

    def delete_model(self, request, obj):
        services.approver_role_delete(role=obj, by=request.user)

    def delete_queryset(self, request, queryset):
        for role in queryset:
            services.approver_role_delete(role=role, by=request.user)


@admin.register(Release)
class ReleaseAdmin(ServiceAdminMixin, AuditHistoryMixin, admin.ModelAdmin):
    form = ReleaseAdminForm
    change_form_template = "admin/releases/release/change_form.html"
    change_list_template = "admin/releases/release/change_list.html"
    list_display = ["version", "title", "type", "status_badge", "target_environments", "scheduled_for",
                    "approvals_progress", "created_by"]
    list_filter = [AwaitingMyApprovalFilter, "status", "type", "environments", "risk_assessment__level"]
    search_fields = ["version", "title", "description", "note_items__summary"]
    date_hierarchy = "scheduled_for"
    paginator = BoundedCountPaginator  # one bounded count per page (issue 18)
    show_full_result_count = False
    filter_horizontal = ["environments", "required_approvers", "required_roles"]
    readonly_fields = ["status", "approval_round", "created_by", "created_at", "approved_at", "deployed_at"]
    fieldsets = [
        (None, {"fields": ["version", "type", "title", "description", "status"]}),
        ("Targets and schedule", {"fields": ["environments", "scheduled_for", "scheduled_until"]}),
        ("Approval", {"fields": ["required_approvers", "required_roles", "quorum", "approval_round"]}),
        ("Record", {"classes": ["collapse"], "fields": ["created_by", "created_at", "approved_at", "deployed_at"]}),
    ]
    inlines = [NoteItemInline, PrerequisiteInline, RiskAssessmentInline, RollbackPlanInline,
               RollbackStrategyInline, RollbackStepInline, RollbackTriggerInline, CommunicationPlanInline,
               TestingRequirementInline, ApprovalInline]

    def get_queryset(self, request):
        return (selectors.visible_releases(request.user, super().get_queryset(request))
                .select_related("created_by", "risk_assessment").prefetch_related("environments", "approvals"))

    # --- list columns ---
    @admin.display(description="status", ordering="status")
    def status_badge(self, obj):
        return status_badge(obj)

    @admin.display(description="environments")
    def target_environments(self, obj):
        return ", ".join(e.name for e in obj.environments.all())

    @admin.display(description="approvals")
    def approvals_progress(self, obj):
        have = sum(1 for a in obj.approvals.all() if a.round == obj.approval_round and a.decision == "approved")
        return f"{have}/{obj.effective_quorum()}"

    # --- editing: through release_create / release_update ---
    def get_readonly_fields(self, request, obj=None):
        fields = list(super().get_readonly_fields(request, obj))
        if obj is not None and obj.status != ReleaseStatus.PLANNED:
            fields += ["version", "type", "title", "description", "environments", "scheduled_for",
                       "scheduled_until", "required_approvers", "required_roles", "quorum"]
        return fields

    def has_delete_permission(self, request, obj=None):
        return super().has_delete_permission(request, obj) and (obj is None or obj.status == ReleaseStatus.PLANNED)

    def save_model(self, request, obj, form, change):
        """Nothing here: the release and its plan are saved together in ``save_related``, through a service."""

    def save_related(self, request, form, formsets, change):
        names = form.changed_data if change else form.cleaned_data
        data = {name: form.cleaned_data[name] for name in names if name in services.RELEASE_FIELDS}
        plan = _plan_from_formsets(formsets)
        if change:
            release = services.release_update(release=Release.objects.get(pk=form.instance.pk), data=data,
                                              plan=plan, by=request.user)
        else:
            release = services.release_create(data=data, plan=plan, by=request.user)
        # the admin's response and log need the saved row (through __dict__: the status field is protected)
        form.instance.__dict__ |= {f.attname: release.__dict__[f.attname] for f in Release._meta.concrete_fields}
        form.instance._state.adding = False
        for formset in formsets:
            formset.new_objects, formset.changed_objects, formset.deleted_objects = [], [], []

    def delete_model(self, request, obj):
        services.release_delete(release=obj, by=request.user)

    def delete_queryset(self, request, queryset):
        for release in queryset:
            services.release_delete(release=release, by=request.user)

    # --- transition buttons, notes, awaiting approval, cadence ---
    def change_view(self, request, object_id, form_url="", extra_context=None):
        release = self.get_object(request, object_id)
        extra_context = extra_context or {}
        if release is not None:
            visible = set(access.visible_environments(request.user).values_list("pk", flat=True))
            extra_context |= {
                "release_actions": [button(name) for name in selectors.available_actions(release, request.user)],
                "approval_blockers": selectors.approval_blockers(release),
                # links only to the deployments this user may open (the others' pages would be a 403)
                "running_in": [(env, since, deployment if env.pk in visible else None)
                               for env, since, deployment in selectors.locations(release)],
                "approval_reason": selectors.approval_eligibility(release, request.user)[1],
                "release_deployments": release.deployments.filter(environment__in=visible)
                .select_related("environment").order_by("-id"),
                "deploy_options": self._deploy_options(release, request.user),
                "strategies": DeploymentStrategy.choices,
            }
        return super().change_view(request, object_id, form_url, extra_context)

    def _deploy_options(self, release, user):
        """[(environment, refusals)] for the environments this user may deploy the release to."""
        if release.status not in deploy_services.DEPLOYABLE:
            return []
        options = []
        for env in release.environments.all():
            if access.can(user, env, Capability.DEPLOY):
                options.append((env, deploy_services.promotion_refusals(release, env)))
        return options

    def deploy_view(self, request, object_id):
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        release = self._visible(request, object_id)
        env = Environment.objects.filter(pk=request.POST.get("environment") or 0).first()
        try:
            params = json.loads(request.POST.get("parameters") or "{}")
            if not isinstance(params, dict):
                raise ValueError("not an object")
            if request.POST.get("simulate_failure"):
                params["simulate"] = {"fail_health_check_at_weight": 50}
            if env is None:
                raise errors.ValidationFailed("choose an environment")
            dep = deploy_services.deployment_create(
                release=release, environment=env, by=request.user, strategy=request.POST.get("strategy") or None,
                parameters=params)
        except ValueError as exc:
            self.message_user(request, f"Parameters must be a JSON object: {exc}", messages.ERROR)
        except errors.DomainError as exc:
            error_message(request, exc)
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

    def _visible(self, request, object_id):
        """The release if the user may see it (404 otherwise, as for its change page)."""
        return get_object_or_404(self.get_queryset(request), pk=object_id)

    def act_view(self, request, object_id, name):
        """Run a transition from a button; the service re-checks state and permission."""
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        if name not in BUTTONS:
            raise PermissionDenied
        release = self._visible(request, object_id)
        try:
            release = services.release_transition(release=release, name=name, by=request.user,
                                                  text=request.POST.get("text", ""))
        except errors.DomainError as exc:
            error_message(request, exc)
        else:
            self.message_user(request, f"{BUTTONS[name][0]}: release {release.version} is now "
                                       f"{release.get_status_display().lower()}.", messages.SUCCESS)
        return HttpResponseRedirect(reverse("admin:releases_release_change", args=[object_id]))

    def notes_view(self, request, object_id):
        release = self._visible(request, object_id)
        if not self.has_view_or_change_permission(request, release):
            raise PermissionDenied
        markdown = selectors.release_notes(release)
        if request.GET.get("download"):
            response = HttpResponse(markdown, content_type="text/markdown; charset=utf-8")
            response["Content-Disposition"] = f'attachment; filename="release-{release.version}.md"'
            return response
        context = {**self.admin_site.each_context(request), "opts": self.opts, "original": release,
                   "title": f"Release notes {release.version}", "markdown": markdown}
        return TemplateResponse(request, "admin/releases/release/notes.html", context)

    def awaiting_view(self, request):
        context = {**self.admin_site.each_context(request), "opts": self.opts, "title": "Awaiting my approval",
                   "releases": selectors.awaiting_approval(request.user)}
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
            "weeks": selectors.cadence_calendar(first.year, first.month), "report": selectors.cadence_report(today),
        }
        return TemplateResponse(request, "admin/releases/release/cadence.html", context)
