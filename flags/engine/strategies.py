"""Strategy compilation: built-in Unleash activation strategies plus their constraints and segments."""

from __future__ import annotations

import random
import socket
from collections.abc import Callable
from dataclasses import dataclass, field

from .constraints import (
    CompiledConstraint,
    Predicate,
    as_text,
    compile_constraint,
    ip_in_bounds,
    make_getter,
    network_bounds,
    parse_network,
    parse_number,
)
from .hashing import ROLLOUT_SEED, _hash
from .variants import VariantSet

STATIC = "STATIC"
TARGETING_MATCH = "TARGETING_MATCH"
SPLIT = "SPLIT"

KNOWN_STRATEGIES = (
    "default",
    "userWithId",
    "gradualRolloutUserId",
    "gradualRolloutSessionId",
    "gradualRolloutRandom",
    "flexibleRollout",
    "remoteAddress",
    "applicationHostname",
)

# explain(ctx) -> (passed, text, reason kind)
Explainer = Callable[[dict], tuple[bool, str, str]]

_random = random.random


def _true(ctx: dict) -> bool:
    return True


def _false(ctx: dict) -> bool:
    return False


@dataclass(slots=True)
class CompiledStrategy:
    index: int
    name: str
    check: Predicate
    constraints: tuple[CompiledConstraint, ...]
    constraint_origins: tuple[str, ...]
    core_explain: Explainer
    variants: VariantSet | None
    error: str | None = None
    warnings: list[str] = field(default_factory=list)
    # What ``explain`` would say the reason is, without its text (the serving path): the core's kind, the seed a
    # sticky rollout needs (missing: a targeting miss), and the constraints alone.
    kind: str = STATIC
    seed_of: Callable[[dict], object] | None = None
    constraints_check: Predicate = _true

    def passed_kind(self, ctx: dict) -> str:
        """The reason kind of this strategy when ``check(ctx)`` passed (as ``explain`` gives it)."""
        if self.kind == STATIC and self.constraints:
            return TARGETING_MATCH
        return self.kind

    def failed_on_split(self, ctx: dict) -> bool:
        """When ``check(ctx)`` failed: whether it failed on its percentage (a SPLIT), not on targeting."""
        if self.kind != SPLIT or self.error is not None:
            return False
        if self.seed_of is not None and self.seed_of(ctx) is None:
            return False
        return self.constraints_check(ctx)

    @property
    def label(self) -> str:
        return f"strategy[{self.index}] {self.name}"

    def explain(self, ctx: dict) -> tuple[bool, str, str]:
        """(passed, human-readable text, reason kind) — the slow, explaining twin of ``check``."""
        if self.error is not None:
            return False, f"{self.label}: {self.error}", TARGETING_MATCH
        for constraint, origin in zip(self.constraints, self.constraint_origins, strict=True):
            if not constraint.predicate(ctx):
                detail = f" (invalid: {constraint.error})" if constraint.error else ""
                return (
                    False,
                    f"{self.label}: {origin} `{constraint.description}` not satisfied{detail}",
                    TARGETING_MATCH,
                )
        passed, text, kind = self.core_explain(ctx)
        if passed:
            if kind == STATIC and self.constraints:
                kind = TARGETING_MATCH
            if self.constraints:
                count = len(self.constraints)
                text = f"{text}; {count} constraint{'s' if count > 1 else ''} satisfied"
        return passed, f"{self.label}: {text}", kind


# ----------------------------------------------------------------------------------------- parameters


def _param(params: dict, key: str) -> str | None:
    value = params.get(key)
    if value is None:
        return None
    return as_text(value)


def _percentage(params: dict, key: str) -> float | None:
    value = params.get(key)
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    return parse_number(value)


def _split_list(value: str | None) -> list[str]:
    if not value:
        return []
    return [item.strip() for item in value.split(",") if item.strip()]


