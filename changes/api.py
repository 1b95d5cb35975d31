"""The change-management API: change requests and their transitions, windows, freezes, templates, the approval
queue and the compliance report (serializers, views and routes; every write goes through ``services``)."""
import datetime as dt

import django_filters
from django.contrib.auth import get_user_model
from django.urls import path
from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_field, inline_serializer
from rest_framework import permissions, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.renderers import BaseRenderer, JSONRenderer
from rest_framework.response import Response
from rest_framework.routers import SimpleRouter
from rest_framework.views import APIView

from pmrelease import errors
from pmrelease.api import PerUserFieldsMixin, history_action, transition_action
from pmrelease.filters import IsoDateTimeFilter
from releases import access
from releases.models import Deployment, Environment, Release

from . import compliance, selectors, services
from .models import (
    ChangeApproval,
    ChangeClass,
    ChangeFreeze,
    ChangeRequest,
    ChangeStatus,
    ChangeTemplate,
    ChangeWindow,
    CloseCode,
    RiskLevel,
)
from .policy import POLICY


def _environments():
    return serializers.SlugRelatedField(slug_field="name", many=True, queryset=Environment.objects.all())


class ChangeApprovalSerializer(serializers.ModelSerializer):
    approver = serializers.CharField(source="approver.username", read_only=True)

    class Meta:
        model = ChangeApproval
        fields = ["approver", "round", "decision", "comment", "created_at"]


class ChangeRequestSerializer(PerUserFieldsMixin, serializers.ModelSerializer):
    environments = _environments()
    template = serializers.PrimaryKeyRelatedField(queryset=ChangeTemplate.objects.all(), required=False,
                                                  allow_null=True, help_text="An approved template: a standard change.")
    implementer = serializers.SlugRelatedField(slug_field="username", required=False, allow_null=True,
                                               queryset=get_user_model().objects.filter(is_active=True))
    change_class = serializers.ChoiceField(
        choices=ChangeClass.choices, default=ChangeClass.NORMAL,
        help_text="normal or emergency on creation; a standard change comes from `template`, a flag change from "
                  "the flags API.")
    requested_by = serializers.CharField(source="requested_by.username", read_only=True, default=None,
                                         allow_null=True)
    approvers = serializers.SlugRelatedField(slug_field="username", many=True, required=False,
                                             queryset=get_user_model().objects.filter(is_active=True),
                                             help_text="People who must approve besides the policy's roles.")
    close_code = serializers.CharField(read_only=True, help_text="successful, successful_with_issues, unsuccessful "
                                                                 "or empty while open.")
    releases = serializers.ListField(child=serializers.CharField(max_length=64), required=False, write_only=True,
                                     max_length=100, help_text="Versions of the releases the change covers.")
    deployments = serializers.ListField(child=serializers.IntegerField(min_value=1), required=False,
                                        write_only=True, max_length=100, help_text="Ids of deployments it covers.")
    links = serializers.SerializerMethodField(help_text="What the change covers: [{type, id, label}].")
    risk = serializers.SerializerMethodField(help_text="The risk that counts (assessed, or raised by an approver).")
    approvals = ChangeApprovalSerializer(many=True, read_only=True)
    requirement = serializers.SerializerMethodField(help_text="Per role, the approvals the policy asks and has.")
    conflicts = serializers.SerializerMethodField(help_text="Open changes overlapping on one of its environments.")
    available_transitions = serializers.SerializerMethodField()

    class Meta:
        model = ChangeRequest
        fields = ["id", "title", "description", "type", "change_class", "priority", "impact", "likelihood", "risk",
                  "risk_reasons", "environments", "planned_start", "duration", "maintenance", "implementation_plan",
                  "rollback_plan", "testing_plan", "template", "status", "approval_round", "requested_by",
                  "approvers", "implementer", "submitted_at", "approved_at", "implemented_at", "validated_at", "closed_at",
                  "close_code", "close_notes", "pir_root_cause", "pir_prevention", "pir_at", "retro_approved_at",
                  "releases", "deployments", "links", "approvals", "requirement", "conflicts",
                  "available_transitions", "created_at", "updated_at"]
        read_only_fields = ["status", "approval_round", "risk_reasons", "submitted_at", "approved_at",
                            "implemented_at", "validated_at", "closed_at", "close_code", "close_notes",
                            "pir_root_cause", "pir_prevention", "pir_at", "retro_approved_at", "created_at",
                            "updated_at"]

    per_user_fields = ("requirement", "conflicts", "available_transitions")  # not in lists (list_actions)

    def validate(self, attrs):
        found = []
        versions = attrs.pop("releases", None)
        ids = attrs.pop("deployments", None)
        if versions is not None:
            releases = {r.version: r for r in Release.objects.filter(version__in=versions)}
            missing = sorted(set(versions) - set(releases))
            if missing:
                raise serializers.ValidationError({"releases": [f"no release {v}" for v in missing]})
            found += list(releases.values())
        if ids is not None:
            deployments = {d.pk: d for d in Deployment.objects.filter(pk__in=ids)}
            missing = sorted(set(ids) - set(deployments))
            if missing:
                raise serializers.ValidationError({"deployments": [f"no deployment #{i}" for i in missing]})
            found += list(deployments.values())
        attrs["_links"] = found if (versions is not None or ids is not None) else None
        return attrs

    def get_links(self, obj) -> list[dict]:
        return [{"type": link.content_type.model, "id": link.object_id, "label": link.label}
                for link in obj.links.all()]

    def get_risk(self, obj) -> str:
        from .policy import effective_risk

        return effective_risk(obj)

    def get_requirement(self, obj) -> dict:
        result = POLICY.tally(obj)
        return {"roles": [{"role": role, "needed": needed, "approved": have}
                          for role, needed, have in POLICY.progress(obj)],
                "missing": list(result.missing), "satisfied": result.satisfied}

    def get_conflicts(self, obj) -> list[dict]:
        return [{"id": c.pk, "title": c.title, "planned_start": c.planned_start, "planned_end": c.planned_end}
                for c in selectors.conflicts(obj)]

    def get_available_transitions(self, obj) -> list[str]:
        request = self.context.get("request")
        return [a.name for a in selectors.available_actions(obj, request.user)] if request else []


