"""Operations on feature flags: create and edit flags, their per-environment state, segments, API keys,
gradual ramps, approvals, metrics. Views, admin, API, commands and tasks all come through here.

Each service checks permission, opens a transaction, validates, saves, bumps the environment's version token
(so every process rebuilds its snapshot within the check interval) and records the audit event.
``by=None`` means the system (the deployment engine, Celery beat): ``pmrelease.audit`` records it as
"system"; a string names a system actor (a management command).
"""
import copy
import datetime as dt
import logging
import secrets

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.color import no_style
from django.db import IntegrityError, connection, transaction
from django.db.models import F, Max
from django.utils import timezone

from pmrelease import audit, delivery, errors, leaks
from pmrelease.roles import Capability
from pmrelease.services import model_update
from releases import access
from releases.models import Environment

from . import documents, guards, hooks, rollouts, signals, snapshots, transfer
from .engine import Snapshot, compute_variant_weights
from .engine.validation import validate_constraint, validate_strategy, validate_variants
from .models import (
    ApiKey,
    ApiKeyKind,
    ApprovalPolicy,
    ChangeStatus,
    ClientApplication,
    FeatureFlag,
    FlagChangeRequest,
    FlagEnvironment,
    FlagMetricsBucket,
    FlagType,
    GradualRollout,
    Lifecycle,
    RampStatus,
    RolloutKind,
    Segment,
)

logger = logging.getLogger(__name__)

FLAG_FIELDS = ["description", "type", "owner", "tags", "lifecycle", "impression_data", "parent", "parent_enabled",
               "parent_variants", "monitoring_metrics", "monitoring_alerts"]
STATE_FIELDS = ["enabled", "rollout", "strategies", "variants"]
_UNSET = object()


class ApprovalRequired(errors.DomainError):
    """The environment's policy requires a second person's approval: propose the change instead."""

    status_code = 409
    code = "approval_required"


def _is_person(by):
    return getattr(by, "is_authenticated", False)


def _require(by, environment):
    """Editing flags in an environment needs full access to it (the DEPLOY capability); the system may."""
    if by is None or isinstance(by, str):
        return
    access.require(by, [environment], Capability.DEPLOY)


def can_edit_flags(by):
    """Whether ``by`` may create and edit flag definitions and segments: full access to at least one environment
    (the system and superusers may)."""
    if by is None or isinstance(by, str) or getattr(by, "is_superuser", False):
        return True
    return any(access.can(by, env, Capability.DEPLOY) for env in Environment.objects.all())


def _require_any(by):
    """Creating or editing a flag's definition needs full access to at least one environment."""
    if not can_edit_flags(by):
        raise errors.PermissionDenied(
            f"{by.get_username()} has full access to no environment; editing flags needs full access to one"
        )


def _changed_everywhere(*, flags=(), segments=()):
    """Flag definitions and segments are the same in every environment: each environment's snapshot reloads them."""
    snapshots.changed(list(Environment.objects.values_list("pk", flat=True)), flags=flags, segments=segments)


def _fields(instance, names):
    """A JSON-able dict of ``names`` (foreign keys as ids; JSON lists kept in order, unlike audit.snapshot).

    audit.snapshot sorts every list value (reordering tags, and failing on lists of objects such as strategies,
    constraints or monitoring alerts), so the services auditing JSON fields (flag_update, segment_save, _apply)
    snapshot with this and do not use ``pmrelease.services.model_update``."""
    data = {}
    for name in names:
        field = instance._meta.get_field(name)
        data[name] = getattr(instance, field.attname)
    return data


# --- flags --------------------------------------------------------------------------------------------
def _validate_flag(flag):
    problems = []
    if not isinstance(flag.tags, list) or not all(isinstance(t, str) and t.strip() for t in flag.tags):
        problems.append("tags must be a list of non-empty strings")
    if not isinstance(flag.monitoring_metrics, list) or not all(isinstance(m, str) for m in flag.monitoring_metrics):
        problems.append("monitoring metrics must be a list of metric names")
    problems += guards.guard_problems(flag.monitoring_alerts)
    if not isinstance(flag.parent_variants, list) or not all(isinstance(v, str) for v in flag.parent_variants):
        problems.append("parent variants must be a list of variant names")
    if flag.parent_id:
        if flag.parent_id == flag.pk:
            problems.append("a flag cannot depend on itself")
        elif flag.parent.parent_id:
            problems.append(f"parent {flag.parent.key!r} depends on another flag (only one level is supported)")
        elif flag.pk and flag.children.exists():
            problems.append("a flag that other flags depend on cannot have a parent itself")
    if problems:
        raise errors.ValidationFailed("; ".join(problems), reasons=problems)


def flag_create(*, key, description="", type=FlagType.RELEASE, owner=None, tags=None, by=None, **extra):
    """A new flag, off in every environment."""
    _require_any(by)
    if tags is None:
        tags = []
    if not isinstance(tags, list):
        raise errors.ValidationFailed(f"tags must be a list of strings, not {tags!r}", field_errors={"tags": ["list"]})
    if _is_person(by):
        leaks.check({"description": description, "tags": list(tags)}, by=by)
    flag = FeatureFlag(key=key, description=description, type=type, owner=owner, tags=list(tags))
    for name, value in extra.items():
        if name not in FLAG_FIELDS:
            raise errors.ValidationFailed(f"unknown field {name!r}")
        setattr(flag, name, value)
    errors.full_clean(flag)
    _validate_flag(flag)
    flag.dependencies = _dependencies(flag)
    return _flag_insert(flag, by=by)


def _flag_insert(flag, *, by, reason=""):
    with transaction.atomic():
        try:
            with transaction.atomic():
                flag.save()
        except IntegrityError:
            raise errors.ValidationFailed(f"a flag {flag.key!r} already exists",
                                          field_errors={"key": ["exists"]}) from None
        FlagEnvironment.objects.bulk_create([FlagEnvironment(flag=flag, environment=env)
                                             for env in Environment.objects.all()])
        audit.record(action="flag.create", obj=flag, by=by, after=_fields(flag, ["key", *FLAG_FIELDS, *IMPORTED_FIELDS]),
                     reason=reason)
        _changed_everywhere(flags=[flag.key])
    return flag


def _dependencies(flag):
    """The Unleash dependencies the parent fields stand for."""
    return documents.dependencies_of(flag.parent.key if flag.parent_id else None, flag.parent_enabled,
                                     flag.parent_variants)


DEPENDENCY_FIELDS = ("parent", "parent_enabled", "parent_variants")
IMPORTED_FIELDS = ("dependencies", "unleash")  # what only the import writes (the parent fields derive dependencies)
# The feature keys the flag fields are exported as.
_FEATURE_KEYS = {"description": "description", "type": "type", "impression_data": "impressionData",
                 "parent": "dependencies", "parent_enabled": "dependencies", "parent_variants": "dependencies"}


