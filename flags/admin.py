"""Admin for flags: the flags × environments matrix, per-environment editing (rollout first, then strategies,
constraints and variants as JSON with validation messages), copy with a diff, "evaluate as", history,
ramps, stale flags, change approvals, segments and API keys. Every change goes through ``flags.services``."""
import json

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html, format_html_join

from pmrelease import errors
from pmrelease.admin import AuditHistoryMixin, ServiceAdminMixin, error_message
from pmrelease.models import AuditEvent
from pmrelease.roles import Capability
from releases import access
from releases.models import Environment

from . import guards, hooks, rollouts, selectors, services
from .context import unleash_context
from .models import (
    ApiKey,
    ApprovalPolicy,
    ChangeStatus,
    FeatureFlag,
    FlagChangeRequest,
    FlagEnvironment,
    FlagMetricsBucket,
    RolloutKind,
    Segment,
)


def _badge(warnings):
    """A warning badge whose title says why (an imported construct that can never match, say)."""
    if not warnings:
        return ""
    return format_html('<span title="{}" style="padding:1px 5px;border-radius:3px;background:#f0ad4e;color:#000;'
                       'cursor:help">&#9888; {}</span>', "\n".join(warnings), len(warnings))


def _summary(state):
    if not state.enabled:
        return "off"
    pct = rollouts.rollout_percentage(state.strategies)
    if pct is not None:
        return f"on {pct}%"
    return "on" if not state.strategies else f"on ({len(state.strategies)} strategies)"


class FeatureFlagForm(forms.ModelForm):
    """Runs the services' checks in the form, so a refusal shows on the form (not as a blank 403)."""

    request = None  # set per request by FeatureFlagAdmin.get_form

    class Meta:
        model = FeatureFlag
        fields = "__all__"

    def _post_clean(self):
        super()._post_clean()
        if self.errors:
            return
        try:
            services.flag_validate(flag=self.instance, by=getattr(self.request, "user", None))
        except errors.DomainError as exc:
            for message in exc.reasons or [exc.message]:
                self.add_error(None, message)


