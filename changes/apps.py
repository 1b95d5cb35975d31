from django.apps import AppConfig


class ChangesConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "changes"
    verbose_name = "Change management"

    def ready(self):
        from releases import signals
        from releases.deploy import hooks

        from . import services

        hooks.deployment_gate.provide(services.deployment_gate)
        signals.deployment_started.connect(lambda sender, deployment, **kw: services.on_deployment_started(
            deployment=deployment), weak=False, dispatch_uid="changes.deployment_started")
        signals.deployment_finished.connect(services.on_deployment_finished, dispatch_uid="changes.deployment_finished")
