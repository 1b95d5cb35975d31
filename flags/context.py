"""Evaluation contexts from what applications send (OFREP attributes, frontend API queries and bodies).

Pure: no Django. The edge, the flag API's "evaluate" and the admin's "evaluate as" build contexts with it.
"""
import datetime as dt

CONTEXT_FIELDS = frozenset({"userId", "sessionId", "remoteAddress", "appName", "environment", "currentTime"})


def _property_value(name, value):
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str | int | float):
        return str(value)
    raise ValueError(f"context attribute {name!r} must be a string, number or boolean")


def _is_datetime(value):
    if not isinstance(value, str) or len(value) > 64:
        return False
    try:
        dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return False
    return True


def unleash_context(raw, *, environment, remote_address, targeting_key=True):
    """An engine context from OFREP / frontend attributes: targetingKey is the userId unless userId is given,
    the Unleash fields map to themselves, ``properties`` and every other attribute become properties.
    ``environment`` defaults to the key's environment, ``remoteAddress`` to ``remote_address`` when given."""
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ValueError("context must be a JSON object")
    ctx = {}
    properties = {}
    if targeting_key and raw.get("targetingKey") is not None and not isinstance(raw["targetingKey"], str):
        raise ValueError(f"targetingKey must be a string, not {type(raw['targetingKey']).__name__}")
    if raw.get("currentTime") is not None and not _is_datetime(raw["currentTime"]):
        raise ValueError(f"currentTime {str(raw['currentTime'])[:40]!r} must be an ISO 8601 date-time, e.g. "
                         "2026-12-01T10:00:00Z")
    for name, value in raw.items():
        if value is None or (name == "targetingKey" and targeting_key):
            continue
        if name == "properties" and isinstance(value, dict):
            for prop, prop_value in value.items():
                if prop_value is not None:
                    properties[str(prop)] = _property_value(prop, prop_value)
        elif name in CONTEXT_FIELDS:
            ctx[name] = _property_value(name, value)
        else:
            properties[name] = _property_value(name, value)
    if "userId" not in ctx and targeting_key and raw.get("targetingKey") is not None:
        ctx["userId"] = _property_value("targetingKey", raw["targetingKey"])
    if properties:
        ctx["properties"] = properties
    ctx.setdefault("environment", environment)
    if remote_address:
        ctx.setdefault("remoteAddress", remote_address)
    return ctx
