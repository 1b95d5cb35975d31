"""Cross-cutting API pieces: the exception handler, the read-only audit trail, and the helpers every app's
API uses (FSM transition actions, per-user fields left out of lists, an object's audit history)."""
import django_filters
from django.contrib.auth import get_user_model
from django.db import DataError
from django.http import StreamingHttpResponse
from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import mixins, permissions, serializers, viewsets
from rest_framework.authtoken.serializers import AuthTokenSerializer
from rest_framework.decorators import action
from rest_framework.response import Response
from rest_framework.views import APIView
from rest_framework.views import exception_handler as drf_exception_handler

from . import errors, tokens
from .exports import audit_csv_rows
from .filters import IsoDateTimeFilter
from .lists import KeysetPages
from .models import ApiToken, AuditEvent


def exception_handler(exc, context):
    """Domain errors become 400/403/409 with a message saying what is wrong. A NUL character that reached the
    database past the parsers' checks (a multipart part in another charset, say) is the client's input: 400."""
    if isinstance(exc, errors.DomainError):
        return Response(exc.as_dict(), status=exc.status_code)
    if isinstance(exc, DataError) and "NUL" in str(exc):
        return Response({"detail": "fields may not contain NUL (\\u0000) characters"}, status=400)
    return drf_exception_handler(exc, context)


class AuditEventSerializer(serializers.ModelSerializer):
    class Meta:
        model = AuditEvent
        fields = [
            "id", "created_at", "actor_username", "action", "object_type", "object_id", "object_repr",
            "before", "after", "reason", "request_id", "prev_hash", "hash",
        ]


class AuditEventFilter(django_filters.FilterSet):
    since = IsoDateTimeFilter(field_name="created_at", lookup_expr="gte")
    until = IsoDateTimeFilter(field_name="created_at", lookup_expr="lt")
    actor = django_filters.CharFilter(field_name="actor_username")
    action = django_filters.CharFilter(field_name="action", lookup_expr="startswith")

    class Meta:
        model = AuditEvent
        fields = ["object_type", "object_id", "actor", "action", "since", "until"]


class CanViewAudit(permissions.BasePermission):
    message = "viewing the audit trail needs the pmrelease.view_auditevent permission"

    def has_permission(self, request, view):
        return request.user.has_perm("pmrelease.view_auditevent")


class PerUserFieldsMixin:
    """A serializer mixin: the fields named in ``per_user_fields`` (what this user may do with the object,
    which costs queries per row) are computed on the detail view only, not in lists (the view's
    ``list_actions``, by default ``("list",)``)."""

    per_user_fields = ()

    def get_fields(self):
        fields = super().get_fields()
        view = self.context.get("view")
        if view is not None and getattr(view, "action", None) in getattr(view, "list_actions", ("list",)):
            for name in self.per_user_fields:
                fields.pop(name, None)
        return fields


def transition_action(name, handler, *, request=None, response=None, url_path=None, summary=None,
                      description=None):
    """A ``POST /<resource>/<id>/<url_path>/`` action running an FSM transition through a service.

    ``handler(obj, data, user)`` gets the object (``get_object``: 404 when not visible), the validated input
    of the ``request`` serializer (``{}`` without one) and the user; it returns the changed object, which is
    answered with the ``response`` serializer (the viewset's by default), read again through the viewset's
    queryset. Services raise the domain errors the handler turns into 400/403/409.
    """
    url_path = url_path or name

    def view(self, http_request, pk=None):
        data = {}
        if request is not None:
            serializer = request(data=http_request.data)
            serializer.is_valid(raise_exception=True)
            data = serializer.validated_data
        obj = handler(self.get_object(), data, http_request.user)
        fresh = self.get_queryset().filter(pk=obj.pk).first() or obj
        out = response or self.get_serializer_class()
        return Response(out(fresh, context=self.get_serializer_context()).data)

    view.__name__ = name
    schema = extend_schema(request=request, responses=response, summary=summary or f"Transition: {url_path}",
                           description=description or f"`{url_path}`: 409 when not allowed from the current state, "
                                                      "403 without permission, 400 with what is wrong with the input.")
    # extend_schema outside @action: the action decorator replaces the view's kwargs, schema included
    return schema(action(detail=True, methods=["post"], url_path=url_path)(view))


def history_action(summary="Audit history"):
    """``GET /<resource>/<id>/history/``: the object's rows of the audit trail (same permission as the trail,
    and 404 for an object the user may not see)."""

    def history(self, request, pk=None):
        obj = self.get_object()
        if not request.user.has_perm("pmrelease.view_auditevent"):
            raise errors.PermissionDenied(CanViewAudit.message)
        return Response(AuditEventSerializer(AuditEvent.objects.for_object(obj), many=True).data)

    history.__name__ = "history"
    return extend_schema(responses=AuditEventSerializer(many=True), summary=summary)(
        action(detail=True, methods=["get"], url_path="history", pagination_class=None)(history))


class AuditEventViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """The audit trail: read-only by construction (no create, update or delete route exists). Newest first in
    cursor pages: follow `next` (an opaque `cursor`), `?page_size=` up to 1000; no total count."""

    queryset = AuditEvent.objects.all()
    serializer_class = AuditEventSerializer
    permission_classes = [permissions.IsAuthenticated, CanViewAudit]
    filterset_class = AuditEventFilter
    pagination_class = KeysetPages
    search_fields = ["object_repr", "reason", "actor_username", "action"]
    ordering_fields = ["id"]  # cursor pages need a unique, indexed ordering

    @extend_schema(responses={(200, "text/csv"): OpenApiTypes.STR}, summary="The filtered trail as CSV")
    @action(detail=False, methods=["get"], url_path="export")
    def export(self, request):
        """The filtered trail as CSV, for auditors."""
        queryset = self.filter_queryset(self.get_queryset()).order_by("id")
        response = StreamingHttpResponse(audit_csv_rows(queryset), content_type="text/csv; charset=utf-8")
        response["Content-Disposition"] = 'attachment; filename="audit-trail.csv"'
        return response


class ObtainTokenView(APIView):
    """``POST /api/v1/auth/token/`` with a user name and password: a new API token, whose key is in this answer
    only (the portal keeps its hash)."""

    authentication_classes = []
    permission_classes = []
    serializer_class = AuthTokenSerializer

    @extend_schema(request=AuthTokenSerializer, responses=inline_serializer("IssuedToken", {
        "token": serializers.CharField(help_text="The key, shown once: send it as `Authorization: Token <key>`.")}),
        summary="Obtain an API token")
    def post(self, request):
        serializer = AuthTokenSerializer(data=request.data, context={"request": request})
        serializer.is_valid(raise_exception=True)
        user = serializer.validated_data["user"]
        return Response({"token": tokens.issue_token(user=user, by=user, name="POST /api/v1/auth/token/")})


# --- API tokens and service accounts ---------------------------------------------------------------------
class ApiTokenSerializer(serializers.ModelSerializer):
    user = serializers.CharField(source="user.username", read_only=True)
    state = serializers.SerializerMethodField(help_text="active, expired or revoked")

    class Meta:
        model = ApiToken
        fields = ["id", "user", "name", "prefix", "scopes", "environments", "expires_at", "created_at",
                  "last_used_at", "revoked_at", "revoked_by", "state"]
        read_only_fields = fields

    def get_state(self, token) -> str:
        if token.revoked_at is not None:
            return "revoked"
        if token.expires_at is not None and token.expires_at <= timezone.now():
            return "expired"
        return "active"


class ApiTokenInput(serializers.Serializer):
    name = serializers.CharField(max_length=100, help_text="what uses the token, e.g. 'ci staging'")
    scopes = serializers.ListField(child=serializers.ChoiceField(choices=list(tokens.SCOPES)), min_length=1,
                                   help_text="; ".join(f"`{k}`: {v}" for k, v in tokens.SCOPES.items()))
    environments = serializers.ListField(child=serializers.CharField(max_length=50), required=False, default=list,
                                         max_length=tokens.MAX_ENVIRONMENTS,
                                         help_text="environment names the token is limited to; empty: every one")
    expires_at = serializers.DateTimeField(required=False, allow_null=True, default=None)
    account = serializers.CharField(required=False, max_length=150,
                                    help_text="a service account's (or another user's) name: administrators only; "
                                              "default: yourself")


class IssuedApiTokenSerializer(ApiTokenSerializer):
    key = serializers.CharField(read_only=True, help_text="shown once: send it as `Authorization: Bearer <key>`")

    class Meta(ApiTokenSerializer.Meta):
        fields = [*ApiTokenSerializer.Meta.fields, "key"]
        read_only_fields = fields


class ApiTokenViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """Your API tokens (an administrator sees every token). Issue with POST (the key is in that answer only),
    revoke with `POST /api/v1/tokens/<id>/revoke/`."""

    serializer_class = ApiTokenSerializer
    filterset_fields = ["user__username"]
    ordering_fields = ["created_at", "id"]

    def get_queryset(self):
        tokens_ = ApiToken.objects.select_related("user")
        if getattr(self, "swagger_fake_view", False):  # the OpenAPI schema's pass: no user
            return tokens_.none()
        return tokens_ if self.request.user.is_superuser else tokens_.filter(user=self.request.user)

    @extend_schema(request=ApiTokenInput, responses={201: IssuedApiTokenSerializer}, summary="Issue an API token")
    def create(self, request):
        serializer = ApiTokenInput(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        user = request.user
        if data.get("account"):
            user = get_user_model().objects.filter(username=data["account"]).first()
            if user is None:
                raise errors.ValidationFailed("invalid token", field_errors={
                    "account": [f"no account named {data['account']}"]})
        token, key = tokens.create_token(user=user, by=request.user, name=data["name"], scopes=data["scopes"],
                                         environments=data["environments"], expires_at=data["expires_at"])
        token.key = key
        return Response(IssuedApiTokenSerializer(token).data, status=201)

    @extend_schema(request=None, responses=ApiTokenSerializer, summary="Revoke an API token")
    @action(detail=True, methods=["post"], url_path="revoke")
    def revoke(self, request, pk=None):
        return Response(ApiTokenSerializer(tokens.revoke_token(token=self.get_object(), by=request.user)).data)
