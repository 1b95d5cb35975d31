"""REST API for environments and releases (/api/v1/)."""
import django_filters
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.http import HttpResponse
from drf_spectacular.utils import OpenApiParameter, extend_schema, inline_serializer
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response

from pmrelease.api import AuditEventSerializer
from pmrelease.models import AuditEvent

from . import access, services
from .models import (
    CommunicationPlan,
    Environment,
    EnvironmentAccess,
    Prerequisite,
    Release,
    ReleaseApproval,
    ReleaseChange,
    ReleaseStatus,
    ReleaseType,
    RiskAssessment,
    RollbackPlan,
    RollbackStep,
    RollbackStrategy,
    TestingRequirement,
)


# --- environments ------------------------------------------------------------------------------------
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

    class Meta:
        model = Environment
        fields = ["id", "name", "display_name", "purpose", "tier", "position", "promotes_to", "attached_to",
                  "attachment", "infrastructure", "data_source", "data_retention", "data_backup", "is_active",
                  "access", "my_access", "created_at", "updated_at"]
        read_only_fields = ["name", "created_at", "updated_at"]

    def get_my_access(self, obj) -> str:
        return access.access_level(self.context["request"].user, obj).label

    def validate_infrastructure(self, value):
        if not isinstance(value, dict):
            raise serializers.ValidationError("must be a JSON object of name → specification")
        return value


class EnvironmentViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, mixins.UpdateModelMixin,
                         viewsets.GenericViewSet):
    """Environments you may see; editing needs administrative access to the environment."""

    serializer_class = EnvironmentSerializer
    lookup_field = "name"
    search_fields = ["name", "display_name", "purpose"]
    filterset_fields = ["tier", "is_active"]

    def get_queryset(self):
        return (access.visible_environments(self.request.user)
                .select_related("promotes_to", "attached_to").prefetch_related("access__group"))

    def perform_update(self, serializer):
        serializer.instance = services.environment_update(
            environment=serializer.instance, data=dict(serializer.validated_data), by=self.request.user)


# --- releases ----------------------------------------------------------------------------------------
class LinesField(serializers.ListField):
    """A list of strings stored as lines of text."""

    child = serializers.CharField(max_length=500)

    def to_representation(self, value):
        return [line.strip() for line in (value or "").splitlines() if line.strip()]

    def to_internal_value(self, data):
        return "\n".join(super().to_internal_value(data))


class ReleaseChangeSerializer(serializers.ModelSerializer):
    class Meta:
        model = ReleaseChange
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
    "changes": ReleaseChangeSerializer(many=True, required=False),
    "prerequisites": PrerequisiteSerializer(many=True, required=False),
    "risk_assessment": RiskAssessmentSerializer(required=False, allow_null=True),
    "rollback_plan": RollbackPlanSerializer(required=False, allow_null=True),
    "rollback_strategies": RollbackStrategySerializer(many=True, required=False),
    "rollback_steps": RollbackStepSerializer(many=True, required=False),
    "communication_plan": CommunicationPlanSerializer(required=False, allow_null=True),
    "testing_requirements": TestingRequirementSerializer(many=True, required=False),
}


class ReleaseSerializer(serializers.ModelSerializer):
    version = serializers.CharField(max_length=64, required=False,
                                    help_text="Omit to take the version proposed from the last release.")
    environments = serializers.SlugRelatedField(slug_field="name", many=True, queryset=Environment.objects.all(),
                                                required=False)
    required_approvers = serializers.SlugRelatedField(slug_field="username", many=True, required=False,
                                                      queryset=get_user_model().objects.all())
    required_roles = serializers.SlugRelatedField(slug_field="name", many=True, queryset=Group.objects.all(),
                                                  required=False)
    created_by = serializers.CharField(source="created_by.username", read_only=True, default=None)
    changes = ReleaseChangeSerializer(many=True, required=False)
    prerequisites = PrerequisiteSerializer(many=True, required=False)
    risk_assessment = RiskAssessmentSerializer(required=False, allow_null=True)
    rollback_plan = RollbackPlanSerializer(required=False, allow_null=True)
    rollback_strategies = RollbackStrategySerializer(many=True, required=False)
    rollback_steps = RollbackStepSerializer(many=True, required=False)
    communication_plan = CommunicationPlanSerializer(required=False, allow_null=True)
    testing_requirements = TestingRequirementSerializer(many=True, required=False)
    approvals = ApprovalSerializer(many=True, read_only=True)
    approval_blockers = serializers.SerializerMethodField()
    available_transitions = serializers.SerializerMethodField()

    class Meta:
        model = Release
        fields = ["id", "version", "type", "title", "description", "status", "environments", "scheduled_for",
                  "scheduled_until", "required_approvers", "required_roles", "quorum", "approval_round",
                  "created_by", "created_at", "updated_at", "approved_at", "deployed_at", *PLAN_SERIALIZERS,
                  "approvals", "approval_blockers", "available_transitions"]
        read_only_fields = ["status", "approval_round", "created_at", "updated_at", "approved_at", "deployed_at"]

    def get_fields(self):
        fields = super().get_fields()
        view = self.context.get("view")
        if view is not None and getattr(view, "action", None) == "list":
            # per-user checks cost several queries a release: the list leaves them to the detail view
            fields.pop("approval_blockers")
            fields.pop("available_transitions")
        return fields

    def to_representation(self, instance):
        data = super().to_representation(instance)
        for part in ("risk_assessment", "rollback_plan", "communication_plan"):
            data.setdefault(part, None)
        return data

    def get_approval_blockers(self, obj) -> list[str]:
        return obj.approval_blockers() if obj.status == ReleaseStatus.PLANNED else []

    def get_available_transitions(self, obj) -> list[str]:
        return [a.name for a in services.available_actions(obj, self.context["request"].user)]

    def split(self):
        data = dict(self.validated_data)
        plan = {part: data.pop(part) for part in PLAN_SERIALIZERS if part in data}
        for part in ("risk_assessment", "rollback_plan", "communication_plan"):
            if part in plan and plan[part] is not None:
                plan[part] = dict(plan[part])
        for part in ("changes", "prerequisites", "rollback_strategies", "rollback_steps", "testing_requirements"):
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


