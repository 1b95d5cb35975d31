"""The flag management API under ``/api/v1/flags/`` (token or session auth; services decide what is allowed)."""
from django.contrib.auth import get_user_model
from django.shortcuts import get_object_or_404
from django.urls import path
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.decorators import api_view
from rest_framework.response import Response

from pmrelease import errors
from pmrelease.roles import Capability
from releases import access
from releases.models import Environment

from . import selectors, services, transfer
from .context import unleash_context
from .models import FeatureFlag, FlagChangeRequest, FlagEnvironment, GradualRollout, Segment


class StateSerializer(serializers.ModelSerializer):
    environment = serializers.CharField(source="environment.name")
    ramp = serializers.SerializerMethodField()

    class Meta:
        model = FlagEnvironment
        fields = ["environment", "enabled", "rollout", "strategies", "variants", "last_seen_at", "updated_at", "ramp"]

    def get_ramp(self, state):
        if hasattr(state, "open_ramps"):  # fetched with the flags (selectors.flags_with_states)
            ramp = state.open_ramps[0] if state.open_ramps else None
        else:
            ramp = state.ramps.filter(status__in=selectors.OPEN_RAMPS).first()
        return None if ramp is None else RampSerializer(ramp).data


class RampSerializer(serializers.ModelSerializer):
    class Meta:
        model = GradualRollout
        fields = ["id", "status", "steps", "current_step", "current_percentage", "next_step_at",
                  "previous_percentage", "created_at"]


class FlagSerializer(serializers.ModelSerializer):
    owner = serializers.SlugRelatedField(slug_field="username", read_only=True)
    parent = serializers.SlugRelatedField(slug_field="key", read_only=True)
    environments = serializers.SerializerMethodField()

    class Meta:
        model = FeatureFlag
        fields = ["key", "description", "type", "owner", "tags", "lifecycle", "impression_data", "parent",
                  "parent_enabled", "parent_variants", "dependencies", "monitoring_metrics", "monitoring_alerts",
                  "created_at", "updated_at", "environments"]
        read_only_fields = ["dependencies"]  # what is served: from the parent fields, or as imported

    def get_environments(self, flag):
        visible = self.context.get("visible")
        states = flag.states.all() if "states" in getattr(flag, "_prefetched_objects_cache", {}) \
            else flag.states.select_related("environment")
        return [StateSerializer(s).data for s in states if visible is None or s.environment_id in visible]


class ChangeSerializer(serializers.ModelSerializer):
    flag = serializers.CharField(source="state.flag.key")
    environment = serializers.CharField(source="state.environment.name")
    requested_by = serializers.SlugRelatedField(slug_field="username", read_only=True)
    decided_by = serializers.SlugRelatedField(slug_field="username", read_only=True)

    class Meta:
        model = FlagChangeRequest
        fields = ["id", "flag", "environment", "status", "base", "proposed", "reason", "requested_by", "decided_by",
                  "decided_at", "created_at"]


def _schema(operation_id, methods=("POST",)):
    """One OpenAPI operation per method (free-form JSON in and out) for these function views."""
    def decorate(view):
        for method in methods:
            view = extend_schema(methods=[method], operation_id=f"{operation_id}_{method.lower()}",
                                 request=OpenApiTypes.OBJECT, responses=OpenApiTypes.OBJECT)(view)
        return view

    return decorate


def _visible(user):
    return {pk for pk in access.visible_environments(user).values_list("pk", flat=True)}


def _state(request, key, env):
    environment = get_object_or_404(Environment, name=env)
    access.require(request.user, [environment], Capability.VIEW)
    flag = get_object_or_404(FeatureFlag, key=key)
    return services.state_for(flag, environment)


