"""Service level objectives: create, change, delete (administrative access to the environment; audited)."""
from django.db import transaction

from pmrelease import errors
from pmrelease.roles import Capability
from pmrelease.services import model_create, model_delete, model_update
from releases import access

from .. import slo as arithmetic
from .models import ServiceLevelObjective, Sli

SLO_FIELDS = ["name", "description", "environment", "component", "sli", "objective", "window_days", "enabled"]


def slo_problems(data):
    """Field errors of an SLO's data (``data``: the merged values), as {field: [messages]}."""
    problems = {}
    for message in arithmetic.problems(objective=data.get("objective"), window_days=data.get("window_days")):
        name, _, text = message.partition(": ")
        problems.setdefault(name, []).append(text)
    if data.get("sli") not in Sli.values:
        problems["sli"] = [f"one of {', '.join(Sli.values)}"]
    component, environment = data.get("component"), data.get("environment")
    if data.get("sli") == Sli.UPTIME and component is None:
        problems["component"] = ["an uptime SLO measures a component of the status page"]
    if component is not None and environment is not None and not component.environments.filter(
            pk=environment.pk).exists():
        problems["component"] = [f"{component.name} is not linked to {environment.name} (link it on the component)"]
    return problems


def slo_save(*, data, by, slo=None):
    """Create (``slo`` None) or change an SLO."""
    merged = {**({name: getattr(slo, name) for name in SLO_FIELDS} if slo else {"window_days": 30, "enabled": True,
                                                                                 "sli": Sli.UPTIME}), **data}
    environments = [e for e in (merged.get("environment"), getattr(slo, "environment", None)) if e is not None]
    if not environments:
        raise errors.ValidationFailed("an SLO needs an environment", field_errors={"environment": ["required"]})
    access.require(by, environments, Capability.CONFIGURE)
    problems = slo_problems(merged)
    if problems:
        raise errors.ValidationFailed("invalid service level objective", field_errors=problems)
    with transaction.atomic():
        if slo is None:
            return model_create(model=ServiceLevelObjective, data=data, fields=SLO_FIELDS, by=by, action="slo.create")
        locked = ServiceLevelObjective.objects.select_for_update().get(pk=slo.pk)
        return model_update(instance=locked, data=data, fields=SLO_FIELDS, by=by, action="slo.update")[0]


def slo_delete(*, slo, by):
    access.require(by, [slo.environment], Capability.CONFIGURE)
    with transaction.atomic():
        model_delete(instance=slo, by=by, fields=SLO_FIELDS, action="slo.delete")
