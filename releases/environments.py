"""Environment operations: the specification, the access matrix, and what deploys there (the deployment
target, testing gates, health checks). Each needs administrative access to the environment (creating one
needs an administrator) and is audited."""
from django.db import transaction

from pmrelease import audit, errors
from pmrelease.roles import Capability
from pmrelease.services import model_create, model_delete, model_update

from . import access
from .deploy import backends
from .models import (
    DeploymentTarget,
    Environment,
    EnvironmentAccess,
    HealthCheck,
    RollbackTrigger,
    TestingGate,
)

ENVIRONMENT_FIELDS = ["display_name", "purpose", "tier", "position", "promotes_to", "attached_to", "attachment",
                      "infrastructure", "data_source", "data_retention", "data_backup", "is_active", "bake_minutes"]
TARGET_FIELDS = ["backend", "config", "concurrency", "default_strategy", "default_parameters"]
GATE_FIELDS = ["name", "slug", "tests", "required", "timeout", "on_failure", "position"]
HEALTH_CHECK_FIELDS = ["name", "url", "expected_status", "timeout", "retries", "interval", "enabled"]


def environment_create(*, data, by):
    """A new environment (superusers only: it changes the promotion path and the access matrix)."""
    if not getattr(by, "is_superuser", False):
        raise errors.PermissionDenied("only an administrator may add environments")
    with transaction.atomic():
        return model_create(model=Environment, data=data, fields=["name", *ENVIRONMENT_FIELDS], by=by,
                            action="environment.create", audit_fields=ENVIRONMENT_FIELDS)


def environment_update(*, environment, data, by):
    """Edit an environment's specification (administrative access to it required)."""
    access.require(by, [environment], Capability.CONFIGURE)
    with transaction.atomic():
        env = Environment.objects.select_for_update().get(pk=environment.pk)
        env, _ = model_update(instance=env, data=data, fields=ENVIRONMENT_FIELDS, by=by, action="environment.update")
    return env


def environment_set_access(*, environment, group, level, note="", by):
    """Grant a role group an access level in an environment (administrative access required)."""
    access.require(by, [environment], Capability.CONFIGURE)
    with transaction.atomic():
        row, created = EnvironmentAccess.objects.select_for_update().get_or_create(
            environment=environment, group=group, defaults={"level": level, "note": note},
        )
        before = None if created else {"level": row.level, "note": row.note}
        row.level, row.note = level, note
        row.save()
        audit.record(action="environment.access", obj=environment, by=by, before=before,
                     after={"group": group.name, "level": int(level), "note": note})
    return row


# --- what deploys there: target, testing gates, health checks (rows of one environment) --------------------
TRIGGER_FIELDS = ["metric", "operator", "threshold", "duration", "action", "cooldown", "compare", "compare_mode",
                  "no_data", "scale_factor", "enabled", "position"]
_CONFIG_FIELDS = {DeploymentTarget: TARGET_FIELDS, TestingGate: GATE_FIELDS, HealthCheck: HEALTH_CHECK_FIELDS,
                  RollbackTrigger: TRIGGER_FIELDS}


def _config_save(model, *, environment, data, by, instance=None):
    """Create or edit one configuration row of ``environment``, audited on the environment as
    ``environment.<model>`` with what changed."""
    access.require(by, [environment], Capability.CONFIGURE)
    fields = _CONFIG_FIELDS[model]
    action = f"environment.{model._meta.model_name}"
    with transaction.atomic():
        if instance is None or instance.pk is None:
            return model_create(model=model, data=data, fields=fields, by=by, action=action,
                                extra={"environment": environment}, audit_obj=environment)
        row = model.objects.select_for_update().get(pk=instance.pk, environment=environment)
        return model_update(instance=row, data=data, fields=fields, by=by, action=action, audit_obj=environment)[0]


def _config_delete(instance, *, by):
    access.require(by, [instance.environment], Capability.CONFIGURE)
    with transaction.atomic():
        model_delete(instance=instance, by=by, fields=_CONFIG_FIELDS[type(instance)], audit_obj=instance.environment,
                     action=f"environment.{instance._meta.model_name}.delete")


def target_save(*, environment, data, by):
    """Set how ``environment`` is deployed to (backend, its config, concurrency, default strategy)."""
    current = DeploymentTarget.objects.filter(environment=environment).first()
    backend = data.get("backend", current.backend if current else "simulation")
    problems = backends.config_problems(backend, data.get("config", current.config if current else {}))
    if problems:
        raise errors.ValidationFailed("invalid deployment target config", field_errors={"config": problems})
    return _config_save(DeploymentTarget, environment=environment, data=data, by=by, instance=current)


def target_delete(*, target, by):
    _config_delete(target, by=by)


def gate_save(*, environment, data, by, gate=None):
    """Create or edit a testing gate of ``environment``."""
    return _config_save(TestingGate, environment=environment, data=data, by=by, instance=gate)


def gate_delete(*, gate, by):
    _config_delete(gate, by=by)


def health_check_save(*, environment, data, by, check=None):
    """Create or edit an HTTP health check of ``environment``."""
    return _config_save(HealthCheck, environment=environment, data=data, by=by, instance=check)


def health_check_delete(*, check, by):
    _config_delete(check, by=by)


def trigger_save(*, environment, data, by, trigger=None):
    """Create or edit one of ``environment``'s default rollback triggers (its metric must be one the
    environment's provider knows)."""
    from .deploy import triggers

    merged = {**(triggers.spec_of(trigger) if trigger and trigger.pk else {}), **data}
    merged.pop("position", None)
    problems = triggers.spec_problems(merged, known_metrics=triggers.known_metrics(environment), label="trigger")
    if problems:
        raise errors.ValidationFailed("invalid rollback trigger", reasons=problems,
                                      field_errors={"trigger": problems})
    return _config_save(RollbackTrigger, environment=environment, data=data, by=by, instance=trigger)


def trigger_delete(*, trigger, by):
    _config_delete(trigger, by=by)
