"""The builtin provider: samples applications push (``POST /api/v1/metrics/``) kept as per-bucket aggregates.

Each point of a series is a bucket's mean, timed at its latest sample, at the bucket's resolution
(``METRICS_BUILTIN_BUCKET_SECONDS``). One database query answers a whole batch of requests. Samples pushed
with a ``flag`` measure that feature flag (its guarded ramp asks for them); the others the application.
"""
import datetime as dt

from django.conf import settings

from pmrelease.providers import MetricProvider, Result

from .models import MetricBucket

DEFAULT_METRICS = ("error_rate", "response_time_p95")


def bucket_seconds():
    return settings.METRICS_BUILTIN_BUCKET_SECONDS


class BuiltinProvider(MetricProvider):
    kind = "builtin"

    def __init__(self, *, environment_id, metrics=()):
        self.environment_id = environment_id
        self.metrics = tuple(sorted({*DEFAULT_METRICS, *metrics}))
        self.queries = 0

    def known_metrics(self):
        return list(self.metrics)

    def fetch(self, requests_):
        answers = {}
        wanted = [r for r in requests_ if r.metric in self.metrics]
        for request in requests_:
            if request.metric not in self.metrics:
                answers[request] = Result(error=f"{request.metric} is not a builtin metric here (known: "
                                                f"{', '.join(self.metrics)})")
        if not wanted:
            return answers
        size = bucket_seconds()
        start = min(r.start for r in wanted) - size
        end = max(r.end for r in wanted)
        self.queries += 1
        rows = (MetricBucket.objects.filter(
            environment_id=self.environment_id, metric__in={r.metric for r in wanted},
            flag__in={r.scope.flag for r in wanted},
            version__in={v for r in wanted for v in r.scope.versions},
            start__gte=dt.datetime.fromtimestamp(start, tz=dt.UTC), start__lte=dt.datetime.fromtimestamp(end, tz=dt.UTC))
            .order_by("start").values_list("metric", "version", "track", "flag", "last_at", "sum", "count"))
        points = {}  # (metric, version, flag) -> [(at, value, track)]
        for metric, version, track, flag, last_at, total, count in rows:
            if count:
                points.setdefault((metric, version, flag), []).append((last_at.timestamp(), total / count, track))
        for request in wanted:
            series = {}
            for version in request.scope.versions:
                wanted_track = request.scope.track
                series[version] = sorted((at, value) for at, value, track in points.get((request.metric, version, request.scope.flag), ())
                                         if (not wanted_track or track == wanted_track)
                                         and request.start <= at <= request.end + 1e-3)
            answers[request] = Result(series=series, step=float(size))
        return answers
