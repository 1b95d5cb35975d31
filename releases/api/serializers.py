"""Serializers of the releases API: environments, releases with their plans, deployments with their steps
and gate results. Input is validated here; what is allowed is decided by the services."""
import django_filters
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from drf_spectacular.utils import extend_schema_field, inline_serializer
from rest_framework import serializers

from pmrelease import audit, providers
from pmrelease.api import PerUserFieldsMixin

from .. import access, selectors
from ..deploy import services as deploy_services
from ..models import (
    CommunicationPlan,
    Deployment,
    DeploymentStep,
    DeploymentStrategy,
    DeploymentTarget,
    Environment,
    EnvironmentAccess,
    GateResult,
    HealthCheck,
    Prerequisite,
    Release,
    ReleaseApproval,
    ReleaseNoteItem,
    RiskAssessment,
    RollbackPlan,
    RollbackStep,
    RollbackStrategy,
    RollbackTrigger,
    TestingGate,
    TestingRequirement,
    TriggerEvaluation,
)


# --- environments ------------------------------------------------------------------------------------
class RollbackTriggerSerializer(serializers.ModelSerializer):
    class Meta:
        model = RollbackTrigger
        fields = ["metric", "operator", "threshold", "duration", "action", "cooldown", "compare", "compare_mode",
                  "no_data", "scale_factor", "enabled"]


class DeploymentTriggerSerializer(RollbackTriggerSerializer):
    class Meta(RollbackTriggerSerializer.Meta):
        fields = ["id", *RollbackTriggerSerializer.Meta.fields, "last_fired_at"]


class TriggerEvaluationSerializer(serializers.ModelSerializer):
    trigger = serializers.PrimaryKeyRelatedField(read_only=True)
    value = serializers.FloatField(allow_null=True)
    baseline = serializers.FloatField(allow_null=True)

    class Meta:
        model = TriggerEvaluation
        fields = ["id", "trigger", "at", "decision", "value", "baseline", "detail", "source"]


class EnvironmentAccessSerializer(serializers.ModelSerializer):
    group = serializers.SlugRelatedField(slug_field="name", read_only=True)
    level = serializers.CharField(source="get_level_display", read_only=True)

    class Meta:
        model = EnvironmentAccess
        fields = ["group", "level", "note"]


class EnvironmentSerializer(serializers.ModelSerializer):
    promotes_to = serializers.SlugRelatedField(slug_field="name", queryset=Environment.objects.all(),
                                               allow_null=True, required=False)
    attached_to = serializers.SlugRelatedField(slug_field="name", queryset=Environment.objects.all(),
                                               allow_null=True, required=False)
    access = EnvironmentAccessSerializer(many=True, read_only=True)
    my_access = serializers.SerializerMethodField()
    current_release = serializers.PrimaryKeyRelatedField(read_only=True, allow_null=True)
    current_deployment = serializers.PrimaryKeyRelatedField(read_only=True, allow_null=True)
    rollback_triggers = RollbackTriggerSerializer(many=True, read_only=True,
                                                  help_text="The environment's default rollback triggers.")
    bake_seconds = serializers.IntegerField(read_only=True, help_text="How long a succeeded deployment is watched.")

    class Meta:
        model = Environment
        fields = ["id", "name", "display_name", "purpose", "tier", "position", "promotes_to", "attached_to",
                  "attachment", "infrastructure", "data_source", "data_retention", "data_backup", "is_active",
                  "current_version", "current_release", "current_since", "current_deployment",
                  "bake_minutes", "bake_seconds", "rollback_triggers",
                  "access", "my_access", "created_at", "updated_at"]
        read_only_fields = ["name", "current_version", "current_since", "created_at", "updated_at"]

    def get_my_access(self, obj) -> str:
        return access.access_level(self.context["request"].user, obj).label

    def validate_infrastructure(self, value):
        if not isinstance(value, dict):
            raise serializers.ValidationError("must be a JSON object of name → specification")
        return value


class LastDeploymentSerializer(serializers.ModelSerializer):
    release = serializers.CharField(source="release.version")
    requested_by = serializers.CharField(source="requested_by.username", allow_null=True, default=None)

    class Meta:
        model = Deployment
        fields = ["id", "release", "status", "strategy", "requested_by", "created_at", "started_at", "finished_at"]


class EnvironmentBoardSerializer(EnvironmentSerializer):
    """An environment with what runs there and its last deployment (the dashboard's data; the viewset passes
    ``last_deployments`` for the whole page in its context: one query)."""

    last_deployment = serializers.SerializerMethodField()

    class Meta(EnvironmentSerializer.Meta):
        fields = [*EnvironmentSerializer.Meta.fields, "last_deployment"]

    @extend_schema_field(LastDeploymentSerializer(allow_null=True))
    def get_last_deployment(self, obj):
        known = self.context.get("last_deployments")
        dep = known.get(obj.pk) if known is not None else selectors.last_deployments([obj.pk]).get(obj.pk)
        return LastDeploymentSerializer(dep).data if dep is not None else None


