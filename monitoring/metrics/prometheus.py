"""The Prometheus provider: named metrics are PromQL templates, answered over the HTTP API.

A template names the metric for a set of versions at once and keeps them apart with ``by (version)``:
the placeholders ``{versions}`` (a regular expression matching each requested version), ``{app}``,
``{environment}``, ``{track}``, ``{flag}`` and ``{window}`` (the rate window) are filled in. A batch of
requests — many deployments, many triggers — costs one ``query_range`` per metric (over the union of their
windows), whatever the number of deployments. NaN points (no traffic) are left out: they are no data.
"""
import math
import os
import re

import requests

from pmrelease.providers import MetricProvider, ProviderError, Result, Sample

DEFAULT_TEMPLATES = {
    "error_rate": (
        'sum by (version) (rate(http_requests_total{app="{app}",version=~"{versions}",status=~"5.."}[{window}]))'
        ' / sum by (version) (rate(http_requests_total{app="{app}",version=~"{versions}"}[{window}]))'),
    "response_time_p95": (
        'histogram_quantile(0.95, sum by (version, le) '
        '(rate(http_request_duration_seconds_bucket{app="{app}",version=~"{versions}"}[{window}])))'),
}
PLACEHOLDERS = ("{versions}", "{app}", "{environment}", "{track}", "{flag}", "{window}")
MAX_POINTS = 10_000  # Prometheus refuses more than 11,000 points per series


def version_pattern(versions):
    """A RE2 alternation matching exactly these versions (their punctuation in brackets, no backslashes)."""
    def literal(version):
        return "".join(c if c.isalnum() else f"[{c}]" for c in version if c not in '"\\]^')
    return "|".join(literal(v) for v in sorted(set(versions))) or "^$"


def template_problems(templates):
    """What is wrong with an environment's extra templates (empty: nothing)."""
    if not isinstance(templates, dict):
        return ["templates must be an object of metric name → PromQL template"]
    found = []
    for name, template in templates.items():
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_:.]{0,99}", str(name)):
            found.append(f"{name!r}: a metric name is letters, digits, '_', ':' or '.'")
        elif not isinstance(template, str) or "{versions}" not in template or "by (" not in template:
            found.append(f"{name}: the template must select the versions with {{versions}} and keep them apart "
                         "with by (version)")
    return found


