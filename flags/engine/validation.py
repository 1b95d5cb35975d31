"""Human-readable validation of strategies, constraints, variants and segments before they are saved.

Each function returns a list of messages (empty = valid). The engine itself never raises on bad data (an
invalid constraint simply never matches); these helpers let the admin layer refuse such data up front.
"""

from __future__ import annotations

import json
from collections.abc import Iterable

from .constraints import (
    CASE_INSENSITIVE_OPERATORS,
    DATE_OPERATORS,
    LIST_OPERATORS,
    NUMERIC_OPERATORS,
    OPERATORS,
    SEMVER_OPERATORS,
    parse_datetime,
    parse_network,
    parse_number,
    parse_semver,
)
from .regex import RegexTranslationError, compile_rust_regex
from .strategies import KNOWN_STRATEGIES
from .variants import DEFAULT_TOTAL_WEIGHT, PAYLOAD_TYPES, WEIGHT_TYPES

__all__ = [
    "validate_constraint",
    "validate_payload",
    "validate_segment",
    "validate_strategy",
    "validate_variants",
]

_PERCENT_PARAMETER = {
    "flexibleRollout": "rollout",
    "gradualRolloutUserId": "percentage",
    "gradualRolloutSessionId": "percentage",
    "gradualRolloutRandom": "percentage",
}


def _is_text(value: object) -> bool:
    return isinstance(value, str)


def validate_constraint(constraint: object) -> list[str]:
    """Validate one constraint ``{"contextName", "operator", "values" | "value", "inverted", "caseInsensitive"}``."""
    if not isinstance(constraint, dict):
        return ["constraint must be an object"]
    errors: list[str] = []
    name = constraint.get("contextName")
    if not _is_text(name) or not name.strip():
        errors.append("contextName is required")
    operator = constraint.get("operator")
    if not _is_text(operator) or not operator:
        errors.append("operator is required")
        return errors
    if operator not in OPERATORS:
        known = ", ".join(sorted(OPERATORS))
        errors.append(f"unknown operator {operator!r} (expected one of {known})")
        return errors
    for flag in ("inverted", "caseInsensitive"):
        if flag in constraint and not isinstance(constraint[flag], bool):
            errors.append(f"{flag} must be true or false")
    if constraint.get("caseInsensitive") is True and operator not in CASE_INSENSITIVE_OPERATORS:
        errors.append(f"caseInsensitive has no effect on {operator} (only STR_* and REGEX)")

    if operator in LIST_OPERATORS:
        values = constraint.get("values")
        if not isinstance(values, list):
            errors.append(f"{operator} needs a list of values")
            return errors
        if not values:
            errors.append(f"{operator} needs at least one value")
        for index, value in enumerate(values):
            if not _is_text(value):
                errors.append(f"values[{index}] must be a string")
            elif operator == "IN_CIDR" and parse_network(value) is None:
                errors.append(f"values[{index}] {value!r} is not a valid IP address or CIDR range")
        return errors

    value = constraint.get("value")
    if value is None:
        errors.append(f"{operator} needs a single value")
        return errors
    if not _is_text(value):
        errors.append("value must be a string")
        return errors
    if operator in NUMERIC_OPERATORS:
        if parse_number(value) is None:
            errors.append(f"{operator} value {value!r} is not a number")
    elif operator in DATE_OPERATORS:
        if parse_datetime(value) is None:
            errors.append(
                f"{operator} value {value!r} is not a valid ISO-8601 date-time (e.g. 2025-01-31T12:00:00Z)"
            )
    elif operator in SEMVER_OPERATORS:
        if parse_semver(value) is None:
            hint = " (drop the leading 'v')" if value[:1] in "vV" else ""
            errors.append(f"{operator} value {value!r} is not a valid semantic version{hint}")
    elif operator == "REGEX":
        try:
            compile_rust_regex(value, case_insensitive=bool(constraint.get("caseInsensitive")))
        except RegexTranslationError as exc:
            errors.append(f"REGEX value {value!r} is not a valid regular expression: {exc}")
    return errors


