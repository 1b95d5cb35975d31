from django.apps import AppConfig


class MonitoringConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "monitoring"

    def ready(self):
        from releases.signals import deployment_finished

        from .statuspage import incidents

        deployment_finished.connect(incidents.on_deployment_finished, dispatch_uid="monitoring.incident_drafts")
