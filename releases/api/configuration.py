"""Configuration API.

Applications: ``GET /api/v1/environments/<name>/config`` with an environment API key (client or admin kind, as
for the Unleash client API: ``Authorization: Bearer <key>`` or ``X-API-Key``): the current (or ``?version=``)
document, secret references only, with an ETag answered by 304.

People (session or token auth): versions of an environment (list, read, save a new one), comparison with another
version or environment, drift, a release's pin — as actions of the environment and release viewsets
(``releases.api.views``), the serializers here.
"""
from django.shortcuts import get_object_or_404
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView

from pmrelease import errors, registry

from .. import configuration
from ..models import ConfigVersion, Environment, SecretReference

APP_KINDS = ("client", "admin")


def _raw_key(request):
    header = request.headers.get("Authorization", "")
    if header.lower().startswith("bearer "):
        return header[7:].strip()
    return request.headers.get("X-API-Key", "").strip() or header.strip()


def version_param(request):
    raw = request.query_params.get("version")
    if raw in (None, ""):
        return None
    if not raw.isdigit() or int(raw) < 1 or int(raw) > 2_147_483_647:
        raise errors.ValidationFailed("version: a configuration version number (1, 2, …)",
                                      field_errors={"version": ["a positive whole number"]})
    return int(raw)


class ConfigDocument(serializers.Serializer):
    environment = serializers.CharField()
    version = serializers.IntegerField()
    created_at = serializers.DateTimeField()
    config = serializers.JSONField(help_text="The EnvironmentConfig document; secrets as references only.")


class EnvironmentConfigView(APIView):
    authentication_classes = []
    permission_classes = [AllowAny]

    @extend_schema(
        parameters=[OpenApiParameter("version", int, required=False, description="a stored version (default: "
                                                                                  "the current one)")],
        responses={200: ConfigDocument, 304: OpenApiResponse(description="If-None-Match matched the ETag"),
                   401: OpenApiResponse(description="no key, or an unknown or revoked one"),
                   403: OpenApiResponse(description="a frontend key, or a key of another environment"),
                   404: OpenApiResponse(description="no such environment, version, or no configuration yet")},
        summary="An environment's configuration, for its applications (environment API key)")
    def get(self, request, name):
        raw = _raw_key(request)
        if not raw:
            return Response({"detail": "an environment API key is required (Authorization: Bearer <key>)"},
                            status=status.HTTP_401_UNAUTHORIZED, headers={"WWW-Authenticate": "Bearer"})
        key = registry.resolve_api_key(raw)
        if key is None:
            return Response({"detail": "the API key is invalid or revoked"}, status=status.HTTP_401_UNAUTHORIZED,
                            headers={"WWW-Authenticate": "Bearer"})
        if key.kind not in APP_KINDS:
            return Response({"detail": f"a {key.kind} key cannot read configuration (use a client or admin key)"},
                            status=status.HTTP_403_FORBIDDEN)
        if key.environment_name != name:
            return Response({"detail": f"this key belongs to {key.environment_name}, not {name}"},
                            status=status.HTTP_403_FORBIDDEN)
        environment = get_object_or_404(Environment, name=name)
        version = configuration.served(environment, version=version_param(request))
        etag = f'"{environment.name}-v{version.number}"'
        if etag in [t.strip() for t in request.headers.get("If-None-Match", "").split(",")]:
            return Response(status=status.HTTP_304_NOT_MODIFIED, headers={"ETag": etag})
        return Response(version_data(version), headers={"ETag": etag, "Cache-Control": "private, no-cache"})


def version_data(version):
    return {"environment": version.environment.name, "version": version.number, "created_at": version.created_at,
            "config": version.document}


class ConfigVersionSerializer(serializers.ModelSerializer):
    environment = serializers.SlugRelatedField(slug_field="name", read_only=True)
    author = serializers.SlugRelatedField(slug_field="username", read_only=True)

    class Meta:
        model = ConfigVersion
        fields = ["environment", "number", "document", "comment", "author", "created_at", "changes"]
        read_only_fields = fields


class ConfigSaveInput(serializers.Serializer):
    document = serializers.JSONField(help_text="The whole EnvironmentConfig document (sections: database, cache, "
                                               "storage, email, monitoring, security, features).")
    comment = serializers.CharField(required=False, allow_blank=True, max_length=300)


class ChangeSerializer(serializers.Serializer):
    path = serializers.CharField()
    kind = serializers.ChoiceField(choices=["added", "removed", "changed"])
    before = serializers.JSONField(allow_null=True)
    after = serializers.JSONField(allow_null=True)
    must_match = serializers.BooleanField()


class DriftSerializer(serializers.Serializer):
    path = serializers.CharField()
    values = serializers.DictField(child=serializers.JSONField(allow_null=True),
                                   help_text="environment name → value (null: not declared there)")


class ConfigPinInput(serializers.Serializer):
    environment = serializers.SlugRelatedField(slug_field="name", queryset=Environment.objects.all())
    version = serializers.IntegerField(required=False, min_value=1, max_value=2_147_483_647,
                                       help_text="default: the environment's current version")


class SecretReferenceSerializer(serializers.ModelSerializer):
    environment = serializers.SlugRelatedField(slug_field="name", queryset=Environment.objects.all(),
                                               allow_null=True, required=False)
    owner = serializers.SlugRelatedField(slug_field="username", read_only=True)
    rotation = serializers.SerializerMethodField()

    class Meta:
        model = SecretReference
        fields = ["id", "name", "reference", "environment", "owner", "description", "rotation_automatic",
                  "rotation_frequency_days", "grace_period_days", "last_rotated_at", "backend_version",
                  "backend_metadata", "checked_at", "check_error", "rotation"]
        read_only_fields = ["backend_version", "backend_metadata", "checked_at", "check_error"]
        extra_kwargs = {"rotation_frequency_days": {"min_value": 1, "max_value": 3650},
                        "grace_period_days": {"min_value": 0, "max_value": 3650}}

    def get_rotation(self, obj) -> dict:
        from .. import secrets

        return secrets.rotation_of(obj).as_dict()