class ChangeFilter(django_filters.FilterSet):
    status = django_filters.MultipleChoiceFilter(choices=ChangeStatus.choices)
    change_class = django_filters.ChoiceFilter(choices=ChangeClass.choices)
    environment = django_filters.CharFilter(field_name="environments__name")
    planned_after = IsoDateTimeFilter(field_name="planned_start", lookup_expr="gte")
    planned_before = IsoDateTimeFilter(field_name="planned_start", lookup_expr="lt")

    class Meta:
        model = ChangeRequest
        fields = ["status", "change_class", "type", "environment", "planned_after", "planned_before"]


class TextSerializer(serializers.Serializer):
    text = serializers.CharField(required=False, allow_blank=True, max_length=5000,
                                 help_text="A comment, or the reason (required to reject, fail or cancel).")


class ScheduleSerializer(serializers.Serializer):
    planned_start = serializers.DateTimeField(required=False, help_text="Default: the change's planned start.")


class CloseSerializer(serializers.Serializer):
    close_code = serializers.ChoiceField(choices=CloseCode.choices, default=CloseCode.SUCCESSFUL)
    notes = serializers.CharField(required=False, allow_blank=True, max_length=5000)


class ReviewSerializer(serializers.Serializer):
    root_cause = serializers.CharField(max_length=5000)
    prevention = serializers.CharField(max_length=5000)


class RaiseRiskSerializer(serializers.Serializer):
    level = serializers.ChoiceField(choices=RiskLevel.choices)
    reason = serializers.CharField(max_length=2000)


def _text_transition(name):
    return transition_action(name, lambda change, data, user: services.change_transition(
        change=change, name=name, by=user, text=data.get("text", "")), request=TextSerializer,
        summary=f"Change transition: {name}")