@admin.register(FeatureFlag)
class FeatureFlagAdmin(ServiceAdminMixin, AuditHistoryMixin, admin.ModelAdmin):
    form = FeatureFlagForm
    list_display = ["key", "type", "lifecycle", "owner", "environment_matrix", "warnings"]
    list_filter = ["type", "lifecycle"]
    search_fields = ["key", "description", "tags"]
    readonly_fields = ["created_at", "updated_at", "environment_links", "served_dependencies", "warnings"]
    change_list_template = "admin/flags/featureflag/change_list.html"
    fieldsets = [
        (None, {"fields": ["key", "description", "type", "owner", "tags", "lifecycle", "impression_data"]}),
        ("Dependency", {"fields": ["parent", "parent_enabled", "parent_variants", "served_dependencies"],
                        "description": "Setting a parent here replaces dependencies imported from Unleash."}),
        ("Warnings", {"fields": ["warnings"]}),
        ("Monitoring (the alerts guard gradual rollouts)", {"fields": ["monitoring_metrics", "monitoring_alerts"]}),
        ("Environments", {"fields": ["environment_links", "created_at", "updated_at"]}),
    ]

    # Flags follow the environment access matrix rather than model permissions: anyone who can see an
    # environment sees the flags, anyone with full access to one may create and edit them (services check).
    def has_module_permission(self, request):
        return request.user.is_active and request.user.is_staff and (
            request.user.is_superuser or access.visible_environments(request.user).exists())

    def has_view_permission(self, request, obj=None):
        return self.has_module_permission(request)

    def has_add_permission(self, request):
        return services.can_edit_flags(request.user)

    def has_change_permission(self, request, obj=None):
        return services.can_edit_flags(request.user)

    def has_delete_permission(self, request, obj=None):
        return False  # archive instead (lifecycle): the audit trail keeps referring to the flag

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("owner").prefetch_related("states__environment")

    def get_changelist_instance(self, request):
        """The page's warnings computed together (``selectors.flags_warnings``), not one flag at a time."""
        changelist = super().get_changelist_instance(request)
        found = selectors.flags_warnings(changelist.result_list)
        for flag in changelist.result_list:
            flag.list_warnings = found[flag.pk]
        return changelist

    def get_readonly_fields(self, request, obj=None):
        return [*self.readonly_fields, "key"] if obj else self.readonly_fields

    def get_form(self, request, obj=None, change=False, **kwargs):
        form = super().get_form(request, obj, change=change, **kwargs)  # a new class per request
        form.request = request
        return form

    @admin.display(description="environments")
    def environment_matrix(self, obj):
        states = sorted(obj.states.all(), key=lambda s: s.environment.position)
        return format_html_join(
            " ", '<a href="{}" title="{}" style="padding:1px 5px;border-radius:3px;color:#fff;background:{}">{}: {}</a>',
            ((reverse("admin:flags_featureflag_state", args=[obj.pk, s.environment.name]), s.environment.name,
              "#2e7d32" if s.enabled else "#9e9e9e", s.environment.name, _summary(s)) for s in states))

    @admin.display(description="warnings")
    def warnings(self, obj):
        """Why the flag can never match somewhere (kept as imported), per environment."""
        if not obj or not obj.pk:
            return ""
        by_env = obj.list_warnings if hasattr(obj, "list_warnings") else selectors.flag_warnings(obj)
        return _badge([f"{env}: {w}" for env, warnings in by_env.items() for w in warnings]) or "none"

    @admin.display(description="served dependencies")
    def served_dependencies(self, obj):
        return json.dumps(obj.dependencies, ensure_ascii=False) if obj and obj.dependencies else "none"

    @admin.display(description="per environment")
    def environment_links(self, obj):
        if not obj or not obj.pk:
            return "saved flags are off in every environment; edit them here afterwards"
        return self.environment_matrix(obj)

    def save_model(self, request, obj, form, change):
        data = {name: form.cleaned_data[name] for name in services.FLAG_FIELDS if name in form.cleaned_data}
        if change:
            saved = services.flag_update(flag=obj, data={k: v for k, v in data.items() if k in form.changed_data},
                                         by=request.user)
        else:
            saved = services.flag_create(key=form.cleaned_data["key"], by=request.user, **data)
        obj.pk = saved.pk

    def get_urls(self):
        wrap = self.admin_site.admin_view
        return [
            path("matrix/", wrap(self.matrix_view), name="flags_featureflag_matrix"),
            path("stale/", wrap(self.stale_view), name="flags_featureflag_stale"),
            path("<int:pk>/env/<str:env>/", wrap(self.state_view), name="flags_featureflag_state"),
            *super().get_urls(),
        ]

    # --- the matrix ------------------------------------------------------------------------------------
    def matrix_view(self, request):
        if not self.has_view_permission(request):
            raise PermissionDenied
        environments = list(access.visible_environments(request.user).order_by("position"))
        if request.method == "POST":
            pk = request.POST.get("state", "")
            state = FlagEnvironment.objects.select_related("flag", "environment").filter(
                pk=int(pk)).first() if pk.isascii() and pk.isdigit() and len(pk) < 19 else None
            if state is None:
                messages.error(request, f"no such flag state: {pk[:50]!r}")
                return HttpResponseRedirect(request.path)
            self._run(request, lambda: services.flag_toggle(state=state, enabled=request.POST.get("enabled") == "1",
                                                            by=request.user, reason="toggled in the matrix"),
                      f"{state.flag.key} is now {'on' if request.POST.get('enabled') == '1' else 'off'} "
                      f"in {state.environment.name}")
            return HttpResponseRedirect(request.path)
        flags = FeatureFlag.objects.prefetch_related("states__environment").order_by("key")
        rows = []
        for flag in flags:
            by_env = {s.environment_id: s for s in flag.states.all()}
            rows.append((flag, [(env, by_env.get(env.pk), by_env.get(env.pk) and _summary(by_env[env.pk]),
                                 access.can(request.user, env, Capability.DEPLOY)) for env in environments]))
        context = {**self.admin_site.each_context(request), "opts": self.model._meta, "title": "Flags × environments",
                   "environments": environments, "rows": rows}
        return TemplateResponse(request, "admin/flags/matrix.html", context)

    def stale_view(self, request):
        if not self.has_view_permission(request):
            raise PermissionDenied
        context = {**self.admin_site.each_context(request), "opts": self.model._meta, "title": "Stale flags",
                   "stale": services.stale_flags()}
        return TemplateResponse(request, "admin/flags/stale.html", context)

    def _run(self, request, operation, success):
        try:
            result = operation()
        except services.ApprovalRequired as exc:
            messages.warning(request, exc.text())
            return None
        except errors.DomainError as exc:
            error_message(request, exc)
            return None
        messages.success(request, success)
        return result or True

    # --- one flag in one environment ---------------------------------------------------------------------
    def state_view(self, request, pk, env):
        flag = get_object_or_404(FeatureFlag, pk=pk)
        environment = get_object_or_404(Environment, name=env)
        if not access.can(request.user, environment, Capability.VIEW):
            raise PermissionDenied
        state = services.state_for(flag, environment)
        by = request.user
        action = request.POST.get("action") if request.method == "POST" else None
        if request.method == "GET":
            for warning in selectors.state_warnings(state):
                messages.warning(request, f"never matches here: {warning}")
        forms_data = {"strategies": json.dumps(state.strategies, indent=2),
                      "variants": json.dumps(state.variants, indent=2)}
        evaluation = None
        copy_diff = None
        copy_source = None
        if action in ("save", "propose"):
            forms_data = {"strategies": request.POST.get("strategies", ""), "variants": request.POST.get("variants", "")}
            try:
                strategies = json.loads(forms_data["strategies"] or "[]")
                variants = json.loads(forms_data["variants"] or "[]")
            except ValueError as exc:
                messages.error(request, f"not valid JSON: {exc}")
            else:
                propose = action == "propose"
                if self._run(request, lambda: services.flag_state_edit(
                        state=state, enabled=request.POST.get("enabled") == "on", strategies=strategies,
                        variants=variants, by=by, reason=request.POST.get("reason", ""), propose=propose),
                        "change proposed: a second person must approve it" if propose else "saved"):
                    return HttpResponseRedirect(request.path)
        elif action == "rollout":
            kind = request.POST.get("kind")
            try:
                percent = int(request.POST.get("percentage") or 100)
            except ValueError:
                percent = -1
            segments = [int(s) for s in request.POST.getlist("segments") if s.isdigit()]
            users = [u for u in request.POST.get("user_ids", "").split(",") if u.strip()]
            if self._run(request, lambda: services.apply_rollout(
                    state=state, kind=kind, percentage=percent, stickiness=request.POST.get("stickiness") or "default",
                    segments=segments, user_ids=users, steps=request.POST.get("steps", ""), by=by,
                    reason=request.POST.get("reason", "")), f"{kind} rollout applied"):
                return HttpResponseRedirect(request.path)
        elif action in services.RAMP_ACTIONS:
            if self._run(request, lambda: services.ramp_action(state=state, action=action, by=by,
                                                               reason=request.POST.get("reason", "")),
                         f"ramp {action}d"):
                return HttpResponseRedirect(request.path)
        elif action in ("copy-preview", "copy"):
            source_env = get_object_or_404(Environment, name=request.POST.get("source", ""))
            if not access.can(request.user, source_env, Capability.VIEW):
                raise PermissionDenied
            copy_source = services.state_for(flag, source_env)
            copy_diff = services.config_diff(copy_source, state)
            if action == "copy" and self._run(request, lambda: services.flag_copy_config(
                    source=copy_source, target=state, by=by, reason=request.POST.get("reason", "")),
                    f"configuration copied from {source_env.name}"):
                return HttpResponseRedirect(request.path)
        elif action == "evaluate":
            try:
                raw = json.loads(request.POST.get("context") or "{}")
                ctx = unleash_context(raw, environment=environment.name, remote_address="")
                evaluation = (ctx, services.evaluate_as(flag=flag, environment=environment, context=ctx))
            except ValueError as exc:
                messages.error(request, f"context: {exc}")
        history = AuditEvent.objects.filter(object_type="flags.flagenvironment", object_id=str(state.pk)).order_by(
            "-id")[:50]
        guard_ramp = state.ramps.first()  # the latest, reverted ones included: a guard may have reverted it
        context = {
            **self.admin_site.each_context(request), "opts": self.model._meta, "flag": flag, "state": state,
            "environment": environment, "title": f"{flag.key} in {environment.name}",
            "can_edit": access.can(request.user, environment, Capability.DEPLOY),
            "needs_approval": services.requires_approval(environment), "forms_data": forms_data,
            "rollout_kinds": [k for k in RolloutKind.choices if k[0] != RolloutKind.CUSTOM],
            "segments": Segment.objects.all(), "ramp": services.current_ramp(state), "guard_ramp": guard_ramp,
            "guard_charts": guards.charts(guard_ramp) if guard_ramp else [],
            "environments": access.visible_environments(request.user).exclude(pk=environment.pk).order_by(
                "position"), "copy_diff": copy_diff,
            "copy_source": copy_source, "evaluation": evaluation, "history": history,
            "pending": state.change_requests.filter(status=ChangeStatus.PENDING),
            "percentage": rollouts.rollout_percentage(state.strategies),
            "evaluate_context": request.POST.get("context", '{"targetingKey": "user-1", "plan": "pro"}'),
        }
        return TemplateResponse(request, "admin/flags/state.html", context)


