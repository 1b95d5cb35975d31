from django.apps import AppConfig


class PmreleaseConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "pmrelease"
    verbose_name = "Portal"

    def ready(self):
        from . import logs, metrics, signals  # noqa: F401  (signals connects the FSM audit receiver)
        from .identity import checks as _identity_checks  # noqa: F401  (registers the system checks)
        from .identity import signals as identity_signals

        identity_signals.connect()

        from django.db.models.signals import post_migrate

        from .bootstrap import after_migrate

        post_migrate.connect(after_migrate, dispatch_uid="pmrelease.role_groups")

        metrics.register("pmrelease.audit", metrics.AuditCollector())
        metrics.register("pmrelease.celery_queues", metrics.QueueCollector())
        metrics.register("pmrelease.alerts", metrics.AlertCollector())
        metrics.connect_celery_signals()
        logs.connect_celery_signals()
