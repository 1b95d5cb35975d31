"""``POST /api/v1/metrics/``: applications push samples to the builtin provider with an environment API key
(client or admin kind, as for the Unleash client API): ``Authorization: Bearer <key>`` or ``X-API-Key``."""
from drf_spectacular.utils import OpenApiResponse, extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView

from pmrelease import errors, registry

from . import services

INGEST_KINDS = ("client", "admin")


def _raw_key(request):
    header = request.headers.get("Authorization", "")
    if header.lower().startswith("bearer "):
        return header[7:].strip()
    return request.headers.get("X-API-Key", "").strip() or header.strip()


class SampleSerializer(serializers.Serializer):
    metric = serializers.CharField()
    value = serializers.FloatField()
    version = serializers.CharField(required=False)
    track = serializers.CharField(required=False, help_text="stable or canary (or any other track name)")
    flag = serializers.CharField(required=False, help_text="the feature flag these samples measure (its key): "
                                                           "what a flag's guarded ramp watches")
    at = serializers.DateTimeField(required=False, help_text="default: when the request arrives")


class MetricsIngestView(APIView):
    authentication_classes = []
    permission_classes = [AllowAny]

    @extend_schema(
        request=inline_serializer("MetricSamples", {"samples": SampleSerializer(many=True),
                                                    "environment": serializers.CharField(required=False)}),
        responses={202: inline_serializer("MetricsAccepted", {"accepted": serializers.IntegerField()}),
                   400: OpenApiResponse(description="a bad sample, named by its index"),
                   401: OpenApiResponse(description="no key, or an unknown or revoked one"),
                   403: OpenApiResponse(description="a key of another kind, or of another environment"),
                   413: OpenApiResponse(description="more samples than METRICS_INGEST_MAX_SAMPLES")},
        summary="Push metric samples to the builtin provider (environment API key)")
    def post(self, request):
        raw = _raw_key(request)
        if not raw:
            return Response({"detail": "an environment API key is required (Authorization: Bearer <key>)"},
                            status=status.HTTP_401_UNAUTHORIZED, headers={"WWW-Authenticate": "Bearer"})
        key = registry.resolve_api_key(raw)
        if key is None:
            return Response({"detail": "the API key is invalid or revoked"}, status=status.HTTP_401_UNAUTHORIZED,
                            headers={"WWW-Authenticate": "Bearer"})
        if key.kind not in INGEST_KINDS:
            return Response({"detail": f"a {key.kind} key cannot push metrics (use a client or admin key)"},
                            status=status.HTTP_403_FORBIDDEN)
        body = request.data
        if not isinstance(body, dict):
            raise errors.ValidationFailed('the body must be a JSON object {"samples": [...]}')
        named = body.get("environment")
        if named is not None and named != key.environment_name:
            return Response({"detail": f"this key belongs to {key.environment_name}, not {named}"},
                            status=status.HTTP_403_FORBIDDEN)
        unknown = set(body) - {"samples", "environment"}
        if unknown:
            raise errors.ValidationFailed(f"unknown fields: {', '.join(sorted(unknown))}")
        accepted = services.ingest(environment_id=key.environment_id, samples=body.get("samples"))
        return Response({"accepted": accepted}, status=status.HTTP_202_ACCEPTED)
