from django.apps import AppConfig


class ReleasesConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "releases"
    verbose_name = "Releases and environments"

    def ready(self):
        from pmrelease import metrics

        from . import signals
        from .metrics import DeploymentQueueCollector, ReleasesCollector, on_deployment_finished

        metrics.register("releases", ReleasesCollector())
        metrics.register("releases.deployment_queue", DeploymentQueueCollector())
        signals.deployment_finished.connect(on_deployment_finished, dispatch_uid="releases.metrics")