# -------------------------------------------------------------------------------------- strategy cores
# Each builder returns (core predicate or None for "always true", explainer).


def _rollout_core(
    percentage: float, group_id: str, seed_of: Callable[[dict], object] | None, stickiness_label: str
) -> tuple[Predicate, Explainer]:
    """Sticky percentage rollout. ``seed_of`` None = purely random; a seed function returning None = fail."""
    prefix = f"{group_id}:"
    kind = SPLIT if percentage < 100 else STATIC

    if seed_of is None:

        def core_random(ctx: dict) -> bool:
            return _random() * 100 < percentage

        def explain_random(ctx: dict) -> tuple[bool, str, str]:
            passed = core_random(ctx)
            verdict = "included" if passed else "excluded"
            return passed, f"random {percentage:g}% rollout: {verdict}", kind

        return core_random, explain_random

    def core(ctx: dict) -> bool:
        seed = seed_of(ctx)
        if seed is None:
            return False
        return _hash(f"{prefix}{seed}", ROLLOUT_SEED, False) % 100 + 1 <= percentage

    def explain(ctx: dict) -> tuple[bool, str, str]:
        seed = seed_of(ctx)
        if seed is None:
            return (
                False,
                f"rollout needs {stickiness_label} in the context, which is missing",
                TARGETING_MATCH,
            )
        bucket = _hash(f"{prefix}{seed}", ROLLOUT_SEED, False) % 100 + 1
        passed = bucket <= percentage
        sign = "<=" if passed else ">"
        return (
            passed,
            f"{percentage:g}% rollout on {stickiness_label} (group {group_id!r}): bucket {bucket} {sign} "
            f"{percentage:g}",
            kind,
        )

    return core, explain


def _flexible_rollout(params: dict, feature_name: str) -> tuple[Predicate | None, Explainer]:
    percentage = _percentage(params, "rollout")
    if percentage is None:
        raise ValueError(f"rollout {params.get('rollout')!r} is not a number")
    group_id = _param(params, "groupId") or feature_name
    stickiness = _param(params, "stickiness") or "default"
    prefix = f"{group_id}:"

    if stickiness == "default":
        # userId, else sessionId, else random.
        def core_default(ctx: dict) -> bool:
            seed = ctx.get("userId")
            if seed is None:
                seed = ctx.get("sessionId")
                if seed is None:
                    return _random() * 100 < percentage
            return _hash(f"{prefix}{seed}", ROLLOUT_SEED, False) % 100 + 1 <= percentage

        def explain_default(ctx: dict) -> tuple[bool, str, str]:
            kind = SPLIT if percentage < 100 else STATIC
            seed, label = ctx.get("userId"), "userId"
            if seed is None:
                seed, label = ctx.get("sessionId"), "sessionId"
            if seed is None:
                passed = _random() * 100 < percentage
                verdict = "included" if passed else "excluded"
                return passed, f"{percentage:g}% rollout, no userId/sessionId so random: {verdict}", kind
            bucket = _hash(f"{prefix}{seed}", ROLLOUT_SEED, False) % 100 + 1
            passed = bucket <= percentage
            sign = "<=" if passed else ">"
            return (
                passed,
                f"{percentage:g}% rollout on {label} (group {group_id!r}): bucket {bucket} {sign} {percentage:g}",
                kind,
            )

        return core_default, explain_default

    if stickiness == "random":
        return _rollout_core(percentage, group_id, None, "random")
    return _rollout_core(percentage, group_id, make_getter(stickiness), stickiness)


def _gradual_rollout(params: dict, feature_name: str, field_name: str) -> tuple[Predicate, Explainer]:
    percentage = _percentage(params, "percentage")
    if percentage is None:
        raise ValueError(f"percentage {params.get('percentage')!r} is not a number")
    group_id = _param(params, "groupId") or feature_name

    def seed_of(ctx: dict) -> object:
        return ctx.get(field_name)

    return _rollout_core(percentage, group_id, seed_of, field_name)


