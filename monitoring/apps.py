from django.apps import AppConfig


class MonitoringConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "monitoring"

    def ready(self):
        from django.db.models.signals import post_save

        from pmrelease import metrics, providers
        from pmrelease.views import degraded_checks
        from releases.models import Environment
        from releases.signals import deployment_finished

        from .alerting import services as alerting
        from .metrics import services as metric_store
        from .statuspage import incidents, publishing

        deployment_finished.connect(incidents.on_deployment_finished, dispatch_uid="monitoring.incident_drafts")
        degraded_checks.register("status_page", publishing.problems)
        degraded_checks.register("metric_providers", metric_store.provider_problems)
        post_save.connect(alerting.on_environment_saved, sender=Environment, dispatch_uid="monitoring.alert_defaults")
        metrics.register("monitoring.status_publish", publishing.PublishCollector())
        metrics.alert_states.provide(alerting.alert_states)
        providers.provider_for.provide(metric_store.provider_for)
        providers.ingest.provide(lambda environment, samples: metric_store.ingest(environment_id=environment.pk,
                                                                                  samples=samples))