class SegmentForm(forms.ModelForm):
    class Meta:
        model = Segment
        fields = ["name", "description", "constraints"]

    def clean_constraints(self):
        problems = services.segment_problems(self.cleaned_data["constraints"], segment=self.instance)
        if problems:
            raise forms.ValidationError(problems)
        return self.cleaned_data["constraints"]


@admin.register(Segment)
class SegmentAdmin(ServiceAdminMixin, AuditHistoryMixin, admin.ModelAdmin):
    form = SegmentForm
    list_display = ["name", "id", "description", "warnings"]
    search_fields = ["name"]

    @admin.display(description="warnings")
    def warnings(self, obj):
        return _badge(selectors.segment_warnings(obj))

    def save_model(self, request, obj, form, change):
        saved = services.segment_save(name=obj.name, constraints=obj.constraints, description=obj.description,
                                      segment=obj if change else None, by=request.user)
        obj.pk = saved.pk

    # Deleting goes through the service: refused while a flag uses the segment, otherwise audited and bumped.
    def delete_view(self, request, object_id, extra_context=None):
        segment = Segment.objects.filter(pk=object_id).first() if str(object_id).isdigit() else None
        if segment is not None:
            try:
                services.segment_check_unused(segment)
            except errors.DomainError as exc:
                error_message(request, exc)
                return HttpResponseRedirect(reverse("admin:flags_segment_change", args=[segment.pk]))
        return super().delete_view(request, object_id, extra_context)

    def delete_model(self, request, obj):
        services.segment_delete(segment=obj, by=request.user)

    def delete_queryset(self, request, queryset):
        for segment in queryset:
            try:
                services.segment_delete(segment=segment, by=request.user)
            except errors.DomainError as exc:
                error_message(request, exc)