class TestingGateSerializer(serializers.ModelSerializer):
    class Meta:
        model = TestingGate
        fields = ["id", "slug", "name", "tests", "required", "timeout", "on_failure", "position"]


class HealthCheckSerializer(serializers.ModelSerializer):
    url = serializers.SerializerMethodField(help_text="the URL, with any password in it redacted")

    class Meta:
        model = HealthCheck
        fields = ["id", "name", "url", "expected_status", "timeout", "retries", "interval", "enabled"]

    def get_url(self, obj) -> str:
        return audit.redact(obj.url)


class EnvironmentDetailSerializer(EnvironmentBoardSerializer):
    """``GET /api/v1/environments/<name>/``: what a pipeline needs to know (never a secret): the testing gates
    to report (their slugs), health checks, the deployment target's kind, the metric provider's kind."""

    testing_gates = TestingGateSerializer(many=True, read_only=True)
    health_checks = HealthCheckSerializer(many=True, read_only=True)
    deployment_target = serializers.SerializerMethodField()
    metric_provider = serializers.SerializerMethodField()

    class Meta(EnvironmentBoardSerializer.Meta):
        fields = [*EnvironmentBoardSerializer.Meta.fields, "testing_gates", "health_checks", "deployment_target",
                  "metric_provider"]

    @extend_schema_field(inline_serializer("DeploymentTargetSummary", {
        "backend": serializers.CharField(), "default_strategy": serializers.CharField(),
        "concurrency": serializers.CharField()}, allow_null=True))
    def get_deployment_target(self, obj):
        target = DeploymentTarget.objects.filter(environment=obj).first()
        if target is None:
            return None
        return {"backend": target.backend, "default_strategy": target.default_strategy,
                "concurrency": target.concurrency}

    @extend_schema_field(inline_serializer("MetricProviderSummary", {"kind": serializers.CharField()},
                                           allow_null=True))
    def get_metric_provider(self, obj):
        if not providers.provider_for.provided:
            return None
        provider = providers.provider_for(obj)
        return {"kind": provider.kind} if provider is not None else None


# --- releases ----------------------------------------------------------------------------------------
class LinesField(serializers.ListField):
    """A list of strings stored as lines of text."""

    child = serializers.CharField(max_length=500)

    def to_representation(self, value):
        return [line.strip() for line in (value or "").splitlines() if line.strip()]

    def to_internal_value(self, data):
        return "\n".join(super().to_internal_value(data))


class ReleaseNoteItemSerializer(serializers.ModelSerializer):
    class Meta:
        model = ReleaseNoteItem
        fields = ["kind", "summary", "reference", "position"]


class PrerequisiteSerializer(serializers.ModelSerializer):
    class Meta:
        model = Prerequisite
        fields = ["type", "description", "status", "owner", "deadline"]


class RiskAssessmentSerializer(serializers.ModelSerializer):
    mitigation = LinesField(required=False)
    contingency = LinesField(required=False)

    class Meta:
        model = RiskAssessment
        fields = ["impact", "likelihood", "level", "mitigation", "contingency"]
        read_only_fields = ["level"]


class RollbackPlanSerializer(serializers.ModelSerializer):
    prerequisites = LinesField(required=False)
    validation = LinesField(required=False)

    class Meta:
        model = RollbackPlan
        fields = ["prerequisites", "validation", "communication"]


class RollbackStrategySerializer(serializers.ModelSerializer):
    class Meta:
        model = RollbackStrategy
        fields = ["type", "method", "estimated_duration", "risk"]


class RollbackStepSerializer(serializers.ModelSerializer):
    class Meta:
        model = RollbackStep
        fields = ["order", "description", "command", "verification", "timeout", "on_failure"]


class CommunicationPlanSerializer(serializers.ModelSerializer):
    class Meta:
        model = CommunicationPlan
        fields = ["internal", "customer", "stakeholders", "incident"]


class TestingRequirementSerializer(serializers.ModelSerializer):
    environment = serializers.SlugRelatedField(slug_field="name", queryset=Environment.objects.all(),
                                               allow_null=True, required=False)

    class Meta:
        model = TestingRequirement
        fields = ["name", "environment", "suites", "required"]


class ApprovalSerializer(serializers.ModelSerializer):
    approver = serializers.CharField(source="approver.username", read_only=True)

    class Meta:
        model = ReleaseApproval
        fields = ["approver", "round", "decision", "comment", "created_at"]