def _serving_changes(before, flag):
    """The changed fields that change what is served: archiving (or un-archiving) and the dependency."""
    changed = [name for name in DEPENDENCY_FIELDS if before[name] != getattr(flag, flag._meta.get_field(name).attname)]
    if before["lifecycle"] != flag.lifecycle and Lifecycle.ARCHIVED in (before["lifecycle"], flag.lifecycle):
        changed.insert(0, "lifecycle")
    return changed


def _require_where_enabled(by, flag, changed):
    """Archiving a flag or changing its dependency can turn it off (or on) wherever it is enabled: that needs
    full access to each of those environments, and is refused where flag changes need a second person."""
    if not changed or by is None or isinstance(by, str):
        return
    environments = [s.environment for s in flag.states.filter(enabled=True).select_related("environment")]
    what = " and ".join(changed)
    denied = [env.name for env in environments if not access.can(by, env, Capability.DEPLOY)]
    if denied:
        raise errors.PermissionDenied(
            f"changing the {what} of {flag.key} affects {', '.join(denied)}, where it is enabled: that needs full "
            f"access there")
    if _is_person(by):
        access.require_step_up(by, environments, f"change the {what} of {flag.key}")
    guarded = [env.name for env in environments if _is_person(by) and requires_approval(env)]
    if guarded:
        raise ApprovalRequired(
            f"changing the {what} of {flag.key} affects {', '.join(guarded)}, where it is enabled and changes need "
            f"a second person's approval: turn it off there first through a change request")


def flag_validate(*, flag, by=None):
    """Check an edited, unsaved ``flag`` as flag_update would (ValidationFailed, PermissionDenied,
    ApprovalRequired), so that forms can show the refusal before saving."""
    _validate_flag(flag)
    if flag.pk:
        before = _fields(FeatureFlag.objects.get(pk=flag.pk), FLAG_FIELDS)
        _require_where_enabled(by, flag, _serving_changes(before, flag))


def flag_update(*, flag, data, by=None, reason=""):
    _require_any(by)
    unknown = set(data) - set(FLAG_FIELDS)
    if unknown:
        raise errors.ValidationFailed(f"unknown or read-only fields: {', '.join(sorted(unknown))}")
    with transaction.atomic():
        flag = FeatureFlag.objects.select_for_update().get(pk=flag.pk)
        before = _fields(flag, FLAG_FIELDS)
        if _is_person(by):
            leaks.check({name: data[name] for name in ("description", "tags") if name in data
                         and data[name] != before[name]}, by=by, obj=flag)
        for name, value in data.items():
            setattr(flag, name, value)
        errors.full_clean(flag, exclude=["key"])  # the key never changes (an imported one is kept as it was)
        _validate_flag(flag)
        changed = _serving_changes(before, flag)
        _require_where_enabled(by, flag, changed)
        edited = [name for name in FLAG_FIELDS if before[name] != getattr(flag, flag._meta.get_field(name).attname)]
        if set(edited) & set(DEPENDENCY_FIELDS):
            flag.dependencies = _dependencies(flag)  # the portal's parent replaces imported dependencies
        flag.unleash = transfer.source_after_edit(flag.unleash, {_FEATURE_KEYS[n] for n in edited
                                                                 if n in _FEATURE_KEYS})
        _flag_save(flag, before, FLAG_FIELDS, by=by, reason=reason)
    return flag


def _flag_save(flag, before, fields, *, by, reason):
    """Save an edited flag; when ``fields`` changed, audit them and tell every environment's snapshot."""
    flag.save()
    b, a = audit.diff(before, _fields(flag, fields))
    if a:
        audit.record(action="flag.update", obj=flag, by=by, before=b, after=a, reason=reason)
        _changed_everywhere(flags=[flag.key])


def state_for(flag, environment):
    state, _ = FlagEnvironment.objects.get_or_create(flag=flag, environment=environment)
    return state


# --- per-environment configuration ---------------------------------------------------------------------
def validate_config(*, strategies, variants, stored=None):
    """Messages saying what is wrong with strategies / variants (empty list: valid).

    ``stored``: the configuration being edited. What it already holds, unchanged — a strategy, a constraint, a
    segment reference or the variants, say an imported construct that can never match — is not refused again;
    new input is validated in full."""
    problems = []
    if not isinstance(strategies, list):
        return ["strategies must be a list"]
    stored = stored or {}
    kept = [s for s in stored.get("strategies") or [] if isinstance(s, dict)]
    kept_constraints = [c for s in kept for c in s.get("constraints") or []]
    kept_names = {s.get("name") for s in kept}
    kept_segments = {i for s in kept for i in s.get("segments") or [] if isinstance(i, int)}
    segment_ids = set(Segment.objects.values_list("pk", flat=True)) | kept_segments
    for index, strategy in enumerate(strategies):
        if strategy in kept:
            continue
        label = f"strategy {index + 1}"
        if isinstance(strategy, dict) and strategy.get("name"):
            label += f" ({strategy['name']})"
        checked = strategy
        if isinstance(strategy, dict) and isinstance(strategy.get("constraints"), list):
            checked = dict(strategy, constraints=[c for c in strategy["constraints"] if c not in kept_constraints])
        unknown_kept = isinstance(strategy, dict) and strategy.get("name") in kept_names
        problems.extend(f"{label}: {m}" for m in validate_strategy(checked, segment_ids=segment_ids)
                        if not (unknown_kept and m.startswith("unknown strategy")))
    if variants != stored.get("variants"):
        problems.extend(f"flag variants: {m}" for m in validate_variants(variants))
    return problems


def _weighting(variants):
    return [(v.get("name"), v.get("weight"), v.get("weightType")) for v in variants or [] if isinstance(v, dict)]


def _weighed(variants, kept):
    """Variants with their weights as they will be served. Weights are computed (the way the Unleash server
    does) only when the weighting changed — names, weights or weight types differ from every kept list — so
    that editing a payload or an override never moves a user to another variant."""
    if not isinstance(variants, list) or not variants or any(_weighting(variants) == _weighting(k) for k in kept):
        return variants
    return compute_variant_weights([dict(v, stickiness=v.get("stickiness") or "default") for v in variants])


def _weighed_config(config, stored):
    """``config`` with the variant weights to serve (flag variants and each strategy's)."""
    kept = [s.get("variants") for s in stored["strategies"] if isinstance(s, dict) and s.get("variants")]
    strategies = [dict(s, variants=_weighed(s["variants"], kept)) if isinstance(s, dict) and s.get("variants")
                  else s for s in config["strategies"]]
    return dict(config, variants=_weighed(config["variants"], [stored["variants"]]), strategies=strategies)


def requires_approval(environment):
    policy = ApprovalPolicy.objects.filter(environment=environment).first()
    return policy.require_approval if policy is not None else environment.is_production


def approval_policy_validate(*, environment, by=None):
    """Check that ``by`` may change the approval policy of ``environment`` (administrative access to it), as
    approval_policy_set does, so that forms can show the refusal before saving."""
    if _is_person(by) and not access.can(by, environment, Capability.CONFIGURE):
        raise errors.PermissionDenied(
            f"changing the approval policy of {environment.name} needs administrative access to it")


