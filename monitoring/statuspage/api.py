"""Operator REST API of the status page (/api/v1/components/, /incidents/, /maintenances/, …).

Transitions are `POST /api/v1/<resource>/<id>/<transition>/`: 409 when not allowed from the current state,
403 without permission, 400 with field errors. Every write goes through the status page's services (audited).
"""
from drf_spectacular.utils import extend_schema
from rest_framework import mixins, permissions, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response

from pmrelease.api import history_action, transition_action
from releases.models import Deployment, Environment

from . import components, incidents, maintenance, subscribers
from . import status as st
from .access import can_operate
from .models import (
    Component,
    ComponentGroup,
    ComponentStatusChange,
    Impact,
    Incident,
    IncidentPolicy,
    Maintenance,
    Policy,
    Subscriber,
)


class IsOperator(permissions.BasePermission):
    message = "operating the status page needs the operations role or the monitoring.change_incident permission"

    def has_permission(self, request, view):
        return can_operate(request.user)


OPERATOR = [permissions.IsAuthenticated, IsOperator]


class ComponentGroupSerializer(serializers.ModelSerializer):
    class Meta:
        model = ComponentGroup
        fields = ["id", "name", "description", "position", "created_at", "updated_at"]
        read_only_fields = ["created_at", "updated_at"]


class ComponentGroupViewSet(viewsets.ModelViewSet):
    queryset = ComponentGroup.objects.all()
    serializer_class = ComponentGroupSerializer
    permission_classes = OPERATOR

    def perform_create(self, serializer):
        serializer.instance = components.group_create(data=dict(serializer.validated_data), by=self.request.user)

    def perform_update(self, serializer):
        serializer.instance = components.group_update(group=serializer.instance, data=dict(serializer.validated_data),
                                                      by=self.request.user)

    def perform_destroy(self, instance):
        components.group_delete(group=instance, by=self.request.user)


class ComponentSerializer(serializers.ModelSerializer):
    environments = serializers.SlugRelatedField(slug_field="name", many=True, queryset=Environment.objects.all(),
                                                required=False)
    status = serializers.CharField(required=False, help_text="Initial status on create (operational, "
                                   "degraded_performance, partial_outage, major_outage, under_maintenance); "
                                   "use set-status afterwards.")

    class Meta:
        model = Component
        fields = ["id", "name", "description", "group", "position", "status", "showcase",
                  "only_show_if_degraded", "environments", "start_date", "created_at", "updated_at"]
        read_only_fields = ["created_at", "updated_at"]


class SetStatusSerializer(serializers.Serializer):
    status = serializers.CharField(help_text=", ".join(st.COMPONENT_STATUSES) + " (validated by the service)")
    reason = serializers.CharField(required=False, allow_blank=True, max_length=2000)


class StatusChangeSerializer(serializers.ModelSerializer):
    old_status = serializers.CharField(read_only=True, help_text="A component status, or empty for the first row.")
    new_status = serializers.CharField(read_only=True, help_text="A component status.")

    class Meta:
        model = ComponentStatusChange
        fields = ["id", "old_status", "new_status", "at", "incident", "maintenance"]


class ComponentViewSet(viewsets.ModelViewSet):
    queryset = Component.objects.select_related("group").prefetch_related("environments")
    serializer_class = ComponentSerializer
    permission_classes = OPERATOR
    filterset_fields = ["status", "group"]
    search_fields = ["name", "description"]

    def perform_create(self, serializer):
        serializer.instance = components.component_create(data=dict(serializer.validated_data), by=self.request.user)

    def perform_update(self, serializer):
        data = dict(serializer.validated_data)
        if "status" in data and data["status"] != serializer.instance.status:
            from pmrelease import errors

            raise errors.ValidationFailed("status is changed with POST …/set-status/ (or by incidents)",
                                          field_errors={"status": ["read-only here; use set-status"]})
        data.pop("status", None)
        serializer.instance = components.component_update(component=serializer.instance, data=data,
                                                          by=self.request.user)

    def perform_destroy(self, instance):
        components.component_delete(component=instance, by=self.request.user)

    @extend_schema(request=SetStatusSerializer, responses=ComponentSerializer, summary="Set a component's status")
    @action(detail=True, methods=["post"], url_path="set-status")
    def set_status(self, request, pk=None):
        body = SetStatusSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        component = components.component_set_status(component=self.get_object(), by=request.user,
                                                    status=body.validated_data["status"],
                                                    reason=body.validated_data.get("reason", ""))
        return Response(ComponentSerializer(component, context=self.get_serializer_context()).data)

    @extend_schema(responses=StatusChangeSerializer(many=True), summary="Status history of a component")
    @action(detail=True, methods=["get"], url_path="status-history")
    def status_history(self, request, pk=None):
        rows = self.get_object().status_changes.order_by("-at", "-id")
        page = self.paginate_queryset(rows)
        return self.get_paginated_response(StatusChangeSerializer(page, many=True).data)