def _flag_data(data, extra=()):
    """The flag fields of a request body; 400 naming any field that is unknown or read-only."""
    unknown = set(data) - set(services.FLAG_FIELDS) - set(extra)
    if unknown:
        raise errors.ValidationFailed(f"unknown or read-only fields: {', '.join(sorted(unknown))}")
    result = {k: v for k, v in data.items() if k in services.FLAG_FIELDS and k not in ("owner", "parent")}
    if "owner" in data:
        owner = data["owner"]
        if owner in (None, ""):
            result["owner"] = None
        else:
            result["owner"] = get_user_model().objects.filter(username=owner).first() if isinstance(owner, str) \
                else None
            if result["owner"] is None:
                raise errors.ValidationFailed(f"owner {owner!r} is not a user name")
    if "parent" in data:
        parent = data["parent"]
        if parent and not isinstance(parent, str):
            raise errors.ValidationFailed(f"parent {parent!r} must be a flag key")
        result["parent"] = None if not parent else FeatureFlag.objects.filter(key=parent).first()
        if parent and result["parent"] is None:
            raise errors.ValidationFailed(f"parent flag {parent!r} does not exist")
    return result


def _proposed(change):
    """The answer when a change was proposed for a second person's approval instead of applied."""
    return Response(ChangeSerializer(change).data, status=status.HTTP_202_ACCEPTED)


def _require_object(request):
    if not isinstance(request.data, dict):
        raise errors.ValidationFailed("the body must be a JSON object")
    return request.data


@_schema("flags_flag_list", ["GET", "POST"])
@api_view(["GET", "POST"])
def flag_list(request):
    """GET: every flag with its state in the environments you can see. POST: create a flag."""
    if request.method == "POST":
        data = _require_object(request)
        flag = services.flag_create(key=data.get("key", ""), by=request.user, **_flag_data(data, extra=("key",)))
        return Response(FlagSerializer(flag, context={"visible": _visible(request.user)}).data, status=201)
    flags = selectors.flags_with_states().order_by("key")
    return Response(FlagSerializer(flags, many=True, context={"visible": _visible(request.user)}).data)


@_schema("flags_flag_detail", ["GET", "PATCH"])
@api_view(["GET", "PATCH"])
def flag_detail(request, key):
    flag = get_object_or_404(FeatureFlag, key=key)
    if request.method == "PATCH":
        data = _flag_data(_require_object(request), extra=("reason",))
        flag = services.flag_update(flag=flag, data=data, by=request.user, reason=request.data.get("reason", ""))
    return Response(FlagSerializer(flag, context={"visible": _visible(request.user)}).data)


@_schema("flags_state_detail", ["GET", "PATCH"])
@api_view(["GET", "PATCH"])
def state_detail(request, key, env):
    """PATCH enabled / strategies / variants / rollout. Where the environment needs a second person's
    approval the change is proposed instead (202 with the change request)."""
    state = _state(request, key, env)
    if request.method == "PATCH":
        data = _require_object(request)
        fields = {k: data[k] for k in services.STATE_FIELDS if k in data}
        unknown = set(data) - set(services.STATE_FIELDS) - {"reason"}
        if unknown:
            raise errors.ValidationFailed(f"unknown fields: {', '.join(sorted(unknown))}")
        state, change = services.flag_state_change(state=state, by=request.user, reason=data.get("reason", ""),
                                                   **fields)
        if change is not None:
            return _proposed(change)
    return Response(StateSerializer(state).data)


@_schema("flags_state_rollout", ["POST"])
@api_view(["POST"])
def state_rollout(request, key, env):
    """{"percentage": 0-100}: set the rollout percentage (enables the flag when > 0). Where the environment
    needs a second person's approval the change is proposed instead (202 with the change request)."""
    state = _state(request, key, env)
    data = _require_object(request)
    state, change = services.flag_rollout_change(state=state, percentage=data.get("percentage"), by=request.user,
                                                 reason=data.get("reason", ""))
    if change is not None:
        return _proposed(change)
    return Response(StateSerializer(state).data)


@_schema("flags_ramp_start", ["POST"])
@api_view(["POST"])
def ramp_start(request, key, env):
    """{"steps": [{"percentage", "minutes"}...] or "5,25@60,100@60"}: start a gradual rollout."""
    state = _state(request, key, env)
    data = _require_object(request)
    ramp = services.ramp_start(state=state, steps=data.get("steps"), stickiness=data.get("stickiness", "default"),
                               by=request.user, reason=data.get("reason", ""))
    return Response(RampSerializer(ramp).data, status=201)


