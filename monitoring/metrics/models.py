"""Where an environment's metrics come from, and the builtin store's per-bucket aggregates."""
from django.db import models


class ProviderKind(models.TextChoices):
    BUILTIN = "builtin", "Builtin (applications push samples to /api/v1/metrics/)"
    PROMETHEUS = "prometheus", "Prometheus (HTTP API)"


class MetricsConfig(models.Model):
    """An environment's metric provider. Credentials are never stored: ``auth_env`` names the environment
    variable that holds the Authorization header value (``Bearer …`` or ``Basic …``)."""

    environment = models.OneToOneField("releases.Environment", on_delete=models.CASCADE, related_name="metrics")
    kind = models.CharField(max_length=12, choices=ProviderKind.choices, default=ProviderKind.BUILTIN)
    url = models.CharField(max_length=300, blank=True, help_text="Prometheus base URL, e.g. http://prometheus:9090")
    timeout = models.FloatField(default=5.0, help_text="Seconds per query.")
    verify_tls = models.BooleanField(default=True)
    auth_env = models.CharField(max_length=100, blank=True,
                                help_text="Name of the environment variable holding the Authorization header value.")
    app = models.CharField(max_length=100, blank=True, help_text="The {app} label value (default: the product).")
    rate_window = models.CharField(max_length=20, blank=True,
                                   help_text="The {window} of rate() in the templates (default: METRICS_RATE_WINDOW).")
    templates = models.JSONField(default=dict, blank=True,
                                 help_text="Named metrics → PromQL templates, added to or replacing the shipped ones.")

    class Meta:
        verbose_name = "metrics configuration"

    def __str__(self):
        return f"{self.environment.name}: {self.kind}"


class MetricBucket(models.Model):
    """Samples an application pushed, aggregated per bucket (count, sum, min, max, last): compact, and
    enough to judge a sustained breach at the bucket's resolution."""

    environment = models.ForeignKey("releases.Environment", on_delete=models.CASCADE, related_name="metric_buckets")
    metric = models.CharField(max_length=100)
    version = models.CharField(max_length=64, blank=True)
    track = models.CharField(max_length=20, blank=True)
    flag = models.CharField(max_length=100, blank=True, default="",
                            help_text="the feature flag the samples measure (a flag's guarded ramp reads these)")
    start = models.DateTimeField()
    count = models.PositiveIntegerField(default=0)
    sum = models.FloatField(default=0.0)
    min = models.FloatField(null=True)
    max = models.FloatField(null=True)
    last = models.FloatField(null=True)
    last_at = models.DateTimeField(null=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["environment", "metric", "version", "track", "flag", "start"],
                                               name="metric_bucket_unique")]
        indexes = [models.Index(fields=["start"]),
                   models.Index(fields=["environment", "metric", "start"])]

    def __str__(self):
        return f"{self.metric}@{self.version or '-'} {self.start:%H:%M:%S}: {self.count} samples"

    @property
    def mean(self):
        return self.sum / self.count if self.count else None
