"""Environment configuration operations: saving a new version (validated by the schema, scanned for leaks,
audited), comparing versions and environments, drift, a release's pin and what a deployment meets.

The arithmetic (schema, diff, drift) is ``releases.configschema``; this module adds the rows, permissions and
the audit trail. Editing needs administrative access to the environment; reading needs view access.
"""
from django.db import transaction

from pmrelease import audit, errors, leaks
from pmrelease.registry import Hook
from pmrelease.roles import Capability

from . import access
from . import configschema as schema
from .models import ConfigPolicy, ConfigVersion, DeploymentConfigDiff, Environment, ReleaseConfigPin

# changes: may ``environment``'s configuration change now? config_change_gate(environment=...) -> (refusals,
# change): refusals empty when it may — no change needed there, or an approved change covering the environment
# whose window is now. The version saved under it is then linked to that change: config_change_saved(change=...,
# version=..., by=...).
config_change_gate = Hook("config_change_gate", "the changes app gates configuration changes of environments "
                          "that require a change")
config_change_saved = Hook("config_change_saved", "the changes app links a saved configuration version to its change")


def current(environment):
    """The environment's latest configuration version, or None before the first save."""
    return ConfigVersion.objects.filter(environment=environment).order_by("-number").first()


def current_document(environment):
    version = current(environment)
    return version.document if version else None


def _field_errors(exc):
    return {path: [message] for path, message in exc.errors.items()}


def validated(document):
    """The normalised document, or ValidationFailed (400) naming every field path and problem."""
    try:
        normal = schema.validate(document)
    except schema.ConfigInvalid as exc:
        raise errors.ValidationFailed(f"invalid configuration: {exc}", field_errors=_field_errors(exc)) from exc
    return normal


def config_save(*, environment, document, by, comment=""):
    """Save ``document`` as the environment's next configuration version (immutable). Returns
    ``(version, created)``: nothing is written when it equals the current one."""
    access.require(by, [environment], Capability.CONFIGURE)
    normal = validated(document)
    comment = (comment or "").strip()
    if len(comment) > 300:
        raise errors.ValidationFailed("comment: at most 300 characters", field_errors={"comment": ["too long"]})
    texts = {path: value for path, value in schema.flatten(normal).items()
             if not schema.SECRET_REFERENCE.match(str(value))}
    leaks.check({**texts, "comment": comment}, by=by, obj=environment)
    with transaction.atomic():
        Environment.objects.select_for_update().get(pk=environment.pk)  # one save at a time per environment
        previous = current(environment)
        changes = schema.diff(previous.document if previous else {}, normal)
        if previous is not None and not changes:
            return previous, False
        refusals, change = config_change_gate(environment=environment)
        if refusals:
            raise errors.TransitionNotAllowed(f"{environment.name}'s configuration may not change now",
                                              reasons=refusals)
        version = ConfigVersion.objects.create(
            environment=environment, number=(previous.number + 1) if previous else 1, document=normal,
            comment=comment, author=by if getattr(by, "is_authenticated", False) else None,
            changes=[c.as_dict() for c in changes])
        audit.record(action="environment.config", obj=environment, by=by, reason=comment,
                     before={"version": previous.number} if previous else None,
                     after={"version": version.number, "changes": [str(c) for c in changes],
                            "change": str(change) if change else None})
        if change is not None:
            config_change_saved(change=change, version=version, by=by)
    return version, True


def section_values(document, section):
    """{dotted field: value} of one section of ``document`` (what the admin's section form shows)."""
    return schema.flatten((document or schema.defaults()).get(section) or {})


def config_section_save(*, environment, section, values, by, comment=""):
    """Set one section (``values``: {dotted field: value}, as the section form gives them) on top of the
    current configuration (or the defaults) and save the result as a new version."""
    if section not in schema.SECTIONS:
        raise errors.ValidationFailed(f"unknown section {section!r}", field_errors={"section": ["unknown"]})
    document = current_document(environment) or schema.defaults()
    if section == "features":
        document = {**document, "features": values}
    else:
        nested = {}
        for dotted, value in values.items():
            node = nested
            *parents, leaf = dotted.split(".")
            for part in parents:
                node = node.setdefault(part, {})
            node[leaf] = value
        document = {**document, section: nested}
    return config_save(environment=environment, document=document, by=by, comment=comment)


