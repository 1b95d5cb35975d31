"""Flags as Unleash client-features documents: what the APIs serve, what the export writes, what the import reads.

A flag the portal created is given in the standard shape (every key). A flag imported from an Unleash document is
given back exactly as it was imported: the keys it had, in their order, the values of the keys the portal has no
column for (``project``, ``stale``, anything else) as they were, and strategies, variants and dependencies exactly
as stored (weights, weight types, stickiness, parameters, constraint values, ids, order). Stored is served: the
services compute variant weights when a person edits them, never when serving.
"""
import json

from .models import FeatureFlag, FlagEnvironment, Lifecycle, Segment

# The feature keys the portal keeps in its own columns; any other key of an imported feature is kept in
# ``FeatureFlag.unleash["extra"]``.
MAPPED_KEYS = ("name", "type", "description", "enabled", "impressionData", "strategies", "variants", "dependencies")
STANDARD_KEYS = ("name", "type", "description", "enabled", "stale", "impressionData", "project", "strategies",
                 "variants", "dependencies")
# A value a standard key has when the portal would not need to say it: an imported flag's document gains such
# a key (at the end) only once it holds something else, e.g. variants added in the portal.
_DEFAULTS = {"type": "release", "description": "", "enabled": False, "impressionData": False, "strategies": [],
             "variants": [], "dependencies": []}
# A missing segment must never match: clients that get segments inlined get this impossible constraint instead.
MISSING_SEGMENT = {"contextName": "__missing_segment__", "operator": "IN", "values": []}


def dumps(data):
    return json.dumps(data, separators=(",", ":"), ensure_ascii=False).encode()


def dependencies_of(parent_key, enabled, variants):
    """The Unleash dependencies for the portal's parent fields."""
    if not parent_key:
        return []
    dependency = {"feature": parent_key, "enabled": enabled}
    if variants:
        dependency["variants"] = list(variants)
    return [dependency]


def feature_values(flag, state):
    """The standard values of ``flag`` with its ``state`` (None: no state in the environment: off)."""
    return {
        "name": flag.key,
        "type": flag.type,
        "description": flag.description,
        "enabled": bool(state is not None and state.enabled),
        "stale": flag.is_past_lifetime(),
        "impressionData": flag.impression_data,
        "project": "default",
        "strategies": list(state.strategies) if state is not None else [],
        "variants": list(state.variants) if state is not None else [],
        "dependencies": list(flag.dependencies or []),
    }


def feature_document(flag, state):
    """One feature in the Unleash client-API shape (segments referenced by id)."""
    values = feature_values(flag, state)
    source = flag.unleash or {}
    keys = source.get("keys")
    if keys is None:
        doc = {key: values[key] for key in STANDARD_KEYS if key != "dependencies"}
        if values["dependencies"]:
            doc["dependencies"] = values["dependencies"]
        return doc
    extra = source.get("extra") or {}
    doc = {}
    for key in keys:
        if key in extra:
            doc[key] = extra[key]
        elif key in values:
            doc[key] = values[key]
    for key, default in _DEFAULTS.items():
        if key not in doc and values[key] != default:
            doc[key] = values[key]
    return doc


def segment_ids(feature):
    """The segment ids a feature's strategies refer to (well-formed ids only)."""
    found = set()
    for strategy in feature.get("strategies") or ():
        if isinstance(strategy, dict) and isinstance(strategy.get("segments"), list):
            found.update(s for s in strategy["segments"] if isinstance(s, int) and not isinstance(s, bool))
    return found


def inline_feature(feature, segments):
    """``feature`` for clients older than spec 4.2.0: its segments' constraints copied into its strategies
    (``segments``: {id: segment document}); a missing segment becomes a constraint that never matches."""
    if not segment_ids(feature):
        return feature
    strategies = []
    for strategy in feature.get("strategies") or ():
        if isinstance(strategy, dict) and strategy.get("segments"):
            strategy = dict(strategy)
            ids = strategy.pop("segments")
            constraints = list(strategy.get("constraints") or [])
            for sid in ids if isinstance(ids, list) else ():
                segment = segments.get(sid)
                constraints.extend(list(segment.get("constraints") or []) if segment else [MISSING_SEGMENT])
            strategy["constraints"] = constraints
        strategies.append(strategy)
    return dict(feature, strategies=strategies)


def inline_segments(doc):
    """The whole document for clients older than spec 4.2.0 (no top-level segments)."""
    by_id = {s["id"]: s for s in doc.get("segments", ()) if isinstance(s, dict) and "id" in s}
    return {"version": doc["version"], "features": [inline_feature(f, by_id) for f in doc["features"]]}


def served_flags(environment_id, keys=None):
    """``{key: feature document}`` of the non-archived flags (only ``keys`` when given) in an environment."""
    flags = FeatureFlag.objects.exclude(lifecycle=Lifecycle.ARCHIVED).only(
        "key", "type", "description", "impression_data", "dependencies", "unleash", "created_at")
    states = FlagEnvironment.objects.filter(environment_id=environment_id).only(
        "flag_id", "enabled", "strategies", "variants")
    if keys is not None:
        flags = flags.filter(key__in=keys)
        states = states.filter(flag__key__in=keys)
    by_flag = {s.flag_id: s for s in states}
    return {flag.key: feature_document(flag, by_flag.get(flag.pk)) for flag in flags}


def segment_documents(ids):
    """``{id: segment document}`` of the segments among ``ids`` that exist."""
    if not ids:
        return {}
    return {s.pk: s.as_unleash() for s in Segment.objects.filter(pk__in=list(ids))}


def build_document(environment):
    """The environment's client-features document ``{"version": 2, "features", "segments"}`` (features by key,
    the segments they refer to by id)."""
    features = served_flags(environment.pk)
    used = set().union(*(segment_ids(f) for f in features.values())) if features else set()
    segments = segment_documents(used)
    return {"version": 2, "features": [features[k] for k in sorted(features)],
            "segments": [segments[i] for i in sorted(segments)]}
