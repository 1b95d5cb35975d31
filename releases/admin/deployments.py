"""Admin of deployments: the live page of a deployment (steps, logs, progress), its operator actions and
gate results. Deployments start from a release's page; everything here calls ``releases.deploy.services``."""
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import HttpResponseNotAllowed, HttpResponseRedirect, JsonResponse
from django.shortcuts import get_object_or_404
from django.urls import path, reverse
from django.utils.html import format_html

from pmrelease import errors
from pmrelease.admin import AuditHistoryMixin, error_message, status_badge
from pmrelease.lists import BoundedCountPaginator
from pmrelease.roles import Capability

from .. import access
from ..deploy import gates, triggers
from ..deploy import services as deploy_services
from ..models import Deployment, TestingGate

ACTION_LABELS = {"promote": "Promote", "pause": "Pause", "resume": "Resume", "abort": "Abort (roll back)",
                 "rollback": "Roll back", "retry": "Retry failed step", "cancel": "Cancel"}


def _buttons(dep, user):
    """[(name, label, needs a reason)] of the operator actions ``user`` may take on ``dep`` now."""
    return [(name, ACTION_LABELS[name], deploy_services.ACTION_TEXT[name])
            for name in deploy_services.available_actions(dep, user)]


@admin.register(Deployment)
class DeploymentAdmin(AuditHistoryMixin, admin.ModelAdmin):
    change_form_template = "admin/releases/deployment/change_form.html"
    list_display = ["id", "release", "environment", "strategy", "status_badge", "progress_bar", "started_at",
                    "finished_at"]
    list_filter = ["status", "strategy", "environment", "backend"]
    # Deployments grow forever: one bounded count per page, not two full ones (issue 18).
    paginator = BoundedCountPaginator
    show_full_result_count = False
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
        return status_badge(obj)

    @admin.display(description="progress")
    def progress_bar(self, obj):
        progress = obj.progress()
        return format_html('<progress max="100" value="{}" aria-label="{}% of steps done"></progress> {}/{}',
                           progress.percent, progress.percent, progress.done, progress.total)

    def change_view(self, request, object_id, form_url="", extra_context=None):
        dep = self.get_object(request, object_id)
        extra_context = extra_context or {}
        if dep is not None:
            extra_context |= self._live_context(request, dep)
        return super().change_view(request, object_id, form_url, extra_context)

    def _live_context(self, request, dep):
        may_deploy = access.can(request.user, dep.environment, Capability.DEPLOY)
        return {"deployment_actions": _buttons(dep, request.user), "progress": dep.progress().as_dict(),
                "gates": gates.gate_states_for_display(dep), "may_override": may_deploy,
                "trigger_charts": triggers.charts(dep),
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
            deploy_services.deployment_action(deployment=dep, name=name, by=request.user,
                                              reason=request.POST.get("text", ""))
        except errors.DomainError as exc:
            error_message(request, exc)
        else:
            self.message_user(request, f"{ACTION_LABELS[name]}: deployment #{dep.pk} is now "
                                       f"{Deployment.objects.get(pk=dep.pk).get_status_display().lower()}.",
                              messages.SUCCESS)
        return HttpResponseRedirect(reverse("admin:releases_deployment_change", args=[object_id]))

    def override_view(self, request, object_id, gate_id):
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        dep = self._get(request, object_id)
        gate = get_object_or_404(TestingGate, pk=gate_id, environment=dep.environment)
        try:
            deploy_services.gate_override(deployment=dep, gate=gate, by=request.user,
                                          reason=request.POST.get("text", ""))
        except errors.DomainError as exc:
            error_message(request, exc)
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
                result = deploy_services.gate_report(deployment=dep, gate=gate, by=request.user, passed=passed,
                                                     failed=failed, url=request.POST.get("url", ""))
            except errors.DomainError as exc:
                error_message(request, exc)
            else:
                self.message_user(request, f"{gate.name}: {result.get_status_display().lower()} recorded.",
                                  messages.SUCCESS)
        return HttpResponseRedirect(reverse("admin:releases_deployment_change", args=[object_id]))

    def progress_view(self, request, object_id):
        """What the change page polls to show the deployment live."""
        dep = self._get(request, object_id)
        steps = [{"position": s.position, "phase": s.phase, "name": s.name, "status": s.status,
                  "attempts": s.attempts, "worker_losses": s.worker_losses, "outcome": s.outcome,
                  "started_at": s.started_at and s.started_at.isoformat(),
                  "finished_at": s.finished_at and s.finished_at.isoformat(),
                  "log": [f"{line.get('t', '')} {line.get('msg', '')}".strip() for line in s.log[-8:]]}
                 for s in dep.steps.all()]
        return JsonResponse({
            "status": dep.status, "status_display": dep.get_status_display(), "waiting_for": dep.waiting_for,
            "failure_reason": dep.failure_reason, "progress": dep.progress().as_dict(),
            "actions": deploy_services.available_actions(dep, request.user),
            "steps": steps, "finished": dep.is_finished,
        })
