"""``GET /api/v1/slos/``: each SLO the user may see with its error budget and burn rates (read only: SLOs are
edited in the admin)."""
from django.utils import timezone
from drf_spectacular.utils import extend_schema_field
from rest_framework import mixins, serializers, viewsets

from .models import ServiceLevelObjective
from .selectors import slo_status, slo_statuses, visible_slos


class SloListSerializer(serializers.ListSerializer):
    """A page of SLOs: their statuses computed together (``selectors.slo_statuses``), not one SLO at a time."""

    def to_representation(self, data):
        slos = list(data.all() if hasattr(data, "all") else data)
        self.context["statuses"] = slo_statuses(slos, self.context.get("now"))
        return super().to_representation(slos)


class SloSerializer(serializers.ModelSerializer):
    environment = serializers.SlugRelatedField(slug_field="name", read_only=True)
    component = serializers.SlugRelatedField(slug_field="name", read_only=True, allow_null=True)
    status = serializers.SerializerMethodField(
        help_text="objective (a fraction), window, sli, good/total, error_budget, budget_remaining (1 untouched, "
                  "0 spent, below 0 over), burn_rates by span in seconds, and the SRE workbook's multiwindow "
                  "burn-rate alerts with their thresholds and whether they fire")

    class Meta:
        model = ServiceLevelObjective
        fields = ["id", "name", "description", "environment", "component", "sli", "objective", "window_days",
                  "enabled", "status"]
        read_only_fields = fields
        list_serializer_class = SloListSerializer

    @extend_schema_field(serializers.DictField())
    def get_status(self, obj):
        status = self.context.get("statuses", {}).get(obj.pk)
        return (status or slo_status(obj, self.context.get("now"))).as_dict()


class SloViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """Service level objectives with their remaining error budget and burn rates."""

    serializer_class = SloSerializer
    filterset_fields = ["sli", "enabled"]
    search_fields = ["name"]
    ordering_fields = ["name", "id"]

    def get_queryset(self):
        queryset = visible_slos(self.request.user).order_by("environment__position", "name", "id")
        environment = self.request.query_params.get("environment")
        return queryset.filter(environment__name=environment) if environment else queryset

    def get_serializer_context(self):
        return {**super().get_serializer_context(), "now": timezone.now()}
