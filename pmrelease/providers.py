"""Metric providers: one interface for every source of the metrics rules are judged on.

``monitoring.metrics`` implements the providers (Prometheus over its HTTP API, the builtin store that
applications push to) and registers them here at start-up, so that the deployment engine (``releases``) and
the alert rules reach them without importing upward. A provider answers a batch of requests in as few
queries as it can (Prometheus: one per metric and environment, whatever the number of deployments) and
returns, for each request, a series or an explicit no-data or error outcome: never a silent pass.
"""
import abc
from dataclasses import dataclass, field

from .registry import Hook


@dataclass(frozen=True)
class Scope:
    """What a series is about. ``versions``: the versions wanted (one series each)."""

    environment: str
    versions: tuple = ()
    track: str = ""
    app: str = ""
    flag: str = ""


@dataclass(frozen=True)
class Request:
    metric: str
    scope: Scope
    start: float  # unix seconds
    end: float
    step: float  # seconds between points


@dataclass
class Result:
    """The answer to one request: ``series`` per version ({version: [(at, value)]}), or an ``error``."""

    series: dict = field(default_factory=dict)
    error: str = ""
    step: float = 0.0  # the series' resolution in seconds (the provider's, which may be coarser than asked)

    def for_version(self, version):
        return self.series.get(version, [])


class ProviderError(Exception):
    """The provider could not answer (unreachable, timed out, refused the query)."""


class MetricProvider(abc.ABC):
    """A configured provider of one environment (built from the environment's metrics configuration)."""

    kind = ""

    @abc.abstractmethod
    def known_metrics(self):
        """The metric names this provider can answer (for validation and the admin's list)."""

    @abc.abstractmethod
    def fetch(self, requests):
        """Answer a batch: ``{request: Result}``. Never raises for one bad request: its Result says why."""

    def health(self, timeout):
        """Why the provider cannot answer now ("" when it can), within ``timeout`` seconds: /readyz reports it
        as degraded. The default: nothing outside the portal to ask."""
        return ""

    def query(self, promql, *, at=None):
        """Evaluate a PromQL expression at one instant (alert rules): ``[Sample]``, empty when nothing matches.
        Raises ProviderError when the provider cannot answer, or does not speak PromQL."""
        raise ProviderError(f"the {self.kind or 'configured'} metric provider does not evaluate PromQL: alert rules "
                            "need a Prometheus provider for the environment")


@dataclass(frozen=True)
class Sample:
    """One element of an instant query's answer: the series' labels and its value."""

    labels: dict
    value: float


# The monitoring app provides both in its AppConfig.ready.
provider_for = Hook("metric_provider_for", "the metric provider configured for an environment: "
                    "provider_for(environment) -> MetricProvider")
ingest = Hook("metric_ingest", "push samples into the builtin metric store: ingest(environment, samples) where "
              "each sample is {metric, value, version, track, at}")


def fetch_all(pairs):
    """Ask each environment's provider once for its requests: ``pairs`` is ``[(environment, request)]``; returns
    ``{request: Result}``. A provider that fails, or a bug in one, answers its own requests with the error and
    never stops the others (the rollback watch and flag guards judge many environments in one round)."""
    by_env = {}
    for environment, request in pairs:
        by_env.setdefault(environment.pk, (environment, []))[1].append(request)
    results = {}
    for environment, requests_ in by_env.values():
        try:
            results |= provider_for(environment).fetch(requests_)
        except Exception as exc:  # one provider's bug must not stop the round
            results |= {r: Result(error=f"{exc.__class__.__name__}: {exc}"[:400]) for r in requests_}
    return results