@_schema("flags_ramp_action", ["POST"])
@api_view(["POST"])
def ramp_action(request, key, env, action):
    state = _state(request, key, env)
    reason = request.data.get("reason", "") if isinstance(request.data, dict) else ""
    ramp = services.ramp_action(state=state, action=action, by=request.user, reason=reason)
    return Response(RampSerializer(ramp).data)


@_schema("flags_state_evaluate", ["POST"])
@api_view(["POST"])
def state_evaluate(request, key, env):
    """{"context": {...}}: evaluate as that context; says which strategy / constraint decided."""
    state = _state(request, key, env)
    data = _require_object(request)
    try:
        ctx = unleash_context(data.get("context") or {}, environment=env, remote_address="")
    except ValueError as exc:
        raise errors.ValidationFailed(str(exc)) from None
    result = services.evaluate_as(flag=state.flag, environment=state.environment, context=ctx)
    return Response({"enabled": result.enabled, "variant": result.variant_dict(), "reason": result.reason,
                     "strategy": result.strategy_name, "explanation": result.explanation, "context": ctx})


@_schema("flags_export", ["GET"])
@api_view(["GET"])
def export(request):
    """?environment=NAME: the environment's flags as an Unleash client-features document."""
    environment = get_object_or_404(Environment, name=request.query_params.get("environment", ""))
    access.require(request.user, [environment], Capability.VIEW)
    return Response(transfer.export_document(environment))


@_schema("flags_segment_list", ["GET", "POST"])
@api_view(["GET", "POST"])
def segment_list(request):
    if request.method == "POST":
        data = _require_object(request)
        segment = services.segment_save(name=data.get("name", ""), constraints=data.get("constraints", []),
                                        description=data.get("description", ""), by=request.user)
        return Response(segment.as_unleash(), status=201)
    return Response([s.as_unleash() | {"description": s.description} for s in Segment.objects.all()])


@_schema("flags_change_list", ["GET"])
@api_view(["GET"])
def change_list(request):
    visible = _visible(request.user)
    changes = FlagChangeRequest.objects.select_related("state__flag", "state__environment", "requested_by",
                                                       "decided_by").filter(state__environment_id__in=visible)
    if request.query_params.get("status"):
        changes = changes.filter(status=request.query_params["status"])
    return Response(ChangeSerializer(changes, many=True).data)


@_schema("flags_change_decide", ["POST"])
@api_view(["POST"])
def change_decide(request, pk, decision):
    change = get_object_or_404(FlagChangeRequest, pk=pk)
    if decision not in ("approve", "reject"):
        raise errors.ValidationFailed(f"unknown decision {decision!r} (approve or reject)")
    comment = request.data.get("comment", "") if isinstance(request.data, dict) else ""
    change = services.change_request_decide(change=change, by=request.user, approve=decision == "approve",
                                            comment=comment)
    return Response(ChangeSerializer(change).data)


urlpatterns = [
    path("", flag_list, name="flag-list"),
    path("export/", export, name="flag-export"),
    path("segments/", segment_list, name="flag-segments"),
    path("changes/", change_list, name="flag-changes"),
    path("changes/<int:pk>/<str:decision>/", change_decide, name="flag-change-decide"),
    path("<str:key>/", flag_detail, name="flag-detail"),
    path("<str:key>/environments/<str:env>/", state_detail, name="flag-state"),
    path("<str:key>/environments/<str:env>/rollout/", state_rollout, name="flag-rollout"),
    path("<str:key>/environments/<str:env>/evaluate/", state_evaluate, name="flag-evaluate"),
    path("<str:key>/environments/<str:env>/ramp/", ramp_start, name="flag-ramp"),
    path("<str:key>/environments/<str:env>/ramp/<str:action>/", ramp_action, name="flag-ramp-action"),
]