def version_of(environment, number):
    version = ConfigVersion.objects.filter(environment=environment, number=number).first()
    if version is None:
        raise errors.NotFound(f"{environment.name} has no configuration version {number}")
    return version


def compare(before, after):
    """[{path, kind, before, after}] from version (or document) ``before`` to ``after``."""
    docs = [v.document if isinstance(v, ConfigVersion) else (v or {}) for v in (before, after)]
    return [c.as_dict() | {"must_match": schema.is_must_match(c.path)} for c in schema.diff(*docs)]


def compare_environments(left, right, *, by):
    """The difference from ``left``'s current configuration to ``right``'s (view access to both)."""
    access.require(by, [left, right], Capability.VIEW)
    return compare(current(left), current(right))


def drift(*, by, environments=None):
    """Must-match keys that differ between the (active, configured) environments ``by`` may see:
    [{path, values: {environment: value}}]."""
    envs = list(environments if environments is not None else
                access.visible_environments(by).filter(is_active=True).order_by("position", "name"))
    documents = {}
    for env in envs:
        doc = current_document(env)
        if doc is not None:
            documents[env.name] = doc
    return [d.as_dict() for d in schema.drift(documents)]


# --- release pinning and what a deployment meets --------------------------------------------------------------
def release_pin(*, release, version, by):
    """Pin ``release`` to the configuration ``version`` it was tested with (reporting access to that
    environment: whoever reports its tests)."""
    access.require(by, [version.environment], Capability.REPORT)
    with transaction.atomic():
        pin = ReleaseConfigPin.objects.select_for_update().filter(release=release).first()
        before = {"environment": pin.version.environment.name, "version": pin.version.number} if pin else None
        if pin is None:
            pin = ReleaseConfigPin(release=release)
        pin.version, pin.pinned_by = version, by if getattr(by, "is_authenticated", False) else None
        pin.save()
        audit.record(action="release.config_pin", obj=release, by=by, before=before,
                     after={"environment": version.environment.name, "version": version.number})
    return pin


def pinned_version(release):
    pin = ReleaseConfigPin.objects.filter(release=release).select_related("version__environment").first()
    return pin.version if pin else None


def promotion_diff(release, environment):
    """What ``release`` meets in ``environment``: {pinned, current, changes, must_match} (None when the
    release pins nothing)."""
    pinned = pinned_version(release)
    if pinned is None:
        return None
    target = current(environment)
    changes = compare(pinned, target)
    return {"pinned": pinned, "current": target, "changes": changes,
            "must_match": [c for c in changes if c["must_match"]]}


def requires_pinned_match(environment):
    return ConfigPolicy.objects.filter(environment=environment, require_pinned_match=True).exists()


def deployment_refusals(release, environment, found):
    """Why the configuration refuses ``release`` in ``environment`` (``found``: its promotion_diff)."""
    if not requires_pinned_match(environment):
        return []
    if found is None:
        return [f"{environment.name} requires a release to pin the configuration it was tested with "
                f"({release.version} pins none)"]
    if found["must_match"]:
        keys = ", ".join(c["path"] for c in found["must_match"])
        return [f"{release.version} was tested with {found['pinned']}, which differs from {environment.name}'s "
                f"configuration on must-match keys: {keys}"]
    return []


def record_deployment_diff(deployment, found):
    """Keep on ``deployment`` the configuration differences it met (inside the creating transaction)."""
    if found is None:
        return None
    return DeploymentConfigDiff.objects.create(deployment=deployment, pinned=found["pinned"], current=found["current"],
                                               changes=found["changes"], must_match=found["must_match"])


def policy_set(*, environment, require_pinned_match, by):
    access.require(by, [environment], Capability.CONFIGURE)
    with transaction.atomic():
        policy, _ = ConfigPolicy.objects.select_for_update().get_or_create(environment=environment)
        before = {"require_pinned_match": policy.require_pinned_match}
        policy.require_pinned_match = bool(require_pinned_match)
        policy.save()
        audit.record(action="environment.config_policy", obj=environment, by=by, before=before,
                     after={"require_pinned_match": policy.require_pinned_match})
    return policy


def served(environment, *, version=None):
    """The version an application reads (``version``: a number, default the latest), or NotFound."""
    if version is None:
        found = current(environment)
        if found is None:
            raise errors.NotFound(f"{environment.name} has no configuration yet")
        return found
    return version_of(environment, version)