def approval_policy_set(*, environment, require_approval, by=None, reason=""):
    """Whether flag changes in ``environment`` need a second person's approval (administrative access)."""
    if not isinstance(require_approval, bool):
        raise errors.ValidationFailed(f"require_approval must be true or false, not {require_approval!r}")
    approval_policy_validate(environment=environment, by=by)
    with transaction.atomic():
        policy = ApprovalPolicy.objects.select_for_update().filter(environment=environment).first()
        before = requires_approval(environment)
        if policy is None:
            policy = ApprovalPolicy(environment=environment)
        policy.require_approval = require_approval
        policy.save()
        audit.record(action="flag.approval_policy.set", obj=policy, by=by, reason=reason,
                     before={"environment": environment.name, "require_approval": before},
                     after={"environment": environment.name, "require_approval": require_approval})
    return policy


def _normalise_config(state, enabled, strategies, variants, rollout):
    config = state.config()
    if enabled is not _UNSET:
        if not isinstance(enabled, bool):
            raise errors.ValidationFailed(f"enabled must be true or false, not {enabled!r}")
        config["enabled"] = enabled
    if strategies is not _UNSET:
        config["strategies"] = strategies
    if variants is not _UNSET:
        config["variants"] = variants if variants is not None else []
    if rollout is not _UNSET:
        if rollout not in RolloutKind.values:
            raise errors.ValidationFailed(f"rollout {rollout!r} is not one of {', '.join(RolloutKind.values)}")
        config["rollout"] = rollout
    stored = state.config()
    problems = validate_config(strategies=config["strategies"], variants=config["variants"], stored=stored)
    if problems:
        raise errors.ValidationFailed(
            f"{state.flag.key} @ {state.environment.name}: " + "; ".join(problems), reasons=problems
        )
    return _weighed_config(config, stored)


def _locked(state):
    return FlagEnvironment.objects.select_for_update(of=("self",)).select_related("flag", "environment").get(pk=state.pk)


def _apply(state, config, *, by, reason, action="flag.state.update"):
    """Write ``config`` to ``state`` (locked), audit, bump. Inside a transaction."""
    state = _locked(state)
    before = state.config()
    for name in STATE_FIELDS:
        setattr(state, name, copy.deepcopy(config[name]))
    state.save()
    b, a = audit.diff(before, state.config())
    if a:
        audit.record(action=action, obj=state, by=by, before=b, after=a, reason=reason)
        snapshots.changed([state.environment_id], flags=[state.flag.key])
    return state


def _needs_second_person(by, state, config):
    """A person's change of ``state`` to ``config`` where the environment's policy needs a second person."""
    return _is_person(by) and requires_approval(state.environment) and config != state.config()


def _propose(state, config, *, by, reason):
    """Record ``config`` as a pending change request of ``state`` (audited). Inside a transaction."""
    change = FlagChangeRequest.objects.create(
        state=state, proposed=config, base=state.config(), reason=reason, requested_by=by if _is_person(by) else None,
    )
    audit.record(action="flag.change.propose", obj=state, by=by, before=change.base, after=config, reason=reason)
    signals.flag_change_proposed.send(sender=FlagChangeRequest, change=change)
    return change


def _change(state, build, *, by, reason, propose, action="flag.state.update", applied_reason=None):
    """Apply ``build(locked_state)`` (the new configuration) to ``state``. Where the environment's policy needs a
    second person's approval of this person's change, propose it as a change request (``propose``) or refuse it
    (ApprovalRequired). Returns ``(state, None)`` when applied, ``(state, change_request)`` when proposed."""
    _require(by, state.environment)
    with transaction.atomic():
        # Lock and re-read first: the merged configuration is built on the current row, not on what the caller
        # read earlier (two concurrent edits of different fields must not undo each other).
        state = _locked(state)
        config = build(state)
        if _is_person(by):
            current = state.config()
            leaks.check({"reason": reason, **{name: config[name] for name in ("variants", "strategies")
                                              if config.get(name) != current.get(name)}}, by=by, obj=state)
        if _needs_second_person(by, state, config):
            if not propose:
                raise ApprovalRequired(
                    f"flag changes in {state.environment.name} need a second person's approval: propose the change")
            return state, _propose(state, config, by=by, reason=reason)
        return _apply(state, config, by=by, reason=applied_reason or reason, action=action), None


def flag_state_update(*, state, enabled=_UNSET, strategies=_UNSET, variants=_UNSET, rollout=_UNSET, by=None,
                      reason=""):
    """Change a flag's state in one environment. Invalid strategies/variants are refused with messages.

    Raises ApprovalRequired when the environment's policy needs a second person (``flag_state_change`` proposes
    the change instead). Returns the FlagEnvironment.
    """
    state, _ = _change(state, lambda s: _normalise_config(s, enabled, strategies, variants, rollout), by=by,
                       reason=reason, propose=False)
    return state


def flag_state_change(*, state, enabled=_UNSET, strategies=_UNSET, variants=_UNSET, rollout=_UNSET, by=None,
                      reason=""):
    """Change a flag's state in one environment, or — where the environment's policy needs a second person's
    approval of this person's change — propose it. Returns ``(state, None)`` when applied, ``(state,
    change_request)`` when proposed."""
    return _change(state, lambda s: _normalise_config(s, enabled, strategies, variants, rollout), by=by,
                   reason=reason, propose=True)


def flag_toggle(*, state, enabled, by=None, reason=""):
    return flag_state_update(state=state, enabled=enabled, by=by, reason=reason)


def _check_percentage(percentage):
    if isinstance(percentage, bool) or not isinstance(percentage, int | float) or not 0 <= percentage <= 100:
        raise errors.ValidationFailed(f"rollout percentage {percentage!r} must be a number between 0 and 100")
    if int(percentage) != percentage:
        raise errors.ValidationFailed(f"rollout percentage {percentage!r} must be a whole number")
    return int(percentage)


def rollout_config(*, state, percentage):
    """The configuration ``state`` would have with its rollout set to ``percentage`` (nothing saved)."""
    percentage = _check_percentage(percentage)
    config = copy.deepcopy(state.config())
    config["strategies"] = rollouts.with_percentage(config["strategies"], state.flag.key, percentage)
    if config["rollout"] in (RolloutKind.IMMEDIATE, RolloutKind.CUSTOM):
        config["rollout"] = RolloutKind.PERCENTAGE
    if percentage > 0:
        config["enabled"] = True
    problems = validate_config(strategies=config["strategies"], variants=config["variants"], stored=state.config())
    if problems:
        raise errors.ValidationFailed("; ".join(problems), reasons=problems)
    return config


def _set_rollout(state, percentage, *, by, reason, propose):
    percentage = _check_percentage(percentage)
    return _change(state, lambda s: rollout_config(state=s, percentage=percentage), by=by, reason=reason,
                   propose=propose, action="flag.rollout.set", applied_reason=reason or f"rollout set to {percentage}%")