def validate_payload(payload: object) -> list[str]:
    """Validate a variant payload ``{"type": json|csv|string|number, "value": str}``."""
    if payload is None:
        return []
    if not isinstance(payload, dict):
        return ["payload must be an object with type and value"]
    kind = payload.get("type")
    value = payload.get("value")
    if kind not in PAYLOAD_TYPES:
        return [f"payload type {kind!r} is not one of {', '.join(sorted(PAYLOAD_TYPES))}"]
    if not _is_text(value):
        return ["payload value must be a string"]
    if kind == "json":
        try:
            json.loads(value)
        except ValueError as exc:
            return [f"payload is not valid JSON: {exc}"]
    if kind == "number" and parse_number(value) is None:
        return [f"payload value {value!r} is not a number"]
    return []


def validate_variants(
    variants: object, *, total_weight: int = DEFAULT_TOTAL_WEIGHT, weights_computed: bool = False
) -> list[str]:
    """Validate a variant list (feature or strategy variants).

    With ``weights_computed`` the weights must already add up to ``total_weight`` (what a client-features
    document carries); otherwise only ``fix`` weights are checked against it.
    """
    if variants is None:
        return []
    if not isinstance(variants, list):
        return ["variants must be a list"]
    errors: list[str] = []
    names: set[str] = set()
    fixed_total = 0
    weight_total = 0
    for index, variant in enumerate(variants):
        label = f"variants[{index}]"
        if not isinstance(variant, dict):
            errors.append(f"{label} must be an object")
            continue
        name = variant.get("name")
        if not _is_text(name) or not name.strip():
            errors.append(f"{label}: name is required")
        elif name in names:
            errors.append(f"{label}: duplicate variant name {name!r}")
        else:
            names.add(name)
        if name == "disabled":
            errors.append(f"{label}: 'disabled' is reserved for the disabled variant")
        weight_type = variant.get("weightType", "variable")
        if weight_type not in WEIGHT_TYPES:
            errors.append(f"{label}: weightType {weight_type!r} must be 'fix' or 'variable'")
        weight = variant.get("weight", 0 if weight_type == "variable" else None)
        if isinstance(weight, bool) or not isinstance(weight, int):
            errors.append(f"{label}: weight must be an integer")
        elif not 0 <= weight <= total_weight:
            errors.append(f"{label}: weight {weight} must be between 0 and {total_weight}")
        else:
            weight_total += weight
            if weight_type == "fix":
                fixed_total += weight
        stickiness = variant.get("stickiness")
        if stickiness is not None and (not _is_text(stickiness) or not stickiness):
            errors.append(f"{label}: stickiness must be a non-empty string")
        errors.extend(f"{label}: {message}" for message in validate_payload(variant.get("payload")))
        overrides = variant.get("overrides")
        if overrides is not None:
            if not isinstance(overrides, list):
                errors.append(f"{label}: overrides must be a list")
            else:
                for o_index, override in enumerate(overrides):
                    if (
                        not isinstance(override, dict)
                        or not _is_text(override.get("contextName"))
                        or not isinstance(override.get("values"), list)
                    ):
                        errors.append(f"{label}: overrides[{o_index}] needs contextName and a list of values")
    if fixed_total > total_weight:
        errors.append(f"fixed variant weights add up to {fixed_total}, more than {total_weight}")
    if variants and all(isinstance(v, dict) and v.get("weightType") == "fix" for v in variants):
        if fixed_total != total_weight:
            errors.append(f"when every variant is 'fix' their weights must add up to {total_weight}")
    if weights_computed and variants and weight_total != total_weight:
        errors.append(f"variant weights add up to {weight_total}, expected {total_weight}")
    return errors


