from django.apps import AppConfig


class MonitoringConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "monitoring"

    def ready(self):
        from pmrelease import providers
        from releases.signals import deployment_finished

        from .metrics import services as metrics
        from .statuspage import incidents

        deployment_finished.connect(incidents.on_deployment_finished, dispatch_uid="monitoring.incident_drafts")
        providers.provider_for.provide(metrics.provider_for)
        providers.ingest.provide(lambda environment, samples: metrics.ingest(environment_id=environment.pk,
                                                                             samples=samples))