class ChangeRequestViewSet(viewsets.ModelViewSet):
    """Change requests. Transitions: `POST /api/v1/changes/<id>/<transition>/` (409 in the wrong state, 403
    without permission, 400 with what is wrong)."""

    serializer_class = ChangeRequestSerializer
    list_actions = ("list", "awaiting_my_decision", "open_reviews")  # no per-user fields (queries per row) in lists
    token_write_scope = "changes:write"  # pmrelease.tokens
    filterset_class = ChangeFilter
    search_fields = ["title", "description"]
    ordering_fields = ["created_at", "planned_start", "id"]

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return ChangeRequest.objects.none()
        return (selectors.visible_changes(self.request.user)
                .select_related("requested_by", "implementer", "template")
                .prefetch_related("environments", "approvers", "approvals__approver", "links__content_type"))

    def create(self, request, *args, **kwargs):
        serializer = self.get_serializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = dict(serializer.validated_data)
        links = data.pop("_links", None) or []
        template = data.pop("template", None)
        change_class = data.pop("change_class", ChangeClass.NORMAL)
        if change_class not in (ChangeClass.NORMAL, ChangeClass.EMERGENCY):
            raise errors.ValidationFailed("change_class is normal or emergency here (a standard change comes from a "
                                          "template, a flag change from the flags API)",
                                          field_errors={"change_class": ["normal or emergency"]})
        if template is not None:
            change = services.change_create_from_template(template=template, data=data, by=request.user, links=links)
        else:
            change = services.change_create(data=data, by=request.user, links=links, change_class=change_class)
        return Response(self.get_serializer(self.get_queryset().get(pk=change.pk)).data,
                        status=status.HTTP_201_CREATED)

    def update(self, request, *args, **kwargs):
        partial = kwargs.pop("partial", False)
        instance = self.get_object()
        serializer = self.get_serializer(instance, data=request.data, partial=partial)
        serializer.is_valid(raise_exception=True)
        data = dict(serializer.validated_data)
        links = data.pop("_links", None)
        for fixed in ("template", "change_class"):
            if fixed in data and data.pop(fixed) != getattr(instance, fixed):
                raise errors.ValidationFailed(f"{fixed} cannot change after creation",
                                              field_errors={fixed: ["fixed when the change is created"]})
        change = services.change_update(change=instance, data=data, by=request.user, links=links)
        return Response(self.get_serializer(self.get_queryset().get(pk=change.pk)).data)

    def destroy(self, request, *args, **kwargs):
        raise errors.TransitionNotAllowed("change requests are never deleted: cancel it (with a reason) instead")

    submit = _text_transition("submit")
    approve = _text_transition("approve")
    reject = _text_transition("reject")
    implement = _text_transition("implement")
    validate = _text_transition("validate")
    fail = _text_transition("fail")
    cancel = _text_transition("cancel")
    retro_approve = transition_action(
        "retro_approve", lambda change, data, user: services.change_retro_approve(
            change=change, by=user, comment=data.get("text", "")), request=TextSerializer, url_path="retro-approve",
        summary="Retrospective approval of a reviewed emergency change")
    schedule = transition_action(
        "schedule", lambda change, data, user: services.change_schedule(
            change=change, by=user, planned_start=data.get("planned_start")), request=ScheduleSerializer,
        summary="Schedule an approved change (refused outside every window or inside a freeze)")
    close = transition_action(
        "close", lambda change, data, user: services.change_close(
            change=change, by=user, close_code=data["close_code"], notes=data.get("notes", "")),
        request=CloseSerializer, summary="Close a validated change with its close code")
    review = transition_action(
        "review", lambda change, data, user: services.change_record_review(
            change=change, by=user, root_cause=data["root_cause"], prevention=data["prevention"]),
        request=ReviewSerializer, summary="Post-implementation review of an emergency change")
    raise_risk = transition_action(
        "raise_risk", lambda change, data, user: services.change_raise_risk(
            change=change, by=user, level=data["level"], reason=data["reason"]), request=RaiseRiskSerializer,
        url_path="raise-risk", summary="Raise the risk (never lower it)")
    history = history_action("Audit history of a change request")

    @extend_schema(responses=ChangeRequestSerializer(many=True), summary="Changes awaiting my decision")
    @action(detail=False, methods=["get"], url_path="awaiting-my-decision", pagination_class=None)
    def awaiting_my_decision(self, request):
        return Response(self.get_serializer(selectors.awaiting_decision(request.user), many=True).data)

    @extend_schema(responses=ChangeRequestSerializer(many=True),
                   summary="Emergency changes waiting for their review or retrospective approval")
    @action(detail=False, methods=["get"], url_path="open-reviews", pagination_class=None)
    def open_reviews(self, request):
        changes = selectors.visible_changes(request.user, selectors.open_reviews())
        return Response(self.get_serializer(changes, many=True).data)


@extend_schema_field({"type": "string", "pattern": r"^\d{2}:\d{2}(:\d{2})?$", "example": "10:00"})
class WallTimeField(serializers.TimeField):
    """A local wall-clock time (HH:MM) in the window's time zone: no UTC offset, so not a JSON Schema "time"."""

    def __init__(self, **kwargs):
        super().__init__(format="%H:%M", input_formats=["%H:%M", "%H:%M:%S"], **kwargs)


class ChangeWindowSerializer(serializers.ModelSerializer):
    environment = serializers.SlugRelatedField(slug_field="name", queryset=Environment.objects.all())
    start_time = WallTimeField()
    end_time = WallTimeField(help_text="At or before the start: the window runs past midnight (00:00–00:00 is all "
                                       "day).")
    days = serializers.ListField(child=serializers.IntegerField(min_value=0, max_value=6), min_length=1,
                                 max_length=7, help_text="Weekdays, Monday = 0.")

    class Meta:
        model = ChangeWindow
        fields = ["id", "environment", "name", "days", "start_time", "end_time", "timezone", "active"]