def validate_strategy(strategy: object, *, segment_ids: Iterable[int] | None = None) -> list[str]:
    """Validate a strategy ``{"name", "parameters", "constraints", "variants", "segments"}``.

    ``segment_ids``: when given, referenced segments must be among them.
    """
    if not isinstance(strategy, dict):
        return ["strategy must be an object"]
    errors: list[str] = []
    name = strategy.get("name")
    if not _is_text(name) or not name:
        errors.append("strategy name is required")
        name = ""
    elif name not in KNOWN_STRATEGIES:
        errors.append(f"unknown strategy {name!r} (expected one of {', '.join(KNOWN_STRATEGIES)})")
    params = strategy.get("parameters", {})
    if params is None:
        params = {}
    if not isinstance(params, dict):
        errors.append("parameters must be an object")
        params = {}
    for key, value in params.items():
        if not _is_text(value):
            errors.append(f"parameter {key!r} must be a string")

    percent_key = _PERCENT_PARAMETER.get(name)
    if percent_key is not None:
        raw = params.get(percent_key)
        if raw is None or (isinstance(raw, str) and not raw.strip()):
            errors.append(f"{name} needs the {percent_key!r} parameter (0-100)")
        else:
            number = parse_number(raw)
            if number is None:
                errors.append(f"{percent_key} {raw!r} is not a number")
            elif not 0 <= number <= 100:
                errors.append(f"{percent_key} {raw!r} must be between 0 and 100")
            elif not float(number).is_integer():
                errors.append(f"{percent_key} {raw!r} must be a whole number")
    if name == "flexibleRollout":
        stickiness = params.get("stickiness")
        if stickiness is not None and (not _is_text(stickiness) or not stickiness.strip()):
            errors.append("stickiness must be a non-empty string (default, userId, sessionId, random, ...)")
    if name in ("gradualRolloutUserId", "gradualRolloutSessionId") and not params.get("groupId"):
        errors.append(f"{name} needs a groupId parameter")
    if name == "userWithId" and not _split(params.get("userIds")):
        errors.append("userWithId needs at least one user id in 'userIds'")
    if name == "remoteAddress":
        entries = _split(params.get("IPs"))
        if not entries:
            errors.append("remoteAddress needs at least one IP or CIDR range in 'IPs'")
        for entry in entries:
            if parse_network(entry) is None:
                errors.append(f"IPs: {entry!r} is not a valid IP address or CIDR range")
    if name == "applicationHostname" and not _split(params.get("hostNames")):
        errors.append("applicationHostname needs at least one host name in 'hostNames'")

    constraints = strategy.get("constraints") or []
    if not isinstance(constraints, list):
        errors.append("constraints must be a list")
    else:
        for index, constraint in enumerate(constraints):
            errors.extend(f"constraints[{index}]: {message}" for message in validate_constraint(constraint))
    errors.extend(validate_variants(strategy.get("variants")))
    segments = strategy.get("segments") or []
    if not isinstance(segments, list):
        errors.append("segments must be a list of segment ids")
    else:
        known = None if segment_ids is None else set(segment_ids)
        for segment_id in segments:
            if isinstance(segment_id, bool) or not isinstance(segment_id, int):
                errors.append(f"segment id {segment_id!r} must be an integer")
            elif known is not None and segment_id not in known:
                errors.append(f"segment {segment_id} does not exist")
    return errors


def validate_segment(segment: object) -> list[str]:
    """Validate a segment ``{"id", "name", "constraints"}``."""
    if not isinstance(segment, dict):
        return ["segment must be an object"]
    errors: list[str] = []
    if "id" in segment and (isinstance(segment["id"], bool) or not isinstance(segment["id"], int)):
        errors.append("segment id must be an integer")
    constraints = segment.get("constraints")
    if not isinstance(constraints, list):
        errors.append("constraints must be a list")
    else:
        for index, constraint in enumerate(constraints):
            errors.extend(f"constraints[{index}]: {message}" for message in validate_constraint(constraint))
    return errors


def _split(value: object) -> list[str]:
    if not _is_text(value):
        return []
    return [item.strip() for item in value.split(",") if item.strip()]