def flag_set_rollout(*, environment, key, percentage, by=None, reason=""):
    """Set the percentage of the flag's rollout strategy in ``environment`` (0-100), enabling the flag there
    when ``percentage`` > 0. The system (``by=None``: the deployment engine, gradual ramps) is not subject to
    the approval policy (those operations are approved where they start); a person is: ApprovalRequired where
    the environment needs a second person (``flag_rollout_change`` proposes the change instead).
    Returns the FlagEnvironment."""
    _check_percentage(percentage)
    env_name = getattr(environment, "name", environment)
    state = (
        FlagEnvironment.objects.select_related("flag", "environment")
        .filter(flag__key=key, environment__name=env_name).first()
    )
    if state is None:
        raise errors.ValidationFailed(f"flag {key!r} has no state in environment {env_name!r}")
    state, _ = _set_rollout(state, percentage, by=by, reason=reason, propose=False)
    return state


def flag_rollout_change(*, state, percentage, by=None, reason=""):
    """Set the rollout percentage of ``state`` as ``flag_set_rollout`` does, or — where the environment's policy
    needs a second person's approval of this person's change — propose it. Returns ``(state, None)`` when
    applied, ``(state, change_request)`` when proposed."""
    return _set_rollout(state, percentage, by=by, reason=reason, propose=True)


def flag_set_rollout_for_deployment(*, environment, key, percentage, reason=""):
    """The deployment engine's feature-flag strategy ramps ``key`` (the ``set_flag_rollout`` hook of
    ``releases.deploy.hooks``): a system change, approved where the deployment was."""
    return flag_set_rollout(environment=environment, key=key, percentage=percentage, by=None, reason=reason)


def apply_rollout(*, state, kind, percentage=100, stickiness="default", segments=(), user_ids=(), steps=None,
                  by=None, reason=""):
    """The admin's first choice: configure one of the seed's rollout strategies.

    ``gradual`` starts a ramp (``steps``) from its first step.
    """
    key = state.flag.key
    if kind == RolloutKind.IMMEDIATE:
        strategies = rollouts.immediate()
    elif kind == RolloutKind.PERCENTAGE:
        strategies = rollouts.percentage(key, percentage, stickiness=stickiness)
    elif kind == RolloutKind.USER_SEGMENT:
        if not segments and not [u for u in user_ids if str(u).strip()]:
            raise errors.ValidationFailed("a user_segment rollout needs at least one segment or user id")
        strategies = rollouts.user_segment(key, segments=segments, user_ids=user_ids)
    elif kind == RolloutKind.GRADUAL:
        return ramp_start(state=state, steps=steps, stickiness=stickiness, by=by, reason=reason)
    else:
        raise errors.ValidationFailed(f"rollout {kind!r} is not one of immediate, percentage, user_segment, gradual")
    return flag_state_update(state=state, enabled=True, strategies=strategies, rollout=kind, by=by, reason=reason)


def flag_state_edit(*, state, enabled, strategies, variants, by=None, reason="", propose=False):
    """Save a flag's state as edited by hand (the admin's strategies and variants editor), or with ``propose``
    propose it for a second person's approval. Strategies that differ from the current ones make the rollout
    ``custom`` (no longer one of the seed's rollout kinds); otherwise the rollout kind is kept. Returns
    ``(state, None)`` when saved, ``(state, change_request)`` when proposed; ApprovalRequired (not proposed)
    when saving where the environment needs a second person."""
    fields = {"enabled": enabled, "strategies": strategies, "variants": variants,
              "rollout": RolloutKind.CUSTOM if strategies != state.strategies else state.rollout}
    if propose:
        return state, change_request_create(state=state, by=by, reason=reason, **fields)
    return flag_state_update(state=state, by=by, reason=reason, **fields), None


def config_diff(source, target):
    """Line-level differences between two states' configurations: [(field, target_value, source_value)]."""
    a, b = target.config(), source.config()
    return [(name, a[name], b[name]) for name in STATE_FIELDS if a[name] != b[name]]


def flag_copy_config(*, source, target, by=None, reason=""):
    """Copy a flag's configuration from one environment to another (e.g. staging → production)."""
    if source.flag_id != target.flag_id:
        raise errors.ValidationFailed("source and target must be the same flag")
    config = source.config()
    reason = reason or f"copied from {source.environment.name}"
    return flag_state_update(state=target, by=by, reason=reason, **config)


# --- change requests (second-person approval) ----------------------------------------------------------
def change_request_create(*, state, by, reason="", enabled=_UNSET, strategies=_UNSET, variants=_UNSET,
                          rollout=_UNSET):
    _require(by, state.environment)
    config = _normalise_config(state, enabled, strategies, variants, rollout)
    if config == state.config():
        raise errors.ValidationFailed("the proposed configuration is the same as the current one")
    with transaction.atomic():
        return _propose(state, config, by=by, reason=reason)
def change_request_decide(*, change, by, approve, comment=""):
    """A decision from the flags API: taken through the change request that decides the flag change (the
    approval policy says who may; the change request's page is where people decide)."""
    return hooks.decide(change=change, by=by, approve=approve, comment=comment)


def change_request_apply(*, change, by, comment=""):
    """The change request approving it was approved: the change is applied (refused if the state changed
    meanwhile). Called by the changes app inside its approval's transaction."""
    with transaction.atomic():
        change = FlagChangeRequest.objects.select_for_update(of=("self",)).select_related("state__environment", "state__flag").get(
            pk=change.pk)
        if change.status != ChangeStatus.PENDING:
            raise errors.TransitionNotAllowed(f"this change is already {change.get_status_display().lower()}")
        _require(by, change.state.environment)
        if change.requested_by_id is not None and change.requested_by_id == getattr(by, "pk", None):
            raise errors.PermissionDenied("a change needs a second person: you cannot approve your own change")
        state = FlagEnvironment.objects.select_for_update().get(pk=change.state_id)
        if state.config() != change.base:
            raise errors.TransitionNotAllowed(
                "the flag changed since this change was proposed: reject it and propose it again")
        change.status = ChangeStatus.APPLIED
        change.decided_by = by if _is_person(by) else None
        change.decided_at = timezone.now()
        change.save()
        audit.record(action="flag.change.approve", obj=change.state, by=by, reason=comment)
        _apply(state, change.proposed, by=by, reason=change.reason or comment)
    return change


def change_request_reject(*, change, by, comment=""):
    """Its change request was rejected (or withdrawn by its requester): the flag change is not applied."""
    with transaction.atomic():
        change = FlagChangeRequest.objects.select_for_update().get(pk=change.pk)
        if change.status != ChangeStatus.PENDING:
            raise errors.TransitionNotAllowed(f"this change is already {change.get_status_display().lower()}")
        is_requester = change.requested_by_id is not None and change.requested_by_id == getattr(by, "pk", None)
        if not is_requester:
            _require(by, change.state.environment)
        change.status = ChangeStatus.WITHDRAWN if is_requester else ChangeStatus.REJECTED
        change.decided_by = by if _is_person(by) else None
        change.decided_at = timezone.now()
        change.save()
        audit.record(action=f"flag.change.{change.status}", obj=change.state, by=by, reason=comment)
    return change