class ApiKeyForm(forms.ModelForm):
    class Meta:
        model = ApiKey
        fields = ["name", "environment", "kind", "rate_limit"]


@admin.register(ApiKey)
class ApiKeyAdmin(ServiceAdminMixin, AuditHistoryMixin, admin.ModelAdmin):
    form = ApiKeyForm
    list_display = ["prefix", "name", "environment", "kind", "created_at", "revoked_at"]
    list_filter = ["environment", "kind"]
    actions = ["revoke"]

    def has_change_permission(self, request, obj=None):
        return obj is None and super().has_change_permission(request, obj)

    def has_delete_permission(self, request, obj=None):
        return False  # revoke instead: revoking is audited and reaches every process's key cache

    def save_model(self, request, obj, form, change):
        key, raw = services.api_key_create(environment=obj.environment, kind=obj.kind, name=obj.name,
                                           rate_limit=obj.rate_limit, by=request.user)
        obj.pk = key.pk
        messages.warning(request, format_html("New key (shown once, copy it now): <code>{}</code>", raw))

    @admin.action(description="Revoke the selected keys")
    def revoke(self, request, queryset):
        for key in queryset:
            try:
                services.api_key_revoke(key=key, by=request.user)
            except errors.DomainError as exc:
                error_message(request, exc)


