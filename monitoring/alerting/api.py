"""``/api/v1/alert-rules/``: alert rules per environment (the environments you may see; editing needs
administrative access to the rule's environment), ``POST …/<id>/test/`` (run the condition now, or a
condition given in the body) and ``GET …/<id>/events/`` (the rule's state changes). Writes go through
monitoring.alerting.services (audited); a bad condition is a 400 naming its column."""
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers, viewsets
from rest_framework.decorators import action
from rest_framework.pagination import CursorPagination
from rest_framework.response import Response

from pmrelease.api import history_action
from pmrelease.models import Channel
from releases import access
from releases.models import Environment

from . import services
from .models import AlertEvent, AlertRule


class AlertRuleSerializer(serializers.ModelSerializer):
    environment = serializers.SlugRelatedField(slug_field="name", queryset=Environment.objects.all())
    channels = serializers.SlugRelatedField(slug_field="name", many=True, queryset=Channel.objects.all(),
                                            required=False)
    condition = serializers.CharField(max_length=4000, help_text='PromQL, e.g. '
                                      'rate(http_requests_total{status=~"5.."}[5m]) > 0.05')

    class Meta:
        model = AlertRule
        fields = ["id", "environment", "name", "description", "condition", "for_seconds", "severity", "channels",
                  "cooldown", "enabled", "state", "state_since", "last_evaluated_at", "last_notified_at",
                  "last_error", "last_result"]
        read_only_fields = ["state", "state_since", "last_evaluated_at", "last_notified_at", "last_error",
                            "last_result"]
        validators = []  # the unique name per environment: the service's full_clean answers it

    def validate_environment(self, value):
        request = self.context.get("request")
        if self.instance is not None and value != self.instance.environment:
            raise serializers.ValidationError("a rule stays in its environment: create one in the other")
        if request is not None and not access.visible_environments(request.user).filter(pk=value.pk).exists():
            raise serializers.ValidationError(f"no environment named '{value.name}'")
        return value


class AlertEventSerializer(serializers.ModelSerializer):
    class Meta:
        model = AlertEvent
        fields = ["id", "at", "change", "from_state", "to_state", "notified", "detail", "series"]


class EventPages(CursorPagination):
    ordering = ("-at", "-id")
    page_size = 100
    page_size_query_param = "page_size"
    max_page_size = 1000


TEST_RESULT = inline_serializer("AlertRuleTestResult", {
    "ok": serializers.BooleanField(), "matched": serializers.BooleanField(),
    "series": serializers.ListField(child=serializers.DictField()), "error": serializers.CharField()})


class AlertRuleViewSet(viewsets.ModelViewSet):
    """Alert rules (the seed's AlertRule) with their current state."""

    serializer_class = AlertRuleSerializer
    filterset_fields = ["severity", "state", "enabled"]
    search_fields = ["name", "description"]

    def get_queryset(self):
        queryset = (AlertRule.objects.filter(environment__in=access.visible_environments(self.request.user))
                    .select_related("environment").prefetch_related("channels").order_by("id"))
        environment = self.request.query_params.get("environment")
        return queryset.filter(environment__name=environment) if environment else queryset

    def perform_create(self, serializer):
        data = dict(serializer.validated_data)
        environment = data.pop("environment")
        serializer.instance = services.rule_save(environment=environment, data=data, by=self.request.user)

    def perform_update(self, serializer):
        data = dict(serializer.validated_data)
        data.pop("environment", None)
        serializer.instance = services.rule_save(environment=serializer.instance.environment, data=data,
                                                 by=self.request.user, rule=serializer.instance)

    def perform_destroy(self, instance):
        services.rule_delete(rule=instance, by=self.request.user)

    @extend_schema(request=inline_serializer("AlertRuleTest", {"condition": serializers.CharField(required=False)}),
                   responses={200: TEST_RESULT}, summary="Run the rule's condition (or the one given) now")
    @action(detail=True, methods=["post"])
    def test(self, request, pk=None):
        rule = self.get_object()
        body = request.data if isinstance(request.data, dict) else {}
        condition = body.get("condition", rule.condition)
        if not isinstance(condition, str):
            return Response({"condition": ["a PromQL expression (a string)"]}, status=400)
        return Response(services.rule_test(environment=rule.environment, condition=condition, by=request.user))

    @extend_schema(responses={200: AlertEventSerializer(many=True)}, summary="The rule's state changes")
    @action(detail=True, methods=["get"], pagination_class=EventPages, filterset_fields=[], search_fields=[])
    def events(self, request, pk=None):
        rule = self.get_object()
        page = self.paginate_queryset(services.history(rule))
        return self.get_paginated_response(AlertEventSerializer(page, many=True).data)

    history = history_action("Audit history of an alert rule")