# --- segments ------------------------------------------------------------------------------------------
def validate_constraints(constraints):
    """Messages saying what is wrong with a segment's constraints (empty list: valid)."""
    if not isinstance(constraints, list):
        return ["constraints must be a list"]
    return [f"constraint {i + 1}: {m}" for i, c in enumerate(constraints) for m in validate_constraint(c)]


def segment_save(*, name, constraints, description="", segment=None, by=None):
    """Create or edit a segment. New constraints are validated; constraints it already has (an imported one that
    can never match, say) are kept without being refused again."""
    _require_any(by)
    problems = segment_problems(constraints, segment=segment)
    if problems:
        raise errors.ValidationFailed(f"segment {name!r}: " + "; ".join(problems), reasons=problems)
    if _is_person(by) and (segment is None or description != segment.description):
        leaks.check({"description": description}, by=by, obj=segment)
    return _segment_write(segment, name=name, description=description, constraints=constraints, by=by)


def segment_problems(constraints, *, segment=None):
    """What is wrong with new constraints of ``segment`` (None: a new segment); the constraints it already has are
    not refused again (an imported one that can never match, say)."""
    if not isinstance(constraints, list):
        return validate_constraints(constraints)
    stored = [] if segment is None or segment.pk is None else Segment.objects.get(pk=segment.pk).constraints
    return validate_constraints([c for c in constraints if c not in stored])


SEGMENT_FIELDS = ["name", "description", "constraints"]


def _segment_write(segment, *, name, description, constraints, by, unleash=None, pk=None, reason=""):
    """Write a segment (audited, every environment's snapshot told). ``unleash``: an imported segment's source
    (None: an edit in the portal, which keeps the source of what it did not change); ``pk``: the id to create
    it with (an import keeps the file's id when it is free)."""
    with transaction.atomic():
        if segment is None:
            segment = Segment(pk=pk, name=name)
            before = None
        else:
            segment = Segment.objects.select_for_update().get(pk=segment.pk)
            before = _fields(segment, SEGMENT_FIELDS)
        new = {"name": name, "description": description, "constraints": constraints}
        edited = [n for n in SEGMENT_FIELDS if before is not None and before[n] != new[n]]
        segment.name, segment.description, segment.constraints = name, description, constraints
        segment.unleash = unleash if unleash is not None else transfer.source_after_edit(segment.unleash, edited)
        errors.full_clean(segment)
        if before is None and pk is not None:
            segment.save(force_insert=True)
            _reset_sequence(Segment)
        else:
            segment.save()
        audit.record(action="flag.segment.save", obj=segment, by=by, before=before,
                     after=_fields(segment, SEGMENT_FIELDS), reason=reason)
        _changed_everywhere(segments=[segment.pk])
    return segment


def _reset_sequence(model):
    """After rows were inserted with their ids (PostgreSQL's sequence does not follow by itself)."""
    statements = connection.ops.sequence_reset_sql(no_style(), [model])
    with connection.cursor() as cursor:
        for statement in statements:
            cursor.execute(statement)


def segment_references(segment):
    """The flag states (``"key @ environment"``) whose strategies use ``segment``."""
    used = []
    for state in FlagEnvironment.objects.select_related("flag", "environment").order_by("flag__key", "environment_id"):
        for strategy in state.strategies or ():
            ids = strategy.get("segments") if isinstance(strategy, dict) else None
            if isinstance(ids, list) and segment.pk in ids:
                used.append(f"{state.flag.key} @ {state.environment.name}")
                break
    return used


def segment_check_unused(segment):
    """Refuse (ValidationFailed naming the flags) while a strategy uses ``segment``: it cannot be deleted."""
    used = segment_references(segment)
    if used:
        raise errors.ValidationFailed(
            f"segment {segment.name!r} is used by {', '.join(used)}: remove it from those strategies first")


def segment_delete(*, segment, by=None, reason=""):
    """Delete a segment no flag uses (refused, naming the flags, while any strategy refers to it)."""
    _require_any(by)
    with transaction.atomic():
        segment = Segment.objects.select_for_update().get(pk=segment.pk)
        segment_check_unused(segment)
        before = _fields(segment, ["name", "description", "constraints"])
        audit.record(action="flag.segment.delete", obj=segment, by=by, before=before, reason=reason)
        pk = segment.pk
        segment.delete()
        _changed_everywhere(segments=[pk])


# --- API keys ------------------------------------------------------------------------------------------
def api_key_create(*, environment, kind, name="", by=None, rate_limit=None):
    """A new key: returns (ApiKey, raw key). The raw key is shown once; only its hash is stored."""
    if kind not in ApiKeyKind.values:
        raise errors.ValidationFailed(f"kind {kind!r} is not one of {', '.join(ApiKeyKind.values)}")
    if _is_person(by):
        access.require(by, [environment], Capability.CONFIGURE)
    token = secrets.token_urlsafe(32)
    raw = f"pmf.{environment.name}.{kind}.{token}"
    with transaction.atomic():
        key = ApiKey.objects.create(
            name=name, environment=environment, kind=kind, prefix=token[:8], key_hash=ApiKey.hash(raw),
            rate_limit=rate_limit, created_by=by if _is_person(by) else None,
        )
        audit.record(action="flag.api_key.create", obj=key, by=by,
                     after={"environment": environment.name, "kind": kind, "name": name, "prefix": key.prefix})
        snapshots.keys_changed()
    return key, raw


def api_key_revoke(*, key, by=None, reason=""):
    """Revoke a key (idempotent); every process's key cache drops it within the check interval."""
    if _is_person(by):
        access.require(by, [key.environment], Capability.CONFIGURE)
    with transaction.atomic():
        key = ApiKey.objects.select_for_update().get(pk=key.pk)
        if key.revoked_at is not None:
            return key
        model_update(instance=key, data={"revoked_at": timezone.now()}, fields=["revoked_at"], by=by,
                     action="flag.api_key.revoke", reason=reason)
        snapshots.keys_changed()
    return key


