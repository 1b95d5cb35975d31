"""Constraint compilation: each constraint becomes a ``predicate(context) -> bool`` closure.

Everything that can be prepared ahead of time is: numbers, dates and semantic versions are parsed, regexes are
compiled, CIDR ranges are turned into integer bounds and case-insensitive values are lower-cased, so evaluating
a constraint costs a context lookup and a comparison.

Semantics follow the Unleash client specification: a missing context value makes the operator false (except
``NOT_IN``, which is true), ``inverted`` negates the operator's result, ``caseInsensitive`` applies to the
``STR_*`` operators and ``REGEX``, and an unknown operator or an invalid constraint value is always false.
"""

from __future__ import annotations

import ipaddress
import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from functools import lru_cache

import semver

from .regex import RegexTranslationError, compile_rust_regex

Predicate = Callable[[dict], bool]
Getter = Callable[[dict], object]

LIST_OPERATORS = frozenset({"IN", "NOT_IN", "STR_STARTS_WITH", "STR_ENDS_WITH", "STR_CONTAINS", "IN_CIDR"})
NUMERIC_OPERATORS = frozenset({"NUM_EQ", "NUM_GT", "NUM_GTE", "NUM_LT", "NUM_LTE"})
DATE_OPERATORS = frozenset({"DATE_AFTER", "DATE_BEFORE"})
SEMVER_OPERATORS = frozenset({"SEMVER_EQ", "SEMVER_GT", "SEMVER_GTE", "SEMVER_LT", "SEMVER_LTE"})
SINGLE_VALUE_OPERATORS = NUMERIC_OPERATORS | DATE_OPERATORS | SEMVER_OPERATORS | {"REGEX"}
OPERATORS = LIST_OPERATORS | SINGLE_VALUE_OPERATORS
CASE_INSENSITIVE_OPERATORS = frozenset({"STR_STARTS_WITH", "STR_ENDS_WITH", "STR_CONTAINS", "REGEX"})


class ConstraintError(ValueError):
    """A constraint that cannot be compiled (unknown operator, unparsable value...)."""


@dataclass(frozen=True, slots=True)
class CompiledConstraint:
    predicate: Predicate
    description: str
    context_name: str
    error: str | None = None


# --------------------------------------------------------------------------------------------------- context


def as_text(value: object) -> str:
    """Render a context value the way a JavaScript client would (``true``/``false`` for booleans)."""
    if value.__class__ is str:
        return value  # type: ignore[return-value]
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def make_getter(field: str) -> Getter:
    """Context lookup: the top-level key first (``userId``...), then ``properties[field]``. None = missing."""

    def get(ctx: dict) -> object:
        value = ctx.get(field)
        if value is None:
            props = ctx.get("properties")
            if props:
                return props.get(field)
        return value

    return get


def _now_iso() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def make_text_getter(field: str) -> Callable[[dict], str | None]:
    """Like :func:`make_getter` but renders the value as text; ``currentTime`` defaults to now."""
    get = make_getter(field)
    if field == "currentTime":

        def get_current_time(ctx: dict) -> str | None:
            value = get(ctx)
            if value is None:
                return _now_iso()
            if isinstance(value, datetime):
                return value.isoformat()
            return as_text(value)

        return get_current_time

    def get_text(ctx: dict) -> str | None:
        value = get(ctx)
        if value is None or value.__class__ is str:
            return value  # type: ignore[return-value]
        return as_text(value)

    return get_text


# ------------------------------------------------------------------------------------------------ value parsing


def parse_number(value: object) -> float | None:
    """Parse a number the way the reference clients do; None when not a finite number."""
    if value is None or value is True or value is False:
        return None
    if isinstance(value, int | float):
        number = float(value)
    else:
        text = str(value).strip()
        if not text or "_" in text:
            return None
        try:
            number = float(text)
        except ValueError:
            return None
    if math.isnan(number) or math.isinf(number):
        return None
    return number


def parse_datetime(value: object) -> datetime | None:
    """Parse an ISO-8601 date-time (``Z`` or offsets, fractional seconds); naive values are taken as UTC."""
    if isinstance(value, datetime):
        parsed = value
    elif isinstance(value, date):
        parsed = datetime(value.year, value.month, value.day)
    elif isinstance(value, str):
        text = value.strip()
        if not text:
            return None
        try:
            parsed = datetime.fromisoformat(text)
        except ValueError:
            return None
    else:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed


