from django.apps import AppConfig


class PmreleaseConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "pmrelease"
    verbose_name = "Portal"

    def ready(self):
        from . import signals  # noqa: F401  (connects the FSM audit receiver)