class UpdateSerializer(serializers.Serializer):
    id = serializers.IntegerField(read_only=True)
    status = serializers.CharField(read_only=True)
    body = serializers.CharField(read_only=True)
    affected_components = serializers.JSONField(read_only=True)
    created_at = serializers.DateTimeField(read_only=True)
    display_at = serializers.DateTimeField(read_only=True)


def _component_statuses_field():
    return serializers.DictField(child=serializers.CharField(), required=False,
                                 write_only=True,
                                 help_text='{"<component id>": "<component status>", …}; statuses are validated '
                                           'by the service (400 naming the bad one)')


class IncidentSerializer(serializers.ModelSerializer):
    status = serializers.CharField(read_only=True, help_text="investigating, identified, monitoring, resolved, "
                                                              "postmortem")
    body = serializers.CharField(write_only=True, help_text="The first public update.")
    components = _component_statuses_field()
    publish = serializers.BooleanField(write_only=True, default=True,
                                       help_text="false: a draft, published later with POST …/publish/.")
    published = serializers.BooleanField(source="is_published", read_only=True)
    affected = serializers.SerializerMethodField()
    updates = UpdateSerializer(many=True, read_only=True)
    available_transitions = serializers.SerializerMethodField()
    environment = serializers.SlugRelatedField(slug_field="name", read_only=True, allow_null=True)
    deployment = serializers.PrimaryKeyRelatedField(
        queryset=Deployment.objects.all(), required=False, allow_null=True,
        help_text="The id of the deployment that caused it (counted in DORA's change failure rate).")

    class Meta:
        model = Incident
        fields = ["id", "name", "status", "impact", "published", "published_at", "started_at", "identified_at",
                  "monitoring_at", "resolved_at", "postmortem", "environment", "deployment", "body", "components",
                  "publish", "affected", "updates", "available_transitions", "internal_notes", "proposed_components",
                  "created_at", "updated_at"]
        read_only_fields = ["status", "published_at", "identified_at", "monitoring_at", "resolved_at",
                            "postmortem", "internal_notes", "proposed_components", "created_at", "updated_at"]

    def get_affected(self, obj) -> dict:
        return {str(a.component_id): a.status for a in obj.affected.all()}

    def get_available_transitions(self, obj) -> list[str]:
        return incidents.available_incident_actions(obj, self.context["request"].user)


class IncidentUpdateInput(serializers.Serializer):
    body = serializers.CharField(max_length=10000)
    components = _component_statuses_field()


def _incident_transition(name, url_path):
    def run(incident, data, user):
        return incidents.incident_transition(incident=incident, name=name, by=user, body=data["body"],
                                             component_statuses=data.get("components"))

    return transition_action(url_path, run, request=IncidentUpdateInput, response=IncidentSerializer,
                             summary=f"Incident transition: {url_path}",
                             description="Adds a public update. 409 when not allowed from the current state.")


class IncidentViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, mixins.CreateModelMixin,
                      mixins.DestroyModelMixin, viewsets.GenericViewSet):
    """Incidents, drafts included. Transitions: identify, monitor, resolve, postmortem; publish (drafts)."""

    queryset = Incident.objects.select_related("environment").prefetch_related("affected", "updates")
    serializer_class = IncidentSerializer
    permission_classes = OPERATOR
    filterset_fields = ["status", "impact"]
    search_fields = ["name"]

    def create(self, request, *args, **kwargs):
        serializer = self.get_serializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        incident = incidents.incident_create(
            name=data["name"], body=data["body"], by=request.user, impact=data.get("impact", Impact.MINOR),
            components=data.get("components"), publish=data.get("publish", True),
            started_at=data.get("started_at"), deployment=data.get("deployment"))
        return Response(self.get_serializer(incident).data, status=status.HTTP_201_CREATED)

    def perform_destroy(self, instance):
        incidents.incident_delete_draft(incident=instance, by=self.request.user)

    identify = _incident_transition("identify", "identify")
    monitor = _incident_transition("monitor", "monitor")
    resolve = _incident_transition("resolve", "resolve")
    postmortem = _incident_transition("publish_postmortem", "postmortem")

    @extend_schema(request=None, responses=IncidentSerializer, summary="Publish a draft incident")
    @action(detail=True, methods=["post"], url_path="publish")
    def publish(self, request, pk=None):
        incident = incidents.incident_publish(incident=self.get_object(), by=request.user)
        return Response(self.get_serializer(incident).data)

    @extend_schema(request=IncidentUpdateInput, responses=UpdateSerializer,
                   summary="Post an update without a status change")
    @action(detail=True, methods=["post"], url_path="updates")
    def add_update(self, request, pk=None):
        body = IncidentUpdateInput(data=request.data)
        body.is_valid(raise_exception=True)
        update = incidents.incident_add_update(incident=self.get_object(), by=request.user,
                                               body=body.validated_data["body"],
                                               component_statuses=body.validated_data.get("components"))
        return Response(UpdateSerializer(update).data, status=status.HTTP_201_CREATED)

    history = history_action("Audit history of an incident")


