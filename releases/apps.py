from django.apps import AppConfig


class ReleasesConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "releases"
    verbose_name = "Releases and environments"

    def ready(self):
        from django.db.models.signals import post_save
        from django_fsm.signals import post_transition

        from pmrelease import delivery, metrics

        from . import notifications, signals
        from .metrics import DeploymentQueueCollector, ReleasesCollector, on_deployment_finished
        from .models import DeploymentStep

        metrics.register("releases", ReleasesCollector())
        metrics.register("releases.deployment_queue", DeploymentQueueCollector())
        signals.deployment_finished.connect(on_deployment_finished, dispatch_uid="releases.metrics")
        delivery.environment_exists.provide(notifications.environment_exists)
        signals.deployment_started.connect(notifications.on_deployment_started, dispatch_uid="releases.notify_started")
        signals.deployment_finished.connect(notifications.on_deployment_finished,
                                            dispatch_uid="releases.notify_finished")
        post_transition.connect(notifications.on_transition, dispatch_uid="releases.notify_transition")
        post_save.connect(notifications.on_step_saved, sender=DeploymentStep, dispatch_uid="releases.notify_step")
