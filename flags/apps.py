from django.apps import AppConfig


class FlagsConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "flags"

    def ready(self):
        from releases.deploy import hooks

        from . import services

        hooks.set_flag_rollout.provide(services.flag_set_rollout_for_deployment)
