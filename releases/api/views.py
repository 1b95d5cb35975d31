"""Views of the releases API (/api/v1/): environments, releases and deployments. Every write goes through a
service; the views validate input with the serializers and answer with them."""
from django.db.models import Q
from django.http import HttpResponse
from drf_spectacular.utils import OpenApiParameter, OpenApiTypes, extend_schema, inline_serializer
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.pagination import CursorPagination
from rest_framework.parsers import JSONParser
from rest_framework.response import Response

from pmrelease import errors, parsers
from pmrelease.api import history_action, transition_action
from pmrelease.lists import KeysetPages
from pmrelease.roles import Capability

from .. import access, configuration, environments, secrets, selectors, services
from ..deploy import gates
from ..deploy import services as deploy_services
from ..models import Deployment, ReleaseType, SecretReference
from . import configuration as config_api
from .serializers import (
    ActionSerializer,
    DeploymentSerializer,
    EnvironmentBoardSerializer,
    EnvironmentDetailSerializer,
    EnvironmentSerializer,
    GateResultInput,
    GateResultSerializer,
    ReleaseFilter,
    ReleaseSerializer,
    TransitionSerializer,
    TriggerEvaluationSerializer,
)

MAX_REPORT_BYTES = 10 * 1024 * 1024


class EvaluationPages(CursorPagination):
    ordering = ("-at", "-id")
    page_size = 100
    page_size_query_param = "page_size"
    max_page_size = 1000


class DeploymentPages(KeysetPages):
    """Deployments newest first in cursor pages, on the list's index (created_at, id)."""

    ordering = ("-created_at", "-id")


# --- environments ------------------------------------------------------------------------------------
class EnvironmentViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, mixins.UpdateModelMixin,
                         viewsets.GenericViewSet):
    """Environments you may see; editing needs administrative access to the environment."""

    serializer_class = EnvironmentSerializer
    lookup_field = "name"
    search_fields = ["name", "display_name", "purpose"]
    filterset_fields = ["tier", "is_active"]

    def get_queryset(self):
        environments_ = (access.visible_environments(self.request.user)
                         .select_related("promotes_to", "attached_to")
                         .prefetch_related("access__group", "rollback_triggers"))
        if self.action == "retrieve":
            environments_ = environments_.prefetch_related("testing_gates", "health_checks")
        return environments_

    def get_serializer_class(self):
        if self.action == "retrieve":
            return EnvironmentDetailSerializer
        if self.action == "list":
            return EnvironmentBoardSerializer
        return EnvironmentSerializer

    @extend_schema(summary="Environments with what runs there and their last deployment (the dashboard's data)")
    def list(self, request, *args, **kwargs):
        queryset = self.filter_queryset(self.get_queryset())
        page = self.paginate_queryset(queryset)
        rows = page if page is not None else list(queryset)
        context = {**self.get_serializer_context(),
                   "last_deployments": selectors.last_deployments([env.pk for env in rows])}
        data = EnvironmentBoardSerializer(rows, many=True, context=context).data
        return self.get_paginated_response(data) if page is not None else Response(data)

    @extend_schema(summary="An environment: its gates (slugs to report), health checks, deployment target kind, "
                           "metric provider, current version and last deployment (never a secret)")
    def retrieve(self, request, *args, **kwargs):
        return super().retrieve(request, *args, **kwargs)

    def perform_update(self, serializer):
        serializer.instance = environments.environment_update(
            environment=serializer.instance, data=dict(serializer.validated_data), by=self.request.user)

    # --- configuration (releases.configuration) ---
    @extend_schema(methods=["GET"], responses=config_api.ConfigVersionSerializer(many=True),
                   summary="An environment's configuration versions, newest first")
    @extend_schema(methods=["POST"], request=config_api.ConfigSaveInput,
                   responses={201: config_api.ConfigVersionSerializer, 200: config_api.ConfigVersionSerializer},
                   summary="Save a new configuration version (200 with the current one when nothing changed)")
    @action(detail=True, methods=["get", "post"], url_path="config/versions", pagination_class=None)
    def config_versions(self, request, name=None):
        env = self.get_object()
        if request.method == "POST":
            body = config_api.ConfigSaveInput(data=request.data)
            body.is_valid(raise_exception=True)
            version, created = configuration.config_save(environment=env, by=request.user,
                                                         document=body.validated_data["document"],
                                                         comment=body.validated_data.get("comment", ""))
            return Response(config_api.ConfigVersionSerializer(version).data,
                            status=status.HTTP_201_CREATED if created else status.HTTP_200_OK)
        versions = env.config_versions.select_related("environment", "author").order_by("-number")[:200]
        return Response(config_api.ConfigVersionSerializer(versions, many=True).data)

    @extend_schema(responses=config_api.ConfigVersionSerializer, summary="One configuration version")
    @action(detail=True, methods=["get"], url_path=r"config/versions/(?P<number>[0-9]{1,9})")
    def config_version(self, request, name=None, number=None):
        version = configuration.version_of(self.get_object(), int(number))
        return Response(config_api.ConfigVersionSerializer(version).data)

    @extend_schema(
        parameters=[OpenApiParameter("with", str, required=False, description="another environment's name: "
                                     "from this environment's current configuration to that one's"),
                    OpenApiParameter("from", int, required=False, description="a version of this environment"),
                    OpenApiParameter("to", int, required=False, description="a version (default: the current)")],
        responses=config_api.ChangeSerializer(many=True), summary="Compare configurations (versions or environments)")
    @action(detail=True, methods=["get"], url_path="config/compare", pagination_class=None)
    def config_compare(self, request, name=None):
        env = self.get_object()
        other = request.query_params.get("with")
        if other:
            right = access.visible_environments(request.user).filter(name=other).first()
            if right is None:
                raise errors.NotFound(f"no environment named {other!r} that you may see")
            return Response(configuration.compare_environments(env, right, by=request.user))
        numbers = {}
        for param in ("from", "to"):
            raw = request.query_params.get(param, "")
            if raw and (not raw.isdigit() or not 0 < int(raw) < 2_147_483_647):
                raise errors.ValidationFailed(f"{param}: a version number", field_errors={param: ["a number"]})
            numbers[param] = int(raw) if raw else None
        if numbers["from"] is None:
            raise errors.ValidationFailed("give ?with=<environment> or ?from=<version>[&to=<version>]",
                                          field_errors={"from": ["required without 'with'"]})
        before = configuration.version_of(env, numbers["from"])
        after = configuration.served(env, version=numbers["to"])
        return Response(configuration.compare(before, after))

    @extend_schema(responses=config_api.DriftSerializer(many=True),
                   summary="Drift: must-match configuration keys that differ between environments")
    @action(detail=False, methods=["get"], url_path="config-drift", pagination_class=None)
    def config_drift(self, request):
        return Response(configuration.drift(by=request.user))