def _transition_view(name):
    @extend_schema(request=TransitionSerializer, responses={200: ReleaseSerializer},
                   summary=f"Release transition: {name}",
                   description=f"`{name}`: 409 when not allowed from the current state, 403 without permission.")
    def view(self, request, pk=None):
        serializer = TransitionSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        text = serializer.validated_data.get("reason") or serializer.validated_data.get("comment") or ""
        release = services.release_transition(release=self.get_object(), name=name, by=request.user, text=text)
        return Response(ReleaseSerializer(release, context=self.get_serializer_context()).data)

    view.__name__ = name
    return action(detail=True, methods=["post"], url_path=name)(view)


class ReleaseViewSet(viewsets.ModelViewSet):
    """Releases with their plan. Transitions: `POST /api/v1/releases/<id>/<transition>/`."""

    serializer_class = ReleaseSerializer
    filterset_class = ReleaseFilter
    search_fields = ["version", "title", "description"]
    ordering_fields = ["created_at", "scheduled_for", "version"]

    def get_queryset(self):
        return (Release.objects.select_related("created_by", "risk_assessment", "rollback_plan", "communication_plan")
                .prefetch_related("environments", "required_approvers", "required_roles", "changes",
                                  "prerequisites", "rollback_strategies", "rollback_steps", "testing_requirements",
                                  "approvals__approver"))

    def create(self, request, *args, **kwargs):
        serializer = self.get_serializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data, plan = serializer.split()
        release = services.release_create(data=data, plan=plan, by=request.user)
        return Response(self.get_serializer(release).data, status=status.HTTP_201_CREATED)

    def update(self, request, *args, **kwargs):
        partial = kwargs.pop("partial", False)
        instance = self.get_object()
        serializer = self.get_serializer(instance, data=request.data, partial=partial)
        serializer.is_valid(raise_exception=True)
        data, plan = serializer.split()
        release = services.release_update(release=instance, data=data, plan=plan, by=request.user)
        return Response(self.get_serializer(self.get_queryset().get(pk=release.pk)).data)

    def destroy(self, request, *args, **kwargs):
        services.release_delete(release=self.get_object(), by=request.user)
        return Response(status=status.HTTP_204_NO_CONTENT)

    approve = _transition_view("approve")
    reject = _transition_view("reject")
    deploy = _transition_view("deploy")
    complete = _transition_view("complete")
    fail = _transition_view("fail")
    rollback = _transition_view("rollback")

    @extend_schema(responses={(200, "text/markdown"): str}, summary="Release notes (Markdown)")
    @action(detail=True, methods=["get"], url_path="notes")
    def notes(self, request, pk=None):
        release = self.get_object()
        response = HttpResponse(services.release_notes(release), content_type="text/markdown; charset=utf-8")
        if request.query_params.get("download"):
            response["Content-Disposition"] = f'attachment; filename="release-{release.version}.md"'
        return response

    @extend_schema(responses=AuditEventSerializer(many=True), summary="Audit history of a release")
    @action(detail=True, methods=["get"], url_path="history")
    def history(self, request, pk=None):
        release = self.get_object()
        events = AuditEvent.objects.for_object(release)
        return Response(AuditEventSerializer(events, many=True).data)

    @extend_schema(
        parameters=[OpenApiParameter("type", str, enum=ReleaseType.values, required=True)],
        responses=inline_serializer("ProposedVersion", {"type": serializers.CharField(),
                                                        "latest": serializers.CharField(allow_null=True),
                                                        "version": serializers.CharField()}),
        summary="The version a new release of this type would get",
    )
    @action(detail=False, methods=["get"], url_path="propose-version")
    def propose_version(self, request):
        release_type = request.query_params.get("type")
        if release_type not in ReleaseType.values:
            return Response({"type": [f"must be one of {', '.join(ReleaseType.values)}"]},
                            status=status.HTTP_400_BAD_REQUEST)
        return Response({"type": release_type, "latest": services.latest_version(),
                         "version": services.propose_version(release_type)})

    @extend_schema(responses=ReleaseSerializer(many=True), summary="Planned releases awaiting my approval")
    @action(detail=False, methods=["get"], url_path="awaiting-my-approval")
    def awaiting_my_approval(self, request):
        releases = services.awaiting_approval(request.user)
        return Response(self.get_serializer(releases, many=True).data)