def _gradual_random(params: dict) -> tuple[Predicate, Explainer]:
    percentage = _percentage(params, "percentage")
    if percentage is None:
        raise ValueError(f"percentage {params.get('percentage')!r} is not a number")
    return _rollout_core(percentage, "", None, "random")


def _user_with_id(params: dict) -> tuple[Predicate, Explainer]:
    user_ids = frozenset(_split_list(_param(params, "userIds")))

    def core(ctx: dict) -> bool:
        user_id = ctx.get("userId")
        return user_id is not None and as_text(user_id) in user_ids

    def explain(ctx: dict) -> tuple[bool, str, str]:
        if ctx.get("userId") is None:
            return False, "no userId in the context", TARGETING_MATCH
        passed = core(ctx)
        return (
            passed,
            f"userId {'is' if passed else 'is not'} in the list of {len(user_ids)}",
            TARGETING_MATCH,
        )

    return core, explain


def _remote_address(params: dict) -> tuple[Predicate, Explainer]:
    entries = _split_list(_param(params, "IPs"))
    exact = frozenset(entries)
    bounds = network_bounds(n for n in (parse_network(e) for e in entries) if n is not None)

    def core(ctx: dict) -> bool:
        address = ctx.get("remoteAddress")
        if address is None:
            return False
        text = as_text(address).strip()
        return text in exact or ip_in_bounds(text, bounds)

    def explain(ctx: dict) -> tuple[bool, str, str]:
        if ctx.get("remoteAddress") is None:
            return False, "no remoteAddress in the context", TARGETING_MATCH
        passed = core(ctx)
        verb = "matches" if passed else "does not match"
        return passed, f"remoteAddress {verb} the {len(entries)} listed IPs/ranges", TARGETING_MATCH

    return core, explain


def _application_hostname(params: dict, hostname: str) -> tuple[Predicate, Explainer]:
    hostnames = frozenset(h.lower() for h in _split_list(_param(params, "hostNames")))
    default_host = hostname.lower()

    def current_host(ctx: dict) -> str:
        props = ctx.get("properties")
        value = props.get("hostname") if props else None
        if value is None:
            value = ctx.get("hostname")
        return default_host if value is None else as_text(value).lower()

    def core(ctx: dict) -> bool:
        return current_host(ctx) in hostnames

    def explain(ctx: dict) -> tuple[bool, str, str]:
        host = current_host(ctx)
        passed = host in hostnames
        return passed, f"hostname {host!r} {'is' if passed else 'is not'} in hostNames", TARGETING_MATCH

    return core, explain


def _static_explain(ctx: dict) -> tuple[bool, str, str]:
    return True, "default strategy (on for everyone)", STATIC


def _combine(preds: list[Predicate]) -> Predicate:
    """AND the predicates into one closure, unrolled for the common small cases."""
    if not preds:
        return _true
    if len(preds) == 1:
        return preds[0]
    if len(preds) == 2:
        a, b = preds

        def both(ctx: dict) -> bool:
            return a(ctx) and b(ctx)

        return both
    if len(preds) == 3:
        a, b, c = preds

        def all3(ctx: dict) -> bool:
            return a(ctx) and b(ctx) and c(ctx)

        return all3
    chain = tuple(preds)

    def all_of(ctx: dict) -> bool:
        for p in chain:
            if not p(ctx):
                return False
        return True

    return all_of


def default_hostname() -> str:
    try:
        return socket.gethostname()
    except OSError:
        return ""