class ChangeWindowViewSet(viewsets.ModelViewSet):
    """Recurring deployment windows per environment (editing needs administrative access to it)."""

    serializer_class = ChangeWindowSerializer

    def get_queryset(self):
        return ChangeWindow.objects.filter(environment__in=access.visible_environments(self.request.user)) \
            .select_related("environment").order_by("environment__position", "name", "id")

    def create(self, request, *args, **kwargs):
        serializer = self.get_serializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = dict(serializer.validated_data)
        window = services.window_save(environment=data.pop("environment"), data=data, by=request.user)
        return Response(self.get_serializer(window).data, status=status.HTTP_201_CREATED)

    def update(self, request, *args, **kwargs):
        partial = kwargs.pop("partial", False)
        instance = self.get_object()
        serializer = self.get_serializer(instance, data=request.data, partial=partial)
        serializer.is_valid(raise_exception=True)
        data = dict(serializer.validated_data)
        if data.pop("environment", instance.environment) != instance.environment:
            raise errors.ValidationFailed("a window stays with its environment: create one for the other",
                                          field_errors={"environment": ["fixed when the window is created"]})
        window = services.window_save(environment=instance.environment, data=data, by=request.user, window=instance)
        return Response(self.get_serializer(window).data)

    def destroy(self, request, *args, **kwargs):
        services.window_delete(window=self.get_object(), by=request.user)
        return Response(status=status.HTTP_204_NO_CONTENT)


class ChangeFreezeSerializer(serializers.ModelSerializer):
    environments = serializers.SlugRelatedField(slug_field="name", many=True, queryset=Environment.objects.all(),
                                                required=False, help_text="None: every gated environment.")
    next_periods = serializers.SerializerMethodField(help_text="Its next periods (from, to) in the coming year.")

    class Meta:
        model = ChangeFreeze
        fields = ["id", "reason", "environments", "starts_at", "ends_at", "rule", "rule_start", "duration_minutes",
                  "timezone", "active", "next_periods"]

    def get_next_periods(self, obj) -> list[list[str]]:
        from . import schedule

        now = timezone.now()
        spec = schedule.Freeze(reason=obj.reason, start=obj.starts_at, end=obj.ends_at, rule=obj.rule,
                               first=obj.rule_start, minutes=obj.duration_minutes, tz=obj.timezone)
        return [[a.isoformat(), b.isoformat()] for a, b in spec.periods(now, now + dt.timedelta(days=366))[:5]]


class SavedThroughService:
    """Create and update through the viewset's ``through_service(data, by, instance=None)``: its service."""

    def create(self, request, *args, **kwargs):
        serializer = self.get_serializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        saved = self.through_service(dict(serializer.validated_data), request.user)
        return Response(self.get_serializer(saved).data, status=status.HTTP_201_CREATED)

    def update(self, request, *args, **kwargs):
        instance = self.get_object()
        serializer = self.get_serializer(instance, data=request.data, partial=kwargs.pop("partial", False))
        serializer.is_valid(raise_exception=True)
        return Response(self.get_serializer(self.through_service(dict(serializer.validated_data), request.user,
                                                      instance)).data)


class ChangeFreezeViewSet(SavedThroughService, viewsets.ModelViewSet):
    """Freezes: one-off (start, end) or recurring (an RFC 5545 rule, a duration, a time zone), with a reason."""

    serializer_class = ChangeFreezeSerializer
    queryset = ChangeFreeze.objects.prefetch_related("environments").order_by("starts_at", "id")

    def through_service(self, data, by, instance=None):
        return services.freeze_save(data=data, by=by, freeze=instance)

    def destroy(self, request, *args, **kwargs):
        services.freeze_delete(freeze=self.get_object(), by=request.user)
        return Response(status=status.HTTP_204_NO_CONTENT)


class ChangeTemplateSerializer(serializers.ModelSerializer):
    environments = serializers.SlugRelatedField(slug_field="name", many=True, queryset=Environment.objects.all(),
                                                required=False, help_text="None: any environment.")
    approved_by = serializers.CharField(source="approved_by.username", read_only=True, default=None, allow_null=True)

    class Meta:
        model = ChangeTemplate
        fields = ["id", "name", "version", "type", "description", "implementation_plan", "rollback_plan",
                  "testing_plan", "environments", "max_risk", "active", "approved_by", "approved_at", "created_at"]
        read_only_fields = ["approved_at", "created_at"]


