"""Cross-cutting API pieces: the exception handler and the read-only audit trail."""
import django_filters
from django.http import StreamingHttpResponse
from rest_framework import mixins, permissions, serializers, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from . import errors
from .exports import audit_csv_rows
from .models import AuditEvent


def exception_handler(exc, context):
    """Domain errors become 400/403/409 with a message saying what is wrong."""
    if isinstance(exc, errors.DomainError):
        return Response(exc.as_dict(), status=exc.status_code)
    return drf_exception_handler(exc, context)


class AuditEventSerializer(serializers.ModelSerializer):
    class Meta:
        model = AuditEvent
        fields = [
            "id", "created_at", "actor_username", "action", "object_type", "object_id", "object_repr",
            "before", "after", "reason", "request_id", "prev_hash", "hash",
        ]


class AuditEventFilter(django_filters.FilterSet):
    since = django_filters.IsoDateTimeFilter(field_name="created_at", lookup_expr="gte")
    until = django_filters.IsoDateTimeFilter(field_name="created_at", lookup_expr="lt")
    actor = django_filters.CharFilter(field_name="actor_username")
    action = django_filters.CharFilter(field_name="action", lookup_expr="startswith")

    class Meta:
        model = AuditEvent
        fields = ["object_type", "object_id", "actor", "action", "since", "until"]


class CanViewAudit(permissions.BasePermission):
    message = "viewing the audit trail needs the pmrelease.view_auditevent permission"

    def has_permission(self, request, view):
        return request.user.has_perm("pmrelease.view_auditevent")


class AuditEventViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """The audit trail: read-only by construction (no create, update or delete route exists)."""

    queryset = AuditEvent.objects.all()
    serializer_class = AuditEventSerializer
    permission_classes = [permissions.IsAuthenticated, CanViewAudit]
    filterset_class = AuditEventFilter
    search_fields = ["object_repr", "reason", "actor_username", "action"]
    ordering_fields = ["id", "created_at"]

    @action(detail=False, methods=["get"], url_path="export")
    def export(self, request):
        """The filtered trail as CSV, for auditors."""
        queryset = self.filter_queryset(self.get_queryset()).order_by("id")
        response = StreamingHttpResponse(audit_csv_rows(queryset), content_type="text/csv; charset=utf-8")
        response["Content-Disposition"] = 'attachment; filename="audit-trail.csv"'
        return response
