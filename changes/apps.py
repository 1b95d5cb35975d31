from django.apps import AppConfig


class ChangesConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "changes"
    verbose_name = "Change management"

    def ready(self):
        from django_fsm.signals import post_transition

        from flags import hooks as flag_hooks
        from flags import signals as flag_signals
        from monitoring import selectors as monitoring_selectors
        from releases import configuration, signals
        from releases.deploy import hooks

        from . import notifications, selectors, services

        hooks.deployment_gate.provide(services.deployment_gate)
        monitoring_selectors.change_submissions.provide(selectors.change_submissions)
        configuration.config_change_gate.provide(services.config_change_gate)
        configuration.config_change_saved.provide(services.config_change_saved)
        flag_hooks.decide.provide(services.decide_flag_change)
        flag_hooks.reference.provide(services.flag_change_reference)
        flag_hooks.references.provide(services.flag_change_references)
        flag_signals.flag_change_proposed.connect(services.on_flag_change_proposed,
                                                  dispatch_uid="changes.flag_change_proposed")
        signals.deployment_started.connect(lambda sender, deployment, **kw: services.on_deployment_started(
            deployment=deployment), weak=False, dispatch_uid="changes.deployment_started")
        signals.deployment_finished.connect(services.on_deployment_finished, dispatch_uid="changes.deployment_finished")
        # after pmrelease's audit receiver (connected first): the event goes where the transition is audited
        post_transition.connect(notifications.on_transition, dispatch_uid="changes.notify_transition")