class ChangeTemplateViewSet(SavedThroughService, viewsets.ModelViewSet):
    """Pre-approved templates of standard changes, versioned: each version is approved by an administrator."""

    serializer_class = ChangeTemplateSerializer
    queryset = ChangeTemplate.objects.select_related("approved_by").prefetch_related("environments") \
        .order_by("name", "-version")

    def through_service(self, data, by, instance=None):
        return services.template_save(data=data, by=by, template=instance)

    def destroy(self, request, *args, **kwargs):
        raise errors.TransitionNotAllowed("templates are kept for the changes made from them: deactivate it instead")

    approve = transition_action("approve", lambda template, data, user: services.template_approve(
        template=template, by=user), summary="Approve a template version (administrators)")


class CanReadCompliance(permissions.BasePermission):
    message = "the compliance report needs the pmrelease.view_auditevent permission (auditors, operations, security)"

    def has_permission(self, request, view):
        return request.user.has_perm("pmrelease.view_auditevent")


class CSVRenderer(BaseRenderer):
    """Text already rendered as CSV (``format=csv`` or ``Accept: text/csv``); errors are JSON (the view's
    ``handle_exception``)."""

    media_type = "text/csv"
    format = "csv"
    charset = "utf-8"

    def render(self, data, accepted_media_type=None, renderer_context=None):
        return data.encode()


class ComplianceReportView(APIView):
    """`GET /api/v1/compliance/report/?since=&until=` (JSON; `format=csv` or `Accept: text/csv` for CSV)."""

    permission_classes = [permissions.IsAuthenticated, CanReadCompliance]
    renderer_classes = [JSONRenderer, CSVRenderer]

    def handle_exception(self, exc):
        """Errors are JSON, whatever format was asked for."""
        self.request.accepted_renderer, self.request.accepted_media_type = JSONRenderer(), "application/json"
        return super().handle_exception(exc)

    @extend_schema(
        parameters=[OpenApiParameter("since", OpenApiTypes.DATETIME, description="Default: 30 days ago."),
                    OpenApiParameter("until", OpenApiTypes.DATETIME, description="Default: now."),
                    OpenApiParameter("format", str, enum=["json", "csv"])],
        responses={(200, "application/json"): inline_serializer("ComplianceReport", {
            "since": serializers.DateTimeField(), "until": serializers.DateTimeField(),
            "audit_chain": serializers.DictField(), "exception_count": serializers.IntegerField(),
            "changes": serializers.ListField(child=serializers.DictField()),
            "deployments_without_change": serializers.ListField(child=serializers.DictField())}),
            (200, "text/csv"): OpenApiTypes.STR},
        summary="The compliance report of a period")
    def get(self, request):
        since, until = compliance_period(request.query_params)
        report = compliance.build(since, until)
        if request.accepted_renderer.format == "csv":
            return Response(compliance.as_csv(report), headers={
                "Content-Disposition": f'attachment; filename="compliance-{since:%Y%m%d}-{until:%Y%m%d}.csv"'})
        return Response(compliance.as_dict(report))


def compliance_period(params):
    """(since, until) from query parameters: ISO 8601 instants or dates; 400 on anything else."""
    from django.utils.dateparse import parse_date, parse_datetime

    now = timezone.now()

    def parse(name, default):
        raw = params.get(name)
        if not raw:
            return default
        try:
            value = parse_datetime(raw)
            if value is None:
                day = parse_date(raw)
                value = dt.datetime.combine(day, dt.time(0)) if day else None
        except (ValueError, OverflowError):
            value = None
        if value is None:
            raise errors.ValidationFailed(f"{name} must be an ISO 8601 date or date-time",
                                          field_errors={name: ["an ISO 8601 date or date-time"]})
        return value if timezone.is_aware(value) else timezone.make_aware(value, dt.UTC)

    since = parse("since", now - dt.timedelta(days=30))
    until = parse("until", now)
    if until <= since:
        raise errors.ValidationFailed("until must be after since", field_errors={"until": ["after since"]})
    if until - since > dt.timedelta(days=800):
        raise errors.ValidationFailed("a report covers at most 800 days", field_errors={"since": ["at most 800 days"]})
    return since, until


router = SimpleRouter()
router.register("changes", ChangeRequestViewSet, basename="change")
router.register("change-windows", ChangeWindowViewSet, basename="change-window")
router.register("change-freezes", ChangeFreezeViewSet, basename="change-freeze")
router.register("change-templates", ChangeTemplateViewSet, basename="change-template")

urlpatterns = [*router.urls, path("compliance/report/", ComplianceReportView.as_view(), name="compliance-report")]