class MaintenanceSerializer(serializers.ModelSerializer):
    status = serializers.CharField(read_only=True, help_text="scheduled, in_progress, verifying, completed")
    components = serializers.PrimaryKeyRelatedField(many=True, queryset=Component.objects.all(), required=False)
    updates = UpdateSerializer(many=True, read_only=True)

    class Meta:
        model = Maintenance
        fields = ["id", "name", "status", "body", "components", "scheduled_for", "scheduled_until", "auto_start",
                  "auto_complete", "remind_before", "reminded_at", "started_at", "verifying_at", "completed_at",
                  "updates", "created_at", "updated_at"]
        read_only_fields = ["status", "reminded_at", "started_at", "verifying_at", "completed_at", "created_at",
                            "updated_at"]


class MessageInput(serializers.Serializer):
    body = serializers.CharField(required=False, allow_blank=True, max_length=10000)


def _maintenance_transition(name):
    def run(row, data, user):
        return maintenance.maintenance_transition(maintenance=row, name=name, by=user, body=data.get("body", ""))

    return transition_action(name, run, request=MessageInput, response=MaintenanceSerializer,
                             summary=f"Maintenance transition: {name}")


class MaintenanceViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, mixins.CreateModelMixin,
                         viewsets.GenericViewSet):
    """Scheduled maintenance. Transitions: start, verify, complete (beat starts/completes on time), cancel (before
    it starts: it leaves the public page)."""

    queryset = Maintenance.objects.prefetch_related("components", "updates")
    serializer_class = MaintenanceSerializer
    permission_classes = OPERATOR
    filterset_fields = ["status"]

    def create(self, request, *args, **kwargs):
        serializer = self.get_serializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        row = maintenance.maintenance_create(data=dict(serializer.validated_data), by=request.user)
        return Response(self.get_serializer(row).data, status=status.HTTP_201_CREATED)

    start = _maintenance_transition("start")
    verify = _maintenance_transition("verify")
    complete = _maintenance_transition("complete")
    cancel = _maintenance_transition("cancel")


class IncidentPolicySerializer(serializers.ModelSerializer):
    environment = serializers.SlugRelatedField(slug_field="name", queryset=Environment.objects.all())
    policy = serializers.ChoiceField(choices=Policy.choices)

    class Meta:
        model = IncidentPolicy
        fields = ["id", "environment", "policy"]


class IncidentPolicyViewSet(mixins.ListModelMixin, mixins.CreateModelMixin, viewsets.GenericViewSet):
    """What a failed deployment or automatic rollback does per environment: POST upserts."""

    queryset = IncidentPolicy.objects.select_related("environment").order_by("environment__position", "id")
    serializer_class = IncidentPolicySerializer
    permission_classes = OPERATOR

    def create(self, request, *args, **kwargs):
        serializer = self.get_serializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        row = incidents.incident_policy_set(environment=serializer.validated_data["environment"],
                                            policy=serializer.validated_data["policy"], by=request.user)
        return Response(self.get_serializer(row).data, status=status.HTTP_200_OK)


class SubscriberSerializer(serializers.ModelSerializer):
    components = serializers.PrimaryKeyRelatedField(many=True, queryset=Component.objects.all(), required=False)

    class Meta:
        model = Subscriber
        fields = ["id", "kind", "email", "webhook_url", "components", "confirmed_at", "unsubscribed_at",
                  "created_at"]
        read_only_fields = ["kind", "email", "confirmed_at", "unsubscribed_at", "created_at"]


class SubscriberViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, mixins.CreateModelMixin,
                        viewsets.GenericViewSet):
    """Subscribers; operators add webhook subscribers here (e-mail subscribers opt in on the public page)."""

    queryset = Subscriber.objects.prefetch_related("components")
    serializer_class = SubscriberSerializer
    permission_classes = OPERATOR
    filterset_fields = ["kind"]

    def create(self, request, *args, **kwargs):
        serializer = self.get_serializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        if not serializer.validated_data.get("webhook_url"):
            return Response({"webhook_url": ["This field is required."]}, status=status.HTTP_400_BAD_REQUEST)
        subscriber = subscribers.webhook_subscriber_create(url=serializer.validated_data["webhook_url"],
                                                           components=serializer.validated_data.get("components", []),
                                                           by=request.user)
        return Response(self.get_serializer(subscriber).data, status=status.HTTP_201_CREATED)