PLAN_SERIALIZERS = {
    "note_items": ReleaseNoteItemSerializer(many=True, required=False),
    "prerequisites": PrerequisiteSerializer(many=True, required=False),
    "risk_assessment": RiskAssessmentSerializer(required=False, allow_null=True),
    "rollback_plan": RollbackPlanSerializer(required=False, allow_null=True),
    "rollback_strategies": RollbackStrategySerializer(many=True, required=False),
    "rollback_steps": RollbackStepSerializer(many=True, required=False),
    "communication_plan": CommunicationPlanSerializer(required=False, allow_null=True),
    "testing_requirements": TestingRequirementSerializer(many=True, required=False),
    "rollback_triggers": RollbackTriggerSerializer(many=True, required=False),
}


class ReleaseSerializer(PerUserFieldsMixin, serializers.ModelSerializer):
    version = serializers.CharField(max_length=64, required=False,
                                    help_text="Omit to take the version proposed from the last release.")
    environments = serializers.SlugRelatedField(slug_field="name", many=True, queryset=Environment.objects.all(),
                                                required=False)
    required_approvers = serializers.SlugRelatedField(slug_field="username", many=True, required=False,
                                                      queryset=get_user_model().objects.all())
    required_roles = serializers.SlugRelatedField(slug_field="name", many=True, queryset=Group.objects.all(),
                                                  required=False)
    created_by = serializers.CharField(source="created_by.username", read_only=True, default=None)
    note_items = ReleaseNoteItemSerializer(
        many=True, required=False, help_text="The lines of the release notes (before 2026-12 this was `changes`, "
                                             "still accepted on input).")
    prerequisites = PrerequisiteSerializer(many=True, required=False)
    risk_assessment = RiskAssessmentSerializer(required=False, allow_null=True)
    rollback_plan = RollbackPlanSerializer(required=False, allow_null=True)
    rollback_strategies = RollbackStrategySerializer(many=True, required=False)
    rollback_steps = RollbackStepSerializer(many=True, required=False)
    communication_plan = CommunicationPlanSerializer(required=False, allow_null=True)
    testing_requirements = TestingRequirementSerializer(many=True, required=False)
    rollback_triggers = RollbackTriggerSerializer(
        many=True, required=False, help_text="The release's own triggers (empty: its environments' defaults).")
    approvals = ApprovalSerializer(many=True, read_only=True)
    approval_blockers = serializers.SerializerMethodField()
    available_transitions = serializers.SerializerMethodField()
    running_in = serializers.SerializerMethodField(
        help_text="Where the release runs now: [{environment, version, since, deployment}].")

    class Meta:
        model = Release
        fields = ["id", "version", "type", "title", "description", "status", "environments", "scheduled_for",
                  "scheduled_until", "required_approvers", "required_roles", "quorum", "approval_round",
                  "created_by", "created_at", "updated_at", "approved_at", "deployed_at", *PLAN_SERIALIZERS,
                  "approvals", "approval_blockers", "available_transitions", "running_in"]
        read_only_fields = ["status", "approval_round", "created_at", "updated_at", "approved_at", "deployed_at"]

    per_user_fields = ("approval_blockers", "available_transitions")

    def to_internal_value(self, data):
        if isinstance(data, dict) and "changes" in data and "note_items" not in data:
            data = {**data, "note_items": data["changes"]}  # the field's old name
            data.pop("changes")
        return super().to_internal_value(data)

    def to_representation(self, instance):
        data = super().to_representation(instance)
        for part in ("risk_assessment", "rollback_plan", "communication_plan"):
            data.setdefault(part, None)
        return data

    def get_approval_blockers(self, obj) -> list[str]:
        return selectors.approval_blockers(obj)

    def get_running_in(self, obj) -> list[dict]:
        envs = sorted(obj.running_in.all(), key=lambda env: (env.position, env.name))  # prefetched
        return [{"environment": env.name, "version": obj.version, "since": env.current_since,
                 "deployment": env.current_deployment_id} for env in envs]

    def get_available_transitions(self, obj) -> list[str]:
        return selectors.available_actions(obj, self.context["request"].user)

    def split(self):
        data = dict(self.validated_data)
        plan = {part: data.pop(part) for part in PLAN_SERIALIZERS if part in data}
        for part in ("risk_assessment", "rollback_plan", "communication_plan"):
            if part in plan and plan[part] is not None:
                plan[part] = dict(plan[part])
        for part in ("note_items", "prerequisites", "rollback_strategies", "rollback_steps", "testing_requirements",
                     "rollback_triggers"):
            if part in plan:
                plan[part] = [dict(item) for item in plan[part]]
        return data, plan