# --- import (Unleash documents) ------------------------------------------------------------------------
def flags_import(*, environment, doc, by=None, reason="", dry_run=False):
    """Load an Unleash client-features document as ``environment``'s flags, losslessly; returns the
    :class:`transfer.ImportReport` (created, changed, unchanged, proposed, segments, warnings).

    The file is read by ``transfer.parse_document`` first: a document that is not an Unleash document is refused
    listing every problem, and nothing is imported. Everything else is kept exactly as given (constructs that can
    never match are kept, evaluate as the specification says, and are listed as warnings). A flag whose export
    would already be the file's feature is unchanged; a segment is matched by name (a nameless one by its id)
    and a new one keeps the file's id when it is free. In one transaction (an error anywhere imports nothing).
    ``dry_run``: the report of what would happen, nothing written.

    A person needs full access to the environment; where its flag changes need a second person's approval, a
    person's changed states are proposed as change requests instead of applied. The system and named system
    actors (``by="import_flags"``) apply them.
    """
    _require(by, environment)
    plan = transfer.parse_document(doc)
    report = transfer.ImportReport(dry_run=dry_run)
    live = FeatureFlag.objects.exclude(lifecycle=Lifecycle.ARCHIVED)
    report.warnings = transfer.plan_warnings(
        plan, existing_segments=set(Segment.objects.values_list("pk", flat=True)),
        existing_flags=dict(live.values_list("key", "dependencies")))
    with transaction.atomic():
        segment_ids = _import_segments(plan, report, by=by, reason=reason, dry_run=dry_run)
        for item in plan.flags:
            _import_flag(item, environment, segment_ids, report, by=by, reason=reason or "import", dry_run=dry_run)
        if not dry_run:
            audit.record(action="flag.import", object_type="releases.environment", object_id=environment.pk,
                         object_repr=environment.name, by=by, after=report.counts(), reason=reason)
    return report


def _import_segments(plan, report, *, by, reason, dry_run):
    """Create or change the file's segments; returns ``{file id: stored id}``."""
    existing = {s.pk: s for s in Segment.objects.all()}
    by_name = {s.name: s for s in existing.values()}
    taken = set(existing)  # ids a new segment cannot be given
    ids = {}
    for item in plan.segments:
        match = _segment_match(item, existing, by_name)
        pk = None
        if match is not None:
            ids[item.id] = match.pk
            if match.as_unleash() == dict(item.doc, id=match.pk):
                report.segments_unchanged.append(item.stored_name)
                continue
            report.segments_changed.append(item.stored_name)
        else:
            pk = item.id if item.id not in taken else None  # the file's id when it is free
            taken.add(item.id)
            ids[item.id] = item.id
            report.segments_created.append(item.stored_name)
        if not dry_run:
            columns, source = transfer.split_segment(item.doc)
            ids[item.id] = _segment_write(
                match, name=item.stored_name, description=columns.get("description", ""),
                constraints=columns.get("constraints", []), unleash=source, by=by, pk=pk,
                reason=reason or "import").pk
    return ids


def _segment_match(item, existing, by_name):
    """The stored segment a file's segment is: the one of its name; for a nameless one, the nameless segment of
    its id (what an import of it, or of its export, made), else the one of its generated name."""
    if item.name is None:
        candidate = existing.get(item.id)
        if candidate is not None and "name" not in (candidate.unleash or {}).get("keys", ["name"]):
            return candidate
    return by_name.get(item.stored_name)


def _import_flag(item, environment, segment_ids, report, *, by, reason, dry_run):
    feature = item.with_segment_ids(segment_ids)
    flag = FeatureFlag.objects.filter(key=item.key).first()
    state = FlagEnvironment.objects.filter(flag=flag, environment=environment).first() if flag else None
    if flag is not None and flag.lifecycle != Lifecycle.ARCHIVED and \
            documents.feature_document(flag, state) == feature:
        report.unchanged.append(item.key)
        return
    (report.changed if flag is not None else report.created).append(item.key)
    if dry_run:
        return
    columns, state_columns, source = transfer.split_feature(feature, FlagType.values)
    if flag is None:
        flag = FeatureFlag(key=item.key, unleash=source, **columns)
        errors.full_clean(flag, exclude=["key"])  # the name is kept as Unleash gave it (UTF-8, say)
        flag = _flag_insert(flag, by=by, reason=reason)
    else:
        flag = _flag_import_update(flag, columns, source, by=by, reason=reason)
    strategies = state_columns.get("strategies", [])
    config = {"enabled": state_columns.get("enabled", False), "strategies": strategies,
              "variants": state_columns.get("variants", []), "rollout": transfer._rollout_kind(strategies)}
    current = state_for(flag, environment)
    if current.strategies == strategies:
        config["rollout"] = current.rollout
    _state, change = _change(current, lambda s: config, by=by, reason=reason, propose=True, action="flag.state.import")
    if change is not None:
        report.proposed.append(item.key)


def _flag_import_update(flag, columns, source, *, by, reason):
    """Write an imported feature's flag-level fields (kept as given: not validated as new input is)."""
    with transaction.atomic():
        flag = FeatureFlag.objects.select_for_update().get(pk=flag.pk)
        fields = [*FLAG_FIELDS, *IMPORTED_FIELDS]
        before = _fields(flag, fields)
        values = {"description": "", "type": FlagType.RELEASE, "impression_data": False, "dependencies": [],
                  **columns, "unleash": source}
        if flag.lifecycle == Lifecycle.ARCHIVED:
            values["lifecycle"] = Lifecycle.LIVE  # Unleash serves it: so does the portal
        if values["dependencies"] != _dependencies(flag):
            values.update(parent=None, parent_enabled=True, parent_variants=[])  # the file's dependencies rule
        for name, value in values.items():
            setattr(flag, name, value)
        _require_where_enabled(by, flag, _serving_changes(before, flag))
        errors.full_clean(flag, exclude=["key"])
        _flag_save(flag, before, fields, by=by, reason=reason)
    return flag


# --- gradual ramps -------------------------------------------------------------------------------------
def ramp_start(*, state, steps, stickiness="default", by=None, reason="", now=None):
    """Start a scheduled ramp: its first step applies ``steps[0]["minutes"]`` minutes from now (0: at once)."""
    if isinstance(steps, str):
        try:
            steps = rollouts.parse_steps(steps)
        except ValueError as exc:
            raise errors.ValidationFailed(str(exc)) from None
    problems = rollouts.validate_steps(steps)
    if not isinstance(stickiness, str) or not stickiness.strip():
        problems.append(f"stickiness {stickiness!r} must be a non-empty string (default, userId, sessionId, random, "
                        "...)")
    if problems:
        raise errors.ValidationFailed("; ".join(problems), reasons=problems)
    _require(by, state.environment)
    now = now or timezone.now()
    if _is_person(by) and requires_approval(state.environment):
        raise ApprovalRequired(
            f"starting a ramp in {state.environment.name} needs a second person's approval: "
            "propose the first step as a percentage change, then start the ramp once approved")
    with transaction.atomic():
        state = _locked(state)
        if state.ramps.filter(status__in=[RampStatus.RUNNING, RampStatus.PAUSED]).exists():
            raise errors.TransitionNotAllowed("this flag already has a running or paused ramp here")
        current = rollouts.rollout_percentage(state.strategies) if state.enabled else 0
        ramp = GradualRollout.objects.create(
            state=state, steps=steps, previous_percentage=current or 0, previous_config=state.config(),
            next_step_at=now + dt.timedelta(minutes=steps[0]["minutes"]),
            created_by=by if _is_person(by) else None, created_at=now,
        )
        config = state.config()
        config["rollout"] = RolloutKind.GRADUAL
        if rollouts.rollout_percentage(config["strategies"]) is None:
            config["strategies"] = rollouts.percentage(state.flag.key, current or 0, stickiness=stickiness)
        problems = validate_config(strategies=config["strategies"], variants=config["variants"], stored=state.config())
        if problems:
            raise errors.ValidationFailed(f"{state}: " + "; ".join(problems), reasons=problems)
        _apply(state, config, by=by, reason=reason)
        audit.record(action="flag.ramp.start", obj=state, by=by, after={"steps": steps}, reason=reason)
        if steps[0]["minutes"] == 0:
            # In the same transaction: a first step that cannot be applied leaves no ramp and no changed strategy.
            ramp_advance(ramp=ramp, now=now)
            ramp.refresh_from_db()
    return ramp