# --- releases ----------------------------------------------------------------------------------------
def _release_transition(name):
    def run(release, data, user):
        text = data.get("reason") or data.get("comment") or ""
        return services.release_transition(release=release, name=name, by=user, text=text)

    return transition_action(name, run, request=TransitionSerializer, response=ReleaseSerializer,
                             summary=f"Release transition: {name}")


class ReleaseViewSet(viewsets.ModelViewSet):
    """Releases with their plan. Transitions: `POST /api/v1/releases/<id>/<transition>/`."""

    serializer_class = ReleaseSerializer
    token_write_scope = "releases:write"
    filterset_class = ReleaseFilter
    list_actions = ("list", "awaiting_my_approval")  # no per-user fields (queries per row) in lists
    search_fields = ["version", "title", "description"]
    ordering_fields = ["created_at", "scheduled_for", "version"]

    def get_queryset(self):
        releases = selectors.visible_releases(self.request.user)
        return (releases.select_related("created_by", "risk_assessment", "rollback_plan", "communication_plan")
                .prefetch_related("environments", "required_approvers", "required_roles", "note_items",
                                  "prerequisites", "rollback_strategies", "rollback_steps",
                                  "testing_requirements__environment", "approvals__approver", "running_in",
                                  "rollback_triggers"))

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

    approve = _release_transition("approve")
    reject = _release_transition("reject")
    redeploy = _release_transition("redeploy")
    history = history_action("Audit history of a release")

    @extend_schema(request=config_api.ConfigPinInput, responses=config_api.ConfigVersionSerializer,
                   summary="Pin the configuration version this release was tested with")
    @action(detail=True, methods=["post"], url_path="config-pin")
    def config_pin(self, request, pk=None):
        release = self.get_object()
        body = config_api.ConfigPinInput(data=request.data)
        body.is_valid(raise_exception=True)
        env = body.validated_data["environment"]
        access.require(request.user, [env], Capability.VIEW)
        version = configuration.served(env, version=body.validated_data.get("version"))
        configuration.release_pin(release=release, version=version, by=request.user)
        return Response(config_api.ConfigVersionSerializer(version).data)

    @extend_schema(parameters=[OpenApiParameter("environment", str, required=True)],
                   responses=config_api.ChangeSerializer(many=True),
                   summary="The configuration differences this release would meet in an environment")
    @action(detail=True, methods=["get"], url_path="config-diff", pagination_class=None)
    def config_diff(self, request, pk=None):
        release = self.get_object()
        name = request.query_params.get("environment", "")
        env = access.visible_environments(request.user).filter(name=name).first()
        if env is None:
            raise errors.ValidationFailed("environment: the name of an environment you may see",
                                          field_errors={"environment": ["unknown environment"]})
        found = configuration.promotion_diff(release, env)
        if found is None:
            raise errors.NotFound(f"release {release.version} pins no configuration")
        return Response(found["changes"])

    @extend_schema(responses={(200, "text/markdown"): str}, summary="Release notes (Markdown)")
    @action(detail=True, methods=["get"], url_path="notes")
    def notes(self, request, pk=None):
        release = self.get_object()
        response = HttpResponse(selectors.release_notes(release), content_type="text/markdown; charset=utf-8")
        if request.query_params.get("download"):
            response["Content-Disposition"] = f'attachment; filename="release-{release.version}.md"'
        return response

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
        return Response({"type": release_type, "latest": selectors.latest_version(),
                         "version": services.propose_version(release_type)})

    @extend_schema(responses=ReleaseSerializer(many=True), summary="Planned releases awaiting my approval (pages)")
    @action(detail=False, methods=["get"], url_path="awaiting-my-approval")
    def awaiting_my_approval(self, request):
        awaiting = [r.pk for r in selectors.awaiting_approval(request.user)]
        page = self.paginate_queryset(awaiting)
        by_pk = self.get_queryset().in_bulk(page)
        return self.get_paginated_response(self.get_serializer([by_pk[pk] for pk in page if pk in by_pk],
                                                               many=True).data)