class TransitionSerializer(serializers.Serializer):
    comment = serializers.CharField(required=False, allow_blank=True, max_length=2000)
    reason = serializers.CharField(required=False, allow_blank=True, max_length=2000)


class ReleaseFilter(django_filters.FilterSet):
    environment = django_filters.CharFilter(field_name="environments__name")

    class Meta:
        model = Release
        fields = ["status", "type", "environment"]


# --- deployments -------------------------------------------------------------------------------------
class DeploymentStepSerializer(serializers.ModelSerializer):
    class Meta:
        model = DeploymentStep
        fields = ["position", "phase", "kind", "name", "params", "status", "attempts", "worker_losses",
                  "lease_generation", "lease_holder", "started_at", "finished_at", "resume_at", "outcome", "log"]


class GateResultSerializer(serializers.ModelSerializer):
    gate = serializers.CharField(source="gate.slug", read_only=True)
    gate_name = serializers.CharField(source="gate.name", read_only=True)
    on_failure = serializers.CharField(source="gate.on_failure", read_only=True)
    reported_by = serializers.CharField(source="reported_by.username", read_only=True, default=None, allow_null=True)
    overridden_by = serializers.CharField(source="overridden_by.username", read_only=True, default=None,
                                          allow_null=True)

    class Meta:
        model = GateResult
        fields = ["id", "gate", "gate_name", "on_failure", "attempt", "status", "tests", "passed", "failed", "errors",
                  "skipped", "url", "source", "details", "reported_by", "override_reason", "overridden_by",
                  "created_at"]


class DeploymentSerializer(PerUserFieldsMixin, serializers.ModelSerializer):
    release = serializers.SlugRelatedField(slug_field="version", queryset=Release.objects.all())
    environment = serializers.SlugRelatedField(slug_field="name", queryset=Environment.objects.all())
    strategy = serializers.ChoiceField(choices=DeploymentStrategy.choices, required=False)
    parameters = serializers.JSONField(required=False)
    steps = DeploymentStepSerializer(many=True, read_only=True)
    gate_results = GateResultSerializer(many=True, read_only=True)
    triggers = DeploymentTriggerSerializer(many=True, read_only=True,
                                           help_text="The rollback triggers this deployment watches (its own copy); "
                                                     "their evaluations: GET …/evaluations/")
    progress = serializers.SerializerMethodField()
    available_actions = serializers.SerializerMethodField()
    configuration = serializers.SerializerMethodField(
        help_text="The configuration differences this deployment met: its release's pinned version against the "
                  "environment's current one (null when the release pins none)")

    class Meta:
        model = Deployment
        fields = ["id", "release", "environment", "strategy", "parameters", "backend", "status", "auto_rollback",
                  "rolled_back_automatically", "previous_version", "current_step", "gate_attempt", "failure_reason",
                  "waiting_for", "created_at", "started_at", "finished_at", "progress", "available_actions", "steps",
                  "gate_results", "triggers", "configuration"]
        read_only_fields = ["backend", "status", "rolled_back_automatically", "previous_version", "current_step",
                            "failure_reason", "waiting_for", "created_at", "started_at", "finished_at"]

    per_user_fields = ("available_actions",)

    def get_configuration(self, obj) -> dict | None:
        found = getattr(obj, "config_diff", None) if hasattr(obj, "config_diff") else None
        if found is None:
            return None
        return {"pinned": str(found.pinned) if found.pinned else None,
                "current": str(found.current) if found.current else None,
                "changes": found.changes, "must_match": [c["path"] for c in found.must_match]}

    def get_progress(self, obj) -> dict:
        return obj.progress().as_dict()

    def get_available_actions(self, obj) -> list[str]:
        return deploy_services.available_actions(obj, self.context["request"].user)

    def validate_parameters(self, value):
        if not isinstance(value, dict):
            raise serializers.ValidationError("must be a JSON object")
        return value


class ActionSerializer(serializers.Serializer):
    reason = serializers.CharField(required=False, allow_blank=True, max_length=2000)


class GateResultInput(serializers.Serializer):
    passed = serializers.IntegerField(min_value=0, max_value=2**31 - 1, required=False)
    failed = serializers.IntegerField(min_value=0, max_value=2**31 - 1, required=False)
    url = serializers.URLField(required=False, allow_blank=True, max_length=500)
    junit = serializers.FileField(required=False, help_text="A JUnit XML report (multipart upload).")

    def validate(self, attrs):
        if "junit" not in attrs and ("passed" not in attrs or "failed" not in attrs):
            raise serializers.ValidationError("send either 'passed' and 'failed' counts, or a 'junit' XML file")
        return attrs
