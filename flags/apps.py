from django.apps import AppConfig


class FlagsConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "flags"

    def ready(self):
        from pmrelease import metrics, registry
        from releases.deploy import hooks

        from . import guards, services, snapshots
        from .metrics import FlagEvaluationsCollector

        hooks.set_flag_rollout.provide(services.flag_set_rollout_for_deployment)
        hooks.watch_participants.register("flag_ramps", guards.tick)
        registry.resolve_api_key.provide(snapshots.lookup_key)
        metrics.register("flags.evaluations", FlagEvaluationsCollector())
