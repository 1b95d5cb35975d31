"""DORA metrics: ``GET /api/v1/metrics/dora/`` and the admin page with its SVG charts (reads only; the
arithmetic is ``monitoring.dora``, the history ``monitoring.selectors``)."""
from django.utils.safestring import mark_safe
from drf_spectacular.utils import OpenApiParameter, extend_schema, inline_serializer
from rest_framework import permissions, serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from pmrelease import errors

from . import charts, dora, selectors


def parse_params(params):
    """(period, count, environment names) from query parameters; a 400 naming what is wrong otherwise."""
    period = params.get("period") or "month"
    if period not in dora.PERIODS:
        raise errors.ValidationFailed(f"period must be one of {', '.join(dora.PERIODS)}",
                                      field_errors={"period": [f"one of {', '.join(dora.PERIODS)}"]})
    raw = params.get("count") or "6"
    try:
        count = int(raw)
    except ValueError:
        count = 0
    if not 1 <= count <= selectors.MAX_PERIODS:
        raise errors.ValidationFailed(f"count must be a whole number from 1 to {selectors.MAX_PERIODS}",
                                      field_errors={"count": [f"1 to {selectors.MAX_PERIODS}"]})
    names = [n.strip() for value in params.getlist("environment") for n in value.split(",") if n.strip()]
    return period, count, names


def _report(user, params):
    period, count, names = parse_params(params)
    report = selectors.dora_report(user=user, period=period, count=count, environments=names or None)
    missing = sorted(set(names) - {e["environment"] for e in report["environments"]})
    if missing:
        raise errors.ValidationFailed(f"unknown environment: {', '.join(missing)}",
                                      field_errors={"environment": [f"no environment named {n} that you may see"
                                                                    for n in missing]})
    return report


class DoraView(APIView):
    permission_classes = [permissions.IsAuthenticated]

    @extend_schema(
        parameters=[OpenApiParameter("period", str, enum=list(dora.PERIODS), description="Default: month."),
                    OpenApiParameter("count", int, description=f"Periods up to now, 1 to {selectors.MAX_PERIODS} "
                                                               "(default 6)."),
                    OpenApiParameter("environment", str, description="Environment names, comma-separated or "
                                                                     "repeated (default: every one you may see).")],
        responses=inline_serializer("DoraReport", {
            "period": serializers.CharField(), "count": serializers.IntegerField(),
            "generated_at": serializers.DateTimeField(), "tiers": serializers.DictField(),
            "environments": serializers.ListField(child=serializers.DictField())}),
        summary="DORA metrics per environment and period, with their tiers")
    def get(self, request):
        return Response(selectors.dora_report_dict(_report(request.user, request.query_params)))


CHARTS = (
    ("deployment_frequency", "Deployments", lambda k: k.deployments, str),
    ("lead_time", "Lead time (median)", lambda k: k.lead_time, charts.duration),
    ("change_failure_rate", "Change failure rate", lambda k: k.change_failure_rate, charts.percent),
    ("time_to_restore", "Time to restore (median)", lambda k: k.time_to_restore, charts.duration),
)


def page_context(user, params):
    """What the admin page shows: per environment, the four charts and the table of the last period."""
    report = _report(user, params)
    rows = []
    for item in report["environments"]:
        keys = item["keys"]
        labels = [k.period.label for k in keys]
        svgs = [mark_safe(charts.bar_chart(title=title, labels=labels, values=[value(k) for k in keys],  # noqa: S308
                                           tiers=[k.tiers[metric] for k in keys], formatter=formatter))
                for metric, title, value, formatter in CHARTS]
        rows.append({**item, "charts": svgs, "latest": keys[-1],
                     "table": [{"label": k.period.label, "deployments": k.deployments,
                                "per_day": f"{k.per_day:.2f}", "lead_time": charts.duration(k.lead_time),
                                "cfr": charts.percent(k.change_failure_rate), "failed": k.failed,
                                "finished": k.finished, "restore": charts.duration(k.time_to_restore),
                                "rollback": charts.duration(k.automatic_rollback_time),
                                "unresolved": k.unresolved_incidents, "tiers": k.tiers,
                                "colours": {m: charts.TIER_COLOURS.get(t) for m, t in k.tiers.items()}}
                               for k in keys]})
    return {"report": report, "rows": rows, "periods": dora.PERIODS, "period": report["period"],
            "count": report["count"], "tier_colours": charts.TIER_COLOURS,
            "tier_labels": [(metric, [(t, dora.TIER_LABELS[metric][t]) for t in dora.TIER_ORDER])
                            for metric in dora.TIERS]}