@lru_cache(maxsize=4096)
def _parse_semver_cached(text: str) -> semver.Version | None:
    try:
        return semver.Version.parse(text)
    except (ValueError, TypeError):
        return None


def parse_semver(value: object) -> semver.Version | None:
    """Strict semantic version (``1.2.3``, ``2.0.0-rc.1``); ``v1.2.3`` and ``1.2`` are invalid."""
    if not isinstance(value, str):
        return None
    return _parse_semver_cached(value)


def parse_network(value: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network | None:
    """An IP address (taken as a /32 or /128) or a CIDR range; None when invalid."""
    try:
        return ipaddress.ip_network(value.strip(), strict=False)
    except (ValueError, TypeError, AttributeError):
        return None


def network_bounds(networks: Iterable[ipaddress.IPv4Network | ipaddress.IPv6Network]) -> tuple:
    """``((version, first_int, last_int), ...)`` for fast membership tests."""
    return tuple((net.version, int(net.network_address), int(net.broadcast_address)) for net in networks)


def ip_in_bounds(value: object, bounds: tuple) -> bool:
    if not bounds or value is None:
        return False
    try:
        addr = ipaddress.ip_address(as_text(value).strip())
    except ValueError:
        return False
    if addr.version == 6 and addr.ipv4_mapped is not None:
        mapped = addr.ipv4_mapped
        mapped_int = int(mapped)
        for version, lo, hi in bounds:
            if version == 4 and lo <= mapped_int <= hi:
                return True
    version = addr.version
    number = int(addr)
    for v, lo, hi in bounds:
        if v == version and lo <= number <= hi:
            return True
    return False


# --------------------------------------------------------------------------------------------- compilation


def _constraint_values(raw: dict) -> list[str]:
    values = raw.get("values")
    if values is None:
        single = raw.get("value")
        return [] if single is None else [as_text(single)]
    if isinstance(values, str):
        return [values]
    return [as_text(v) for v in values if v is not None]


def _constraint_value(raw: dict) -> str | None:
    value = raw.get("value")
    if value is None:
        values = raw.get("values")
        if isinstance(values, list | tuple) and values:
            value = values[0]
    return None if value is None else as_text(value)


def describe_constraint(raw: dict) -> str:
    name = raw.get("contextName")
    op = raw.get("operator")
    prefix = "NOT " if raw.get("inverted") else ""
    suffix = " (case-insensitive)" if raw.get("caseInsensitive") else ""
    if op in LIST_OPERATORS or (raw.get("value") is None and raw.get("values") is not None):
        shown = _constraint_values(raw)
        if len(shown) > 5:
            value_text = "[" + ", ".join(repr(v) for v in shown[:5]) + f", ... {len(shown) - 5} more]"
        else:
            value_text = "[" + ", ".join(repr(v) for v in shown) + "]"
    else:
        value_text = repr(_constraint_value(raw))
    return f"{prefix}{name} {op} {value_text}{suffix}"


def _never(ctx: dict) -> bool:
    return False


def _build_predicate(raw: dict) -> Predicate:
    """Compile one constraint dict into a predicate; raises :class:`ConstraintError` when invalid."""
    if not isinstance(raw, dict):
        raise ConstraintError("constraint must be an object")
    field = raw.get("contextName")
    if not isinstance(field, str) or not field:
        raise ConstraintError("constraint has no contextName")
    op = raw.get("operator")
    if op not in OPERATORS:
        raise ConstraintError(f"unknown operator {op!r}")
    inv = bool(raw.get("inverted", False))
    ci = bool(raw.get("caseInsensitive", False)) and op in CASE_INSENSITIVE_OPERATORS

    if op == "IN" or op == "NOT_IN":
        get = make_text_getter(field)
        values = frozenset(_constraint_values(raw))
        if op == "IN":

            def pred_in(ctx: dict) -> bool:
                v = get(ctx)
                if v is None:
                    return inv
                return (v in values) is not inv

            return pred_in

        def pred_not_in(ctx: dict) -> bool:
            v = get(ctx)
            if v is None:
                return not inv
            return (v not in values) is not inv

        return pred_not_in

    if op in ("STR_STARTS_WITH", "STR_ENDS_WITH", "STR_CONTAINS"):
        get = make_text_getter(field)
        items = tuple(v.lower() for v in _constraint_values(raw)) if ci else tuple(_constraint_values(raw))
        if op == "STR_STARTS_WITH":

            def pred_starts(ctx: dict) -> bool:
                v = get(ctx)
                if v is None:
                    return inv
                if ci:
                    v = v.lower()
                return v.startswith(items) is not inv

            return pred_starts
        if op == "STR_ENDS_WITH":

            def pred_ends(ctx: dict) -> bool:
                v = get(ctx)
                if v is None:
                    return inv
                if ci:
                    v = v.lower()
                return v.endswith(items) is not inv

            return pred_ends

        def pred_contains(ctx: dict) -> bool:
            v = get(ctx)
            if v is None:
                return inv
            if ci:
                v = v.lower()
            for item in items:
                if item in v:
                    return not inv
            return inv

        return pred_contains

    if op == "IN_CIDR":
        get = make_getter(field)
        networks = [n for n in (parse_network(v) for v in _constraint_values(raw)) if n is not None]
        bounds = network_bounds(networks)

        def pred_cidr(ctx: dict) -> bool:
            return ip_in_bounds(get(ctx), bounds) is not inv

        return pred_cidr

    value = _constraint_value(raw)
    if value is None:
        raise ConstraintError(f"{op} needs a value")

    if op in NUMERIC_OPERATORS:
        target = parse_number(value)
        if target is None:
            raise ConstraintError(f"{op} value {value!r} is not a number")
        get = make_getter(field)
        compare = {
            "NUM_EQ": target.__eq__,
            "NUM_GT": target.__lt__,
            "NUM_GTE": target.__le__,
            "NUM_LT": target.__gt__,
            "NUM_LTE": target.__ge__,
        }[op]

        def pred_num(ctx: dict) -> bool:
            raw_value = get(ctx)
            if raw_value.__class__ is int or raw_value.__class__ is float:
                number = raw_value
            else:
                number = parse_number(raw_value)
                if number is None:
                    return inv
            return compare(float(number)) is not inv  # type: ignore[arg-type]

        return pred_num

    if op in DATE_OPERATORS:
        target_date = parse_datetime(value)
        if target_date is None:
            raise ConstraintError(f"{op} value {value!r} is not an ISO-8601 date-time")
        get = make_getter(field)
        is_current_time = field == "currentTime"
        after = op == "DATE_AFTER"

        def pred_date(ctx: dict) -> bool:
            raw_value = get(ctx)
            if raw_value is None:
                if not is_current_time:
                    return inv
                moment = datetime.now(UTC)
            else:
                moment = parse_datetime(raw_value)
                if moment is None:
                    return inv
            return ((moment > target_date) if after else (moment < target_date)) is not inv

        return pred_date

    if op in SEMVER_OPERATORS:
        target_version = parse_semver(value)
        if target_version is None:
            raise ConstraintError(f"{op} value {value!r} is not a valid semantic version")
        get = make_text_getter(field)
        compare = {
            "SEMVER_EQ": target_version.__eq__,
            "SEMVER_GT": target_version.__lt__,
            "SEMVER_GTE": target_version.__le__,
            "SEMVER_LT": target_version.__gt__,
            "SEMVER_LTE": target_version.__ge__,
        }[op]

        def pred_semver(ctx: dict) -> bool:
            text = get(ctx)
            if text is None:
                return inv
            version = _parse_semver_cached(text)
            if version is None:
                return inv
            return bool(compare(version)) is not inv

        return pred_semver

    # REGEX
    try:
        pattern = compile_rust_regex(value, case_insensitive=ci)
    except RegexTranslationError as exc:
        raise ConstraintError(f"REGEX value {value!r} is not a supported regular expression: {exc}") from None
    get = make_text_getter(field)
    search = pattern.search

    def pred_regex(ctx: dict) -> bool:
        v = get(ctx)
        if v is None:
            return inv
        return (search(v) is not None) is not inv

    return pred_regex


def compile_constraint(raw: dict) -> CompiledConstraint:
    """Compile a constraint; an invalid one compiles to an always-false predicate with ``error`` set."""
    description = describe_constraint(raw) if isinstance(raw, dict) else repr(raw)
    name = raw.get("contextName", "") if isinstance(raw, dict) else ""
    try:
        predicate = _build_predicate(raw)
    except ConstraintError as exc:
        return CompiledConstraint(_never, description, str(name), str(exc))
    return CompiledConstraint(predicate, description, str(name))

