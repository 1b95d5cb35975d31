"""The portal's own reliability: the DORA report's admin entry (no table of its own: the figures are computed
from deployments, incidents and change requests when the page is opened)."""
from django.db import models


class DoraReport(models.Model):
    """Unmanaged and empty: it gives the DORA page its place, name and permission in the admin."""

    class Meta:
        managed = False
        verbose_name = "DORA metrics"
        verbose_name_plural = "DORA metrics"
        default_permissions = ("view",)


class Sli(models.TextChoices):
    """What measures an SLO (its service level indicator)."""

    UPTIME = "uptime", "Uptime of the component"
    DEPLOYMENT_SUCCESS = "deployment_success", "Deployment success"


class ServiceLevelObjective(models.Model):
    """An SLO of a component (or of the environment's deployments) in an environment: ``objective`` percent
    good over a rolling ``window_days``; its budget and burn rates are computed when read (monitoring.slo)."""

    name = models.CharField(max_length=100)
    description = models.TextField(blank=True)
    environment = models.ForeignKey("releases.Environment", on_delete=models.CASCADE, related_name="slos")
    component = models.ForeignKey("monitoring.Component", null=True, blank=True, on_delete=models.CASCADE,
                                  related_name="slos", help_text="Required for uptime.")
    sli = models.CharField("indicator", max_length=30, choices=Sli.choices, default=Sli.UPTIME, help_text=(
        "Uptime: the component's status history (a major outage is down, a partial outage 30 % down). "
        "Deployment success: the environment's deployments that ended; failed and rolled back ones are bad."))
    objective = models.FloatField(help_text="Percent good, e.g. 99.9.")
    window_days = models.PositiveSmallIntegerField(default=30, help_text="The rolling window, 1 to 90 days.")
    enabled = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["environment__position", "name", "id"]
        verbose_name = "service level objective"
        constraints = [models.UniqueConstraint(fields=["environment", "name"], name="slo_name_per_environment")]

    def __str__(self):
        return f"{self.name} ({self.environment.name}): {self.objective:g} % over {self.window_days} d"
