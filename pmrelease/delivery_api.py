"""``/api/v1/channels/`` (administrators): notification channels with their subscriptions; the apprise URL is
write-only (``url``) and shown back only as ``url_shown``. ``/api/v1/notifications/``: every notification with
its attempts (cursor pages), ``POST …/<id>/redeliver/`` for a failed one. Writes go through pmrelease.delivery."""
from django.db import transaction
from drf_spectacular.utils import extend_schema
from rest_framework import mixins, permissions, serializers, viewsets
from rest_framework.decorators import action
from rest_framework.pagination import CursorPagination
from rest_framework.response import Response

from . import delivery
from .models import Channel, DeliveryAttempt, Notification


class IsAdministrator(permissions.BasePermission):
    message = "only an administrator may see or configure notification channels"

    def has_permission(self, request, view):
        return bool(request.user and request.user.is_active and request.user.is_superuser)


class SubscriptionSerializer(serializers.Serializer):
    event = serializers.ChoiceField(choices=[delivery.ANY, *delivery.EVENTS])
    environment = serializers.CharField(max_length=50, required=False, allow_blank=True, default="")


class ChannelSerializer(serializers.ModelSerializer):
    url = serializers.CharField(write_only=True, required=False, max_length=2000,
                                help_text="apprise URL, stored encrypted, never returned")
    url_shown = serializers.SerializerMethodField()
    subscriptions = SubscriptionSerializer(many=True, required=False,
                                           help_text="replaces the channel's subscriptions when given")

    class Meta:
        model = Channel
        fields = ["id", "name", "description", "url", "url_env", "url_shown", "enabled", "subscriptions",
                  "created_at"]
        read_only_fields = ["created_at"]
        validators = []

    def get_url_shown(self, obj) -> str:
        return delivery.describe(obj)

    def to_representation(self, instance):
        data = super().to_representation(instance)
        data["subscriptions"] = [{"event": s.event, "environment": s.environment}
                                 for s in instance.subscriptions.all()]
        return data


class ChannelViewSet(viewsets.ModelViewSet):
    serializer_class = ChannelSerializer
    permission_classes = [permissions.IsAuthenticated, IsAdministrator]
    queryset = Channel.objects.prefetch_related("subscriptions").order_by("name")

    def _save(self, serializer, channel):
        data = dict(serializer.validated_data)
        subscriptions = data.pop("subscriptions", None)
        with transaction.atomic():
            saved = delivery.channel_save(data=data, by=self.request.user, channel=channel)
            if subscriptions is not None:
                wanted = {(s["event"], s.get("environment", "")) for s in subscriptions}
                for existing in saved.subscriptions.all():
                    if (existing.event, existing.environment) not in wanted:
                        delivery.subscription_delete(subscription=existing, by=self.request.user)
                for event, environment in sorted(wanted):
                    delivery.subscription_save(channel=saved, event=event, environment=environment,
                                               by=self.request.user)
        serializer.instance = Channel.objects.prefetch_related("subscriptions").get(pk=saved.pk)

    def perform_create(self, serializer):
        self._save(serializer, None)

    def perform_update(self, serializer):
        self._save(serializer, serializer.instance)

    def perform_destroy(self, instance):
        delivery.channel_delete(channel=instance, by=self.request.user)


class DeliveryAttemptSerializer(serializers.ModelSerializer):
    class Meta:
        model = DeliveryAttempt
        fields = ["at", "delivered", "error", "duration_ms"]


class NotificationSerializer(serializers.ModelSerializer):
    channel = serializers.SlugRelatedField(slug_field="name", read_only=True)
    attempts_made = DeliveryAttemptSerializer(source="delivery_attempts", many=True, read_only=True)

    class Meta:
        model = Notification
        fields = ["id", "event", "environment", "key", "channel", "recipients", "title", "body", "severity", "data",
                  "status", "attempts", "last_error", "created_at", "delivered_at", "attempts_made"]


class NotificationPages(CursorPagination):
    ordering = ("-id",)
    page_size = 100
    page_size_query_param = "page_size"
    max_page_size = 1000


class NotificationViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    serializer_class = NotificationSerializer
    permission_classes = [permissions.IsAuthenticated, IsAdministrator]
    pagination_class = NotificationPages
    filterset_fields = ["event", "environment", "status"]

    def get_queryset(self):
        return Notification.objects.select_related("channel").prefetch_related("delivery_attempts")

    @extend_schema(request=None, responses={200: NotificationSerializer},
                   summary="Deliver a failed notification again")
    @action(detail=True, methods=["post"])
    def redeliver(self, request, pk=None):
        notification = self.get_object()
        delivery.redeliver(notification=notification, by=request.user)
        return Response(NotificationSerializer(self.get_queryset().get(pk=notification.pk)).data)