# --- deployments -------------------------------------------------------------------------------------
class JUnitBodyParser(JSONParser):
    """Accept a raw ``application/xml`` body as a JUnit report."""

    media_type = "application/xml"

    def parse(self, stream, media_type=None, parser_context=None):
        return {"__raw_xml__": stream.read()}


def _deployment_action(name):
    def run(deployment, data, user):
        return deploy_services.deployment_action(deployment=deployment, name=name, by=user,
                                                 reason=data.get("reason", ""))

    return transition_action(name, run, request=ActionSerializer, response=DeploymentSerializer,
                             summary=f"Deployment action: {name}",
                             description="409 when not allowed in the current state, 403 without deploy access.")


class DeploymentViewSet(mixins.CreateModelMixin, mixins.ListModelMixin, mixins.RetrieveModelMixin,
                        viewsets.GenericViewSet):
    """Deployments of releases to environments. Actions: `POST /api/v1/deployments/<id>/<action>/`."""

    serializer_class = DeploymentSerializer
    token_write_scope = "deployments:write"
    token_scopes = {"gate_results": "gates:report"}
    filterset_fields = ["status", "strategy", "environment__name", "release__version"]
    pagination_class = DeploymentPages  # newest first in cursor pages: deployments grow forever
    ordering_fields = ["created_at", "id"]

    def get_queryset(self):
        where = Q(environment__in=access.visible_environments(self.request.user))
        if self.action == "gate_results":  # a gates:report token's own environments (pmrelease.tokens)
            where |= Q(environment__in=access.report_environments(self.request.user))
        return (Deployment.objects.filter(where)
                .select_related("release", "environment", "config_diff__pinned__environment", "config_diff__current")
                .prefetch_related("steps", "gate_results__gate", "gate_results__reported_by",
                                  "gate_results__overridden_by", "triggers"))

    def create(self, request, *args, **kwargs):
        serializer = self.get_serializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        dep = deploy_services.deployment_create(
            release=data["release"], environment=data["environment"], by=request.user,
            strategy=data.get("strategy"), parameters=data.get("parameters"),
            auto_rollback=data.get("auto_rollback", True))
        return Response(self.get_serializer(self.get_queryset().get(pk=dep.pk)).data, status=status.HTTP_201_CREATED)

    @extend_schema(summary="A deployment; `?wait=SECONDS` (0–60) waits for its next state (long-poll)",
                   description="With `?wait=SECONDS` the answer comes as soon as the deployment's state differs from "
                               "the `If-None-Match` ETag (or from its state when the request arrived), at once when "
                               "it is terminal, or after SECONDS unchanged: 304 when If-None-Match was sent, else 200 "
                               "with the unchanged body (`Retry-After: 0`: poll again at once). Every answer carries "
                               "the `ETag`. The step log as it happens: `GET /api/v1/deployments/<id>/events/` "
                               "(text/event-stream: `step`, `log`, `status` events, then `end`).")
    def retrieve(self, request, *args, **kwargs):
        return super().retrieve(request, *args, **kwargs)

    promote = _deployment_action("promote")
    pause = _deployment_action("pause")
    resume = _deployment_action("resume")
    abort = _deployment_action("abort")
    rollback = _deployment_action("rollback")
    retry = _deployment_action("retry")
    cancel = _deployment_action("cancel")

    @extend_schema(responses=TriggerEvaluationSerializer(many=True),
                   summary="The rollback-trigger evaluations of a deployment, newest first (cursor pages)")
    @action(detail=True, methods=["get"], url_path="evaluations", pagination_class=EvaluationPages)
    def evaluations(self, request, pk=None):
        dep = self.get_object()
        page = self.paginate_queryset(dep.evaluations.all())
        return self.get_paginated_response(TriggerEvaluationSerializer(page, many=True).data)

    @extend_schema(request={"application/json": GateResultInput, "multipart/form-data": GateResultInput,
                            "application/xml": OpenApiTypes.BINARY},
                   responses={201: GateResultSerializer}, summary="Report a testing-gate result (JSON or JUnit XML)")
    @action(detail=True, methods=["post"], url_path=r"gates/(?P<gate_ref>[-\w]+)/results",
            parser_classes=[parsers.JSONParser, parsers.MultiPartParser, parsers.FormParser, JUnitBodyParser])
    def gate_results(self, request, pk=None, gate_ref=None):
        dep = self.get_object()
        gate = gates.find_gate(dep, gate_ref)
        if "__raw_xml__" in request.data:  # a raw application/xml body
            result = deploy_services.gate_report(deployment=dep, gate=gate, by=request.user,
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
        result = deploy_services.gate_report(deployment=dep, gate=gate, by=request.user, passed=data.get("passed"),
                                             failed=data.get("failed"), url=data.get("url", ""),
                                             junit_xml=junit_xml)
        return Response(GateResultSerializer(result).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=ActionSerializer, responses={201: GateResultSerializer},
                   summary="Override a failed 'warn' gate with a reason")
    @action(detail=True, methods=["post"], url_path=r"gates/(?P<gate_ref>[-\w]+)/override")
    def gate_override(self, request, pk=None, gate_ref=None):
        dep = self.get_object()
        gate = gates.find_gate(dep, gate_ref)
        serializer = ActionSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        result = deploy_services.gate_override(deployment=dep, gate=gate, by=request.user,
                                               reason=serializer.validated_data.get("reason", ""))
        return Response(GateResultSerializer(result).data, status=status.HTTP_201_CREATED)


# --- secret references -----------------------------------------------------------------------------------------
class SecretReferenceViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, mixins.CreateModelMixin,
                             viewsets.GenericViewSet):
    """Secret references (never values) with their rotation policy and state."""

    serializer_class = config_api.SecretReferenceSerializer
    search_fields = ["name", "reference", "description"]

    def get_queryset(self):
        visible = access.visible_environments(self.request.user)
        qs = SecretReference.objects.select_related("environment", "owner")
        if not self.request.user.is_superuser:
            qs = qs.filter(environment__in=visible)
        return qs

    def perform_create(self, serializer):
        data = dict(serializer.validated_data)
        data["owner"] = self.request.user
        serializer.instance = secrets.reference_save(data=data, by=self.request.user)

    @extend_schema(responses=inline_serializer("RotationReport", {
        state: serializers.ListField(child=serializers.CharField()) for state in ("due", "in_grace", "overdue",
                                                                                  "unknown")}),
                   summary="Secret references needing rotation, by state")
    @action(detail=False, methods=["get"], url_path="rotation", pagination_class=None)
    def rotation(self, request):
        visible = set(self.get_queryset().values_list("pk", flat=True))
        report = secrets.rotation_report()
        return Response({state: [ref.name for ref, _ in rows if ref.pk in visible] for state, rows in report.items()})
