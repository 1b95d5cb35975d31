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