def ramp_advance(*, ramp, now=None):
    """Apply the next step if it is due (idempotent: nothing when not due, paused or finished)."""
    now = now or timezone.now()
    with transaction.atomic():
        ramp = GradualRollout.objects.select_for_update(of=("self",)).select_related("state__flag", "state__environment").get(
            pk=ramp.pk)
        if ramp.status != RampStatus.RUNNING or ramp.next_step_at is None or ramp.next_step_at > now:
            return ramp
        index = ramp.current_step + 1
        step = ramp.steps[index]
        flag_set_rollout(environment=ramp.state.environment, key=ramp.state.flag.key, percentage=step["percentage"],
                         by=None, reason=f"gradual rollout step {index + 1}/{len(ramp.steps)}")
        ramp.current_step = index
        if index + 1 < len(ramp.steps):
            # The schedule is anchored on when the step was due, so a late beat does not stretch the ramp.
            ramp.next_step_at = ramp.next_step_at + dt.timedelta(minutes=ramp.steps[index + 1]["minutes"])
        else:
            ramp.status, ramp.next_step_at, ramp.completed_at = RampStatus.COMPLETED, None, now
        ramp.save()
        audit.record(action="flag.ramp.step", obj=ramp.state, by=None,
                     after={"step": index + 1, "percentage": step["percentage"], "status": ramp.status})
    return ramp


def advance_due_ramps(now=None):
    """Apply every due step (beat). A ramp several steps behind advances one step per call."""
    now = now or timezone.now()
    advanced = 0
    due = GradualRollout.objects.filter(status=RampStatus.RUNNING, next_step_at__lte=now).values_list("pk", flat=True)
    for pk in list(due):
        before = GradualRollout.objects.get(pk=pk).current_step
        try:
            if ramp_advance(ramp=GradualRollout(pk=pk), now=now).current_step != before:
                advanced += 1
        except errors.DomainError as exc:
            # One ramp that cannot advance must not hold up the others: stop it where it is, saying why.
            logger.warning("gradual rollout %s could not advance: %s", pk, exc.message)
            try:
                ramp_pause(ramp=GradualRollout(pk=pk), by=None, reason=f"step could not be applied: {exc.message}")
            except errors.DomainError:
                logger.exception("gradual rollout %s could not be paused", pk)
    return advanced


def _ramp_transition(ramp, by, allowed, action):
    ramp = GradualRollout.objects.select_for_update(of=("self",)).select_related("state__flag", "state__environment").get(
        pk=ramp.pk)
    _require(by, ramp.state.environment)
    if ramp.status not in allowed:
        raise errors.TransitionNotAllowed(f"cannot {action} a {ramp.get_status_display().lower()} ramp")
    return ramp


def ramp_pause(*, ramp, by=None, reason=""):
    """Stop a ramp where it is (an operator, or the beat task when a step cannot be applied)."""
    with transaction.atomic():
        ramp = _ramp_transition(ramp, by, {RampStatus.RUNNING}, "pause")
        ramp.status = RampStatus.PAUSED
        ramp.save()
        audit.record(action="flag.ramp.pause", obj=ramp.state, by=by, reason=reason,
                     after={"percentage": ramp.current_percentage, "step": ramp.current_step + 1})
    return ramp


def ramp_resume(*, ramp, by=None, reason="", now=None):
    """Continue a paused ramp: the next step is due one step interval from now."""
    now = now or timezone.now()
    with transaction.atomic():
        ramp = _ramp_transition(ramp, by, {RampStatus.PAUSED}, "resume")
        ramp.status = RampStatus.RUNNING
        ramp.next_step_at = now + dt.timedelta(minutes=ramp.steps[ramp.current_step + 1]["minutes"])
        ramp.save()
        audit.record(action="flag.ramp.resume", obj=ramp.state, by=by, reason=reason,
                     after={"next_step_at": ramp.next_step_at.isoformat()})
    return ramp


def ramp_revert(*, ramp, by=None, reason=""):
    """Stop a ramp and restore the configuration the flag had before it started."""
    with transaction.atomic():
        ramp = _ramp_transition(ramp, by, {RampStatus.RUNNING, RampStatus.PAUSED, RampStatus.COMPLETED}, "revert")
        ramp.status, ramp.next_step_at = RampStatus.REVERTED, None
        ramp.save()
        audit.record(action="flag.ramp.revert", obj=ramp.state, by=by, reason=reason,
                     after={"restored": ramp.previous_config})
        _apply(ramp.state, ramp.previous_config, by=by, reason=reason or "gradual rollout reverted")
    return ramp


def current_ramp(state):
    """The state's latest gradual rollout that was not reverted (running, paused or completed), or None."""
    return state.ramps.exclude(status=RampStatus.REVERTED).first()


RAMP_ACTIONS = {"pause": ramp_pause, "resume": ramp_resume, "revert": ramp_revert}


def ramp_action(*, state, action, by=None, reason=""):
    """Pause, resume or revert the current ramp of ``state`` (TransitionNotAllowed when it has none)."""
    ramp = current_ramp(state)
    if ramp is None:
        raise errors.TransitionNotAllowed("this flag has no gradual rollout here")
    if action not in RAMP_ACTIONS:
        raise errors.ValidationFailed(f"unknown ramp action {action!r} (pause, resume or revert)")
    return RAMP_ACTIONS[action](ramp=ramp, by=by, reason=reason)


# --- SDK registration and metrics ----------------------------------------------------------------------
MAX_COUNT = 2 ** 63  # counts are stored in 64-bit integer columns
MAX_INTERVAL = 2 ** 31  # the registration interval in a 32-bit one


def _whole(value, limit=MAX_COUNT):
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value < limit


def _parse_time(value, field="time"):
    """An aware datetime in UTC, or None when absent; ValidationFailed when it is not a date-time in range."""
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise errors.ValidationFailed(f"{field} {value!r} must be an ISO 8601 date-time")
    try:
        parsed = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
        parsed = parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)
        parsed = parsed.astimezone(dt.UTC)
        parsed.timestamp()
    except (ValueError, OverflowError):
        raise errors.ValidationFailed(f"{field} {value[:50]!r} is not an ISO 8601 date-time in range") from None
    return parsed


