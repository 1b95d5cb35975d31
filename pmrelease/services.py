"""Service helpers every app uses: audited creation and field updates of a model row.

After HackSoft's ``model_update``: a service names the fields an outside caller may set; the helper refuses
anything else (400 naming the fields), sets the rest, validates the row with ``full_clean``, saves it, sets
many-to-many fields, and records the change in the audit trail (only the fields whose values changed).
Call inside the service's transaction, on a row it has locked.
"""
from django.core.exceptions import FieldDoesNotExist
from django.db import models

from . import audit, errors, leaks

_TEXT_FIELDS = (models.CharField, models.TextField, models.JSONField)


def scan_text(instance, plain, *, by, obj=None):
    """The leak check (``pmrelease.leaks``) over the free-text and JSON fields being set (not those with
    choices: their values are the model's own)."""
    texts = {}
    for name, value in plain.items():
        try:
            f = instance._meta.get_field(name)
        except FieldDoesNotExist:  # a property set through data: not a column
            continue
        if isinstance(f, _TEXT_FIELDS) and not f.choices and not isinstance(f, models.SlugField):
            texts[name] = value
    leaks.check(texts, by=by, obj=obj)


def _split(instance, data, fields):
    unknown = set(data) - set(fields)
    if unknown:
        raise errors.ValidationFailed(f"unknown or read-only fields: {', '.join(sorted(unknown))}",
                                      field_errors={name: ["unknown or read-only field"] for name in sorted(unknown)})
    m2m_names = {f.name for f in instance._meta.many_to_many}
    plain = {k: v for k, v in data.items() if k not in m2m_names}
    m2m = {k: v for k, v in data.items() if k in m2m_names}
    return plain, m2m


def model_create(*, model, data, fields, by, action=None, extra=None, clean_exclude=None, reason="",
                 audit_fields=None, audit_obj=None):
    """Create a ``model`` row from ``data`` (only ``fields`` allowed; ``extra`` set by the service itself),
    validated and audited as ``<model>.create`` (on ``audit_obj`` when the row belongs to another object's
    trail). Returns the saved instance."""
    instance = model(**(extra or {}))
    plain, m2m = _split(instance, data, fields)
    scan_text(instance, plain, by=by, obj=audit_obj)
    for name, value in plain.items():
        setattr(instance, name, value)
    errors.full_clean(instance, exclude=clean_exclude)
    instance.save()
    for name, values in m2m.items():
        getattr(instance, name).set(values)
    audit.record(action=action or f"{instance._meta.model_name}.create", obj=audit_obj or instance, by=by,
                 reason=reason, after=audit.snapshot(instance, fields=audit_fields or fields))
    return instance


def model_update(*, instance, data, fields, by, action=None, clean_exclude=None, reason="", audit_fields=None,
                 audit_obj=None):
    """Set ``data`` (only ``fields`` allowed) on ``instance``, validate, save and audit the diff as
    ``<model>.update``. Returns ``(instance, changed)`` where ``changed`` lists the fields whose values
    changed (nothing is saved or audited when it is empty)."""
    plain, m2m = _split(instance, data, fields)
    watched = audit_fields or fields
    before = audit.snapshot(instance, fields=watched)
    scan_text(instance, {k: v for k, v in plain.items() if v != getattr(instance, k, None)}, by=by,
              obj=audit_obj or instance)
    for name, value in plain.items():
        setattr(instance, name, value)
    errors.full_clean(instance, exclude=clean_exclude)
    for name, values in m2m.items():
        getattr(instance, name).set(values)
    b, a = audit.diff(before, audit.snapshot(instance, fields=watched))
    if a or plain:
        instance.save()
    if a:
        audit.record(action=action or f"{instance._meta.model_name}.update", obj=audit_obj or instance, by=by,
                     before=b, after=a, reason=reason)
    return instance, sorted(a)


def model_delete(*, instance, by, fields=None, action=None, reason="", audit_obj=None):
    """Delete ``instance``, keeping what it was in the audit trail as ``<model>.delete``."""
    audit.record(action=action or f"{instance._meta.model_name}.delete", obj=audit_obj or instance, by=by,
                 reason=reason, before=audit.snapshot(instance, fields=fields))
    instance.delete()
