"""REST API for deployments: create, operator actions, step progress, gate results and overrides."""
from drf_spectacular.utils import OpenApiTypes, extend_schema
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.parsers import FormParser, JSONParser, MultiPartParser
from rest_framework.response import Response

from pmrelease import errors

from . import access, deployments
from .models import Deployment, DeploymentStep, DeploymentStrategy, Environment, GateResult, Release

MAX_REPORT_BYTES = 10 * 1024 * 1024


class DeploymentStepSerializer(serializers.ModelSerializer):
    class Meta:
        model = DeploymentStep
        fields = ["position", "phase", "kind", "name", "params", "status", "attempts", "started_at", "finished_at",
                  "resume_at", "outcome", "log"]


class GateResultSerializer(serializers.ModelSerializer):
    gate = serializers.CharField(source="gate.slug", read_only=True)
    gate_name = serializers.CharField(source="gate.name", read_only=True)
    on_failure = serializers.CharField(source="gate.on_failure", read_only=True)
    reported_by = serializers.CharField(source="reported_by.username", read_only=True, default=None)
    overridden_by = serializers.CharField(source="overridden_by.username", read_only=True, default=None)

    class Meta:
        model = GateResult
        fields = ["id", "gate", "gate_name", "on_failure", "status", "tests", "passed", "failed", "errors", "skipped",
                  "url", "source", "details", "reported_by", "override_reason", "overridden_by", "created_at"]


class DeploymentSerializer(serializers.ModelSerializer):
    release = serializers.SlugRelatedField(slug_field="version", queryset=Release.objects.all())
    environment = serializers.SlugRelatedField(slug_field="name", queryset=Environment.objects.all())
    strategy = serializers.ChoiceField(choices=DeploymentStrategy.choices, required=False)
    parameters = serializers.JSONField(required=False)
    steps = DeploymentStepSerializer(many=True, read_only=True)
    gate_results = GateResultSerializer(many=True, read_only=True)
    progress = serializers.SerializerMethodField()
    available_actions = serializers.SerializerMethodField()

    class Meta:
        model = Deployment
        fields = ["id", "release", "environment", "strategy", "parameters", "backend", "status", "auto_rollback",
                  "previous_version", "current_step", "failure_reason", "waiting_for", "created_at", "started_at",
                  "finished_at", "progress", "available_actions", "steps", "gate_results"]
        read_only_fields = ["backend", "status", "previous_version", "current_step", "failure_reason", "waiting_for",
                            "created_at", "started_at", "finished_at"]

    def get_fields(self):
        fields = super().get_fields()
        view = self.context.get("view")
        if view is not None and getattr(view, "action", None) == "list":
            fields.pop("available_actions")  # per-user checks: on the detail view
        return fields

    def get_progress(self, obj) -> dict:
        done, total = obj.progress()
        return {"done": done, "total": total, "percent": round(100 * done / total) if total else 0}

    def get_available_actions(self, obj) -> list[str]:
        return [name for name, _, _ in deployments.available_actions(obj, self.context["request"].user)]

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


class JUnitBodyParser(JSONParser):
    """Accept a raw ``application/xml`` body as a JUnit report."""

    media_type = "application/xml"

    def parse(self, stream, media_type=None, parser_context=None):
        return {"__raw_xml__": stream.read()}


def _action_view(name):
    @extend_schema(request=ActionSerializer, responses={200: DeploymentSerializer},
                   summary=f"Deployment action: {name}",
                   description="409 when not allowed in the current state, 403 without deploy access.")
    def view(self, request, pk=None):
        serializer = ActionSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        dep = deployments.deployment_action(deployment=self.get_object(), name=name, by=request.user,
                                            reason=serializer.validated_data.get("reason", ""))
        return Response(DeploymentSerializer(self.get_queryset().get(pk=dep.pk), context=self.get_serializer_context()).data)

    view.__name__ = name
    return action(detail=True, methods=["post"], url_path=name)(view)


class DeploymentViewSet(mixins.CreateModelMixin, mixins.ListModelMixin, mixins.RetrieveModelMixin,
                        viewsets.GenericViewSet):
    """Deployments of releases to environments. Actions: `POST /api/v1/deployments/<id>/<action>/`."""

    serializer_class = DeploymentSerializer
    filterset_fields = ["status", "strategy", "environment__name", "release__version"]
    ordering_fields = ["created_at", "id"]

    def get_queryset(self):
        return (Deployment.objects.filter(environment__in=access.visible_environments(self.request.user))
                .select_related("release", "environment").prefetch_related("steps", "gate_results__gate"))

    def create(self, request, *args, **kwargs):
        serializer = self.get_serializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        dep = deployments.deployment_create(release=data["release"], environment=data["environment"], by=request.user,
                                            strategy=data.get("strategy"), parameters=data.get("parameters"),
                                            auto_rollback=data.get("auto_rollback", True))
        return Response(self.get_serializer(self.get_queryset().get(pk=dep.pk)).data, status=status.HTTP_201_CREATED)

    promote = _action_view("promote")
    pause = _action_view("pause")
    resume = _action_view("resume")
    abort = _action_view("abort")
    rollback = _action_view("rollback")
    retry = _action_view("retry")
    cancel = _action_view("cancel")

    @extend_schema(request={"application/json": GateResultInput, "multipart/form-data": GateResultInput,
                            "application/xml": OpenApiTypes.BINARY},
                   responses={201: GateResultSerializer}, summary="Report a testing-gate result (JSON or JUnit XML)")
    @action(detail=True, methods=["post"], url_path=r"gates/(?P<gate_ref>[-\w]+)/results",
            parser_classes=[JSONParser, MultiPartParser, FormParser, JUnitBodyParser])
    def gate_results(self, request, pk=None, gate_ref=None):
        dep = self.get_object()
        gate = deployments.find_gate(dep, gate_ref)
        if "__raw_xml__" in request.data:  # a raw application/xml body
            result = deployments.gate_report(deployment=dep, gate=gate, by=request.user,
                                             junit_xml=request.data["__raw_xml__"][:MAX_REPORT_BYTES + 1],
                                             url=request.query_params.get("url", ""))
            return Response(GateResultSerializer(result).data, status=status.HTTP_201_CREATED)
        serializer = GateResultInput(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        junit_xml = None
        if "junit" in data:
            upload = data["junit"]
            if upload.size > MAX_REPORT_BYTES:
                raise errors.ValidationFailed("report too large", field_errors={"junit": ["larger than 10 MiB"]})
            junit_xml = upload.read()
        result = deployments.gate_report(deployment=dep, gate=gate, by=request.user, passed=data.get("passed"),
                                         failed=data.get("failed"), url=data.get("url", ""), junit_xml=junit_xml)
        return Response(GateResultSerializer(result).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=ActionSerializer, responses={201: GateResultSerializer},
                   summary="Override a failed 'warn' gate with a reason")
    @action(detail=True, methods=["post"], url_path=r"gates/(?P<gate_ref>[-\w]+)/override")
    def gate_override(self, request, pk=None, gate_ref=None):
        dep = self.get_object()
        gate = deployments.find_gate(dep, gate_ref)
        serializer = ActionSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        result = deployments.gate_override(deployment=dep, gate=gate, by=request.user,
                                           reason=serializer.validated_data.get("reason", ""))
        return Response(GateResultSerializer(result).data, status=status.HTTP_201_CREATED)