def client_register(*, environment_id, data):
    if not isinstance(data, dict) or not isinstance(data.get("appName"), str) or not data["appName"].strip():
        raise errors.ValidationFailed("appName is required")
    strategies = data.get("strategies") if isinstance(data.get("strategies"), list) else []
    interval = data.get("interval")
    if interval is not None and not _whole(interval, MAX_INTERVAL):
        raise errors.ValidationFailed(f"interval must be a whole number of milliseconds between 0 and "
                                      f"{MAX_INTERVAL - 1}")
    ClientApplication.objects.update_or_create(
        environment_id=environment_id, app_name=data["appName"][:200],
        instance_id=str(data.get("instanceId") or "default")[:200],
        defaults={"sdk_version": str(data.get("sdkVersion") or "")[:100], "strategies": strategies[:100],
                  "started": _parse_time(data.get("started"), "started"), "interval": interval, "last_seen_at": timezone.now()},
    )


def bucket_start(moment):
    size = int(settings.FLAGS_METRICS_BUCKET_SECONDS)
    epoch = int(moment.timestamp())
    return dt.datetime.fromtimestamp(epoch - epoch % size, tz=dt.UTC)


def metrics_validate(data):
    """The toggles of an Unleash metrics body {flag: (yes, no, {variant: n})}; ValidationFailed if malformed."""
    if not isinstance(data, dict):
        raise errors.ValidationFailed("the metrics body must be a JSON object")
    bucket = data.get("bucket")
    if not isinstance(bucket, dict) or not isinstance(bucket.get("toggles"), dict):
        raise errors.ValidationFailed('metrics need "bucket": {"start", "stop", "toggles": {...}}')
    toggles = {}
    for name, counts in bucket["toggles"].items():
        if not isinstance(counts, dict):
            raise errors.ValidationFailed(f"toggles.{name} must be an object with yes and no")
        yes, no = counts.get("yes", 0), counts.get("no", 0)
        for label, value in (("yes", yes), ("no", no)):
            if not _whole(value):
                raise errors.ValidationFailed(f"toggles.{name}.{label} must be a whole number from 0 to 2^63 - 1")
        variants = counts.get("variants") or {}
        if not isinstance(variants, dict) or not all(_whole(v) for v in variants.values()):
            raise errors.ValidationFailed(f"toggles.{name}.variants must map variant names to counts "
                                          "(whole numbers from 0 to 2^63 - 1)")
        toggles[str(name)[:200]] = (yes, no, variants)
    stop, start = _parse_time(bucket.get("stop"), "bucket.stop"), _parse_time(bucket.get("start"), "bucket.start")
    return stop or start or timezone.now(), toggles


def metrics_record(*, environment_id, toggles, when=None, app_name=""):
    """Add counts to the (environment, flag, time bucket) rows and mark the flags as seen."""
    when = when or timezone.now()
    start = bucket_start(min(when, timezone.now()))
    with transaction.atomic():
        for name, (yes, no, variants) in sorted(toggles.items()):
            if not (yes or no or variants):
                continue
            row, _ = FlagMetricsBucket.objects.select_for_update().get_or_create(
                environment_id=environment_id, flag_key=name, bucket_start=start)
            row.yes, row.no = F("yes") + yes, F("no") + no
            merged = dict(row.variants)
            for variant, count in variants.items():
                merged[variant] = merged.get(variant, 0) + count
            row.variants = merged
            if app_name and app_name not in row.app_names and len(row.app_names) < 50:
                row.app_names = [*row.app_names, app_name[:100]]
            row.save()
        seen = [name for name, (yes, no, _) in toggles.items() if yes or no]
        if seen:
            FlagEnvironment.objects.filter(environment_id=environment_id, flag__key__in=seen).update(
                last_seen_at=timezone.now())


# --- stale flags ---------------------------------------------------------------------------------------
def stale_flags(now=None):
    """[(flag, reasons)] for live flags past their type's expected lifetime or not evaluated for 30 days."""
    now = now or timezone.now()
    unused_after = dt.timedelta(days=int(settings.FLAGS_STALE_UNUSED_DAYS))
    flags = FeatureFlag.objects.exclude(lifecycle=Lifecycle.ARCHIVED).annotate(last_seen=Max("states__last_seen_at"))
    result = []
    for flag in flags.select_related("owner"):
        reasons = []
        if flag.is_past_lifetime(now):
            reasons.append(f"older than the expected lifetime of a {flag.type} flag "
                           f"({flag.expected_lifetime.days} days)")
        seen = flag.last_seen or flag.created_at
        if now - seen > unused_after:
            reasons.append(f"not evaluated for {(now - seen).days} days")
        if reasons:
            result.append((flag, reasons))
    return result


def notify_stale_flags(now=None):
    """Tell each owner (or operations when a flag has none) about their stale flags by e-mail, and the channels
    subscribed to flag.stale, once a week per flag (pmrelease.delivery)."""
    now = now or timezone.now()
    by_recipient = {}
    notified = []
    for flag, reasons in stale_flags(now):
        if flag.stale_notified_at and now - flag.stale_notified_at < dt.timedelta(days=7):
            continue
        recipients = [flag.owner.email] if flag.owner and flag.owner.email else list(
            get_user_model().objects.filter(groups__name="operations", is_active=True).exclude(email="")
            .values_list("email", flat=True))
        for email in recipients:
            by_recipient.setdefault(email, []).append(f"- {flag.key}: {'; '.join(reasons)}")
        notified.append(flag.pk)
    run = now.strftime("%Y%m%dT%H%M%S%f")
    for email, lines in by_recipient.items():
        delivery.notify(
            event="flag.stale", key=f"stale-flags-{run}-{email}", recipients=[email], severity="warning",
            title=f"[{settings.PRODUCT_NAME}] {len(lines)} stale feature flag(s)",
            body="These flags look stale: remove them from the code and archive them.\n\n" + "\n".join(lines)
            + f"\n\n{settings.PORTAL_URL}/admin/flags/featureflag/stale/",
            subscribed=False, data={"flags": lines})
    if by_recipient:
        delivery.notify(
            event="flag.stale", key=f"stale-flags-{run}", severity="warning",
            title=f"[{settings.PRODUCT_NAME}] {len(notified)} stale feature flag(s)",
            body="\n".join(line for lines in by_recipient.values() for line in lines)
            + f"\n\n{settings.PORTAL_URL}/admin/flags/featureflag/stale/")
    FeatureFlag.objects.filter(pk__in=notified).update(stale_notified_at=now)
    return len(notified)


# --- explain -------------------------------------------------------------------------------------------
def evaluate_as(*, flag, environment, context):
    """Evaluate one flag for a context against the environment's current configuration, with an explanation
    of which strategy and constraint decided."""
    doc = documents.build_document(environment)
    return Snapshot.from_client_features(doc).evaluate(flag.key, context)
