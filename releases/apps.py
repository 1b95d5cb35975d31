from django.apps import AppConfig


class ReleasesConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "releases"
    verbose_name = "Releases and environments"

    def ready(self):
        from pmrelease import metrics

        from .metrics import ReleasesCollector

        metrics.register("releases", ReleasesCollector())