@admin.register(FlagChangeRequest)
class FlagChangeRequestAdmin(admin.ModelAdmin):
    """Proposed flag changes, read-only: each is decided on its change request's page (by whom the approval
    policy names), never by a bulk action here."""

    list_display = ["state", "status", "decided_on", "requested_by", "decided_by", "created_at", "reason"]
    list_select_related = ["state__flag", "state__environment", "requested_by", "decided_by"]
    list_filter = ["status"]
    readonly_fields = ["state", "decided_on", "base", "proposed", "reason", "status", "requested_by", "decided_by",
                       "decided_at", "created_at"]

    def get_changelist_instance(self, request):
        """The page's change requests found together (``hooks.references``), not one flag change at a time."""
        changelist = super().get_changelist_instance(request)
        found = hooks.references(changes=changelist.result_list)
        for change in changelist.result_list:
            change.list_reference = found.get(change.pk)
        return changelist

    @admin.display(description="decided on")
    def decided_on(self, obj):
        found = obj.list_reference if hasattr(obj, "list_reference") else hooks.reference(change=obj)
        return format_html('<a href="{}">{}</a>', found[1], found[0]) if found else "—"

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False  # decided through its change request (services, audited), never edited

    def has_delete_permission(self, request, obj=None):
        return False  # the record of who proposed and who decided: reject or withdraw instead


class ApprovalPolicyForm(forms.ModelForm):
    request = None  # set per request by ApprovalPolicyAdmin.get_form

    class Meta:
        model = ApprovalPolicy
        fields = ["environment", "require_approval"]

    def clean(self):
        cleaned = super().clean()
        environment = cleaned.get("environment") or (self.instance.environment if self.instance.pk else None)
        user = getattr(self.request, "user", None)
        if environment is not None and user is not None:
            try:
                services.approval_policy_validate(environment=environment, by=user)
            except errors.DomainError as exc:
                raise forms.ValidationError(exc.text()) from None
        return cleaned


@admin.register(ApprovalPolicy)
class ApprovalPolicyAdmin(ServiceAdminMixin, AuditHistoryMixin, admin.ModelAdmin):
    form = ApprovalPolicyForm
    list_display = ["environment", "require_approval"]

    def get_form(self, request, obj=None, change=False, **kwargs):
        form = super().get_form(request, obj, change=change, **kwargs)
        form.request = request
        return form

    def get_readonly_fields(self, request, obj=None):
        return ["environment"] if obj else []

    def has_delete_permission(self, request, obj=None):
        return False  # untick "require approval" instead (audited)

    def save_model(self, request, obj, form, change):
        saved = services.approval_policy_set(environment=obj.environment, require_approval=obj.require_approval,
                                             by=request.user)
        obj.pk = saved.pk


@admin.register(FlagMetricsBucket)
class FlagMetricsBucketAdmin(admin.ModelAdmin):
    list_display = ["flag_key", "environment", "bucket_start", "yes", "no", "variants"]
    list_filter = ["environment"]
    search_fields = ["flag_key"]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False  # counts are written by the metrics service only