def compile_strategy(
    raw: dict,
    index: int,
    feature_name: str,
    segments: dict[int, list],
    hostname: str,
) -> CompiledStrategy:
    """Compile one strategy of ``feature_name``. Never raises: problems become an always-false strategy."""
    warnings: list[str] = []
    name = str(raw.get("name", "")) if isinstance(raw, dict) else ""
    if not isinstance(raw, dict):
        return CompiledStrategy(
            index, name, _false, (), (), _static_explain, None, "strategy is not an object", ["not an object"]
        )
    params = raw.get("parameters") or {}
    if not isinstance(params, dict):
        params = {}

    # Constraints: the strategy's own, then those of each referenced segment.
    raw_constraints: list[tuple[dict, str]] = []
    for j, c in enumerate(raw.get("constraints") or ()):
        raw_constraints.append((c, f"constraint[{j}]"))
    error: str | None = None
    for segment_id in raw.get("segments") or ():
        segment_constraints = segments.get(segment_id)
        if segment_constraints is None and isinstance(segment_id, str) and segment_id.isdigit():
            segment_constraints = segments.get(int(segment_id))
        if segment_constraints is None:
            error = f"segment {segment_id!r} does not exist"
            warnings.append(error)
            break
        for j, c in enumerate(segment_constraints):
            raw_constraints.append((c, f"segment {segment_id} constraint[{j}]"))
    constraints = tuple(compile_constraint(c) for c, _ in raw_constraints)
    origins = tuple(origin for _, origin in raw_constraints)
    for constraint, origin in zip(constraints, origins, strict=True):
        if constraint.error:
            warnings.append(f"{origin} `{constraint.description}`: {constraint.error}")

    core: Predicate | None
    explain: Explainer
    try:
        if name == "default":
            core, explain = None, _static_explain
        elif name == "flexibleRollout":
            core, explain = _flexible_rollout(params, feature_name)
        elif name == "userWithId":
            core, explain = _user_with_id(params)
        elif name == "gradualRolloutUserId":
            core, explain = _gradual_rollout(params, feature_name, "userId")
        elif name == "gradualRolloutSessionId":
            core, explain = _gradual_rollout(params, feature_name, "sessionId")
        elif name == "gradualRolloutRandom":
            core, explain = _gradual_random(params)
        elif name == "remoteAddress":
            core, explain = _remote_address(params)
        elif name == "applicationHostname":
            core, explain = _application_hostname(params, hostname)
        else:
            raise ValueError(f"unknown strategy {name!r}")
    except ValueError as exc:
        error = error or str(exc)
        warnings.append(str(exc))
        core, explain = None, _static_explain

    # Strategy variants: stickiness from the strategy, group id from the strategy (else the flag name).
    variants = VariantSet.build(
        raw.get("variants"),
        _param(params, "groupId") or feature_name,
        _param(params, "stickiness") or "default",
        allow_overrides=False,
    )

    if error is not None:
        check: Predicate = _false
    else:
        preds = [c.predicate for c in constraints]
        if core is not None:
            preds.append(core)
        check = _combine(preds)
    kind, seed_of = _kind(name, params) if error is None else (TARGETING_MATCH, None)
    return CompiledStrategy(index, name, check, constraints, origins, explain, variants, error, warnings, kind,
                            seed_of, _combine([c.predicate for c in constraints]))


def _kind(name: str, params: dict) -> tuple[str, Callable[[dict], object] | None]:
    """The reason kind a strategy's core gives (the kinds of the explainers above) and the seed it needs."""
    if name == "default":
        return STATIC, None
    if name in ("flexibleRollout", "gradualRolloutUserId", "gradualRolloutSessionId", "gradualRolloutRandom"):
        percentage = _percentage(params, "rollout" if name == "flexibleRollout" else "percentage")
        kind = SPLIT if percentage is not None and percentage < 100 else STATIC
        if name == "gradualRolloutUserId":
            return kind, lambda ctx: ctx.get("userId")
        if name == "gradualRolloutSessionId":
            return kind, lambda ctx: ctx.get("sessionId")
        stickiness = _param(params, "stickiness") or "default"
        if name == "flexibleRollout" and stickiness not in ("default", "random"):
            return kind, make_getter(stickiness)
        return kind, None
    return TARGETING_MATCH, None