class PrometheusProvider(MetricProvider):
    kind = "prometheus"

    def __init__(self, *, url, environment, app, window, timeout=5.0, verify_tls=True, auth_env="",
                 templates=None, session=None):
        self.url = url.rstrip("/")
        self.environment = environment
        self.app = app
        self.window = window
        self.timeout = timeout
        self.verify_tls = verify_tls
        self.auth_env = auth_env
        self.templates = {**DEFAULT_TEMPLATES, **(templates or {})}
        self.session = session or requests
        self.queries = 0

    def known_metrics(self):
        return sorted(self.templates)

    def promql(self, metric, *, versions, track="", flag=""):
        text = self.templates[metric]
        for key, value in (("{versions}", version_pattern(versions)), ("{app}", self.app),
                           ("{environment}", self.environment), ("{track}", track), ("{flag}", flag),
                           ("{window}", self.window)):
            text = text.replace(key, value)
        return text

    def _headers(self):
        if not self.auth_env:
            return {}
        value = os.environ.get(self.auth_env, "")
        return {"Authorization": value} if value else {}

    def health(self, timeout):
        """One instant query (``vector(1)``) with the provider's URL, credentials and TLS settings."""
        try:
            response = self.session.get(f"{self.url}/api/v1/query", params={"query": "vector(1)"},
                                        headers=self._headers(), timeout=min(self.timeout, timeout),
                                        verify=self.verify_tls)
        except requests.RequestException as exc:
            return f"Prometheus at {self.url} did not answer: {exc.__class__.__name__}"
        try:
            ok = response.status_code == 200 and response.json().get("status") == "success"
        except ValueError:
            ok = False
        return "" if ok else f"Prometheus at {self.url} answered {response.status_code}, not a query result"

    def _get(self, endpoint, params):
        """The JSON body of a successful answer of ``/api/v1/<endpoint>``; raises ValueError saying what went
        wrong (unreachable, not JSON, or what Prometheus said)."""
        self.queries += 1
        try:
            response = self.session.get(f"{self.url}/api/v1/{endpoint}", params=params, headers=self._headers(),
                                        timeout=self.timeout, verify=self.verify_tls)
        except requests.RequestException as exc:
            raise ValueError(f"Prometheus at {self.url} did not answer: {exc.__class__.__name__}: {exc}"[:400]) \
                from None
        try:
            body = response.json()
        except ValueError:
            raise ValueError(f"Prometheus answered {response.status_code} without JSON") from None
        if response.status_code != 200 or body.get("status") != "success":
            raise ValueError(f"Prometheus answered {response.status_code}: {body.get('errorType', '')} "
                             f"{body.get('error', '')}".strip()[:400])
        return body

    def query(self, promql, *, at=None):
        """An instant query (alert rules): [Sample] of a vector, or one unlabelled sample of a scalar."""
        params = {"query": promql}
        if at is not None:
            params["time"] = f"{at:.3f}"
        try:
            data = self._get("query", params).get("data") or {}
        except ValueError as exc:
            raise ProviderError(str(exc)) from None
        kind, result = data.get("resultType"), data.get("result") or []
        if kind in ("scalar", "string"):
            result = [{"metric": {}, "value": result}] if result else []
        elif kind == "matrix":
            result = [{"metric": s.get("metric") or {}, "value": (s.get("values") or [[0, "NaN"]])[-1]}
                      for s in result]
        samples = []
        for series in result:
            try:
                value = float((series.get("value") or [0, "NaN"])[1])
            except (TypeError, ValueError):
                value = math.nan
            samples.append(Sample(labels=dict(series.get("metric") or {}), value=value))
        return samples

    def query_range(self, query, *, start, end, step):
        """The matrix of a PromQL query: {labels tuple: [(at, value)]}; raises ValueError on an answer that is
        not a success, saying what Prometheus said."""
        body = self._get("query_range", {"query": query, "start": f"{start:.3f}", "end": f"{end:.3f}",
                                          "step": f"{step:g}"})
        result = {}
        for series in (body.get("data") or {}).get("result") or []:
            labels = series.get("metric") or {}
            points = []
            for at, value in series.get("values") or []:
                try:
                    number = float(value)
                except (TypeError, ValueError):
                    continue
                if math.isfinite(number):
                    points.append((float(at), number))
            result[labels.get("version", "")] = points
        return result

    def fetch(self, requests_):
        """One query_range per metric (the union of the requests' windows and versions), sliced per request."""
        answers = {}
        by_metric = {}
        for request in requests_:
            by_metric.setdefault((request.metric, request.scope.track, request.scope.flag), []).append(request)
        for (metric, track, flag), group in by_metric.items():
            if metric not in self.templates:
                for request in group:
                    answers[request] = Result(error=f"{metric} is not a metric of this Prometheus provider "
                                                    f"(known: {', '.join(self.known_metrics())})")
                continue
            versions = {v for r in group for v in r.scope.versions}
            start, end = min(r.start for r in group), max(r.end for r in group)
            step = max(min(r.step for r in group), (end - start) / MAX_POINTS, 0.001)
            try:
                matrix = self.query_range(self.promql(metric, versions=versions, track=track, flag=flag),
                                          start=start, end=end, step=step)
            except ValueError as exc:
                for request in group:
                    answers[request] = Result(error=str(exc))
                continue
            for request in group:
                answers[request] = Result(
                    series={v: [(at, value) for at, value in matrix.get(v, []) if request.start <= at <= request.end]
                            for v in request.scope.versions}, step=step)
        return answers
