"""Import and export of an environment's flags in Unleash's client-features format.

``import_document`` loads ``{"version", "features": [...], "segments": [...]}`` (the body of Unleash's
``GET /api/client/features``, or our export) as one environment's flags: flags are created or updated,
segments matched by name (created when missing), dependencies linked. Everything is validated first and
applied in one transaction: a file with one bad strategy changes nothing and the refusal lists every problem.
"""
from django.db import transaction

from pmrelease import audit, errors

from . import services, snapshots
from .engine.validation import validate_constraint, validate_strategy, validate_variants
from .models import FeatureFlag, FlagType, RolloutKind, Segment

FORMATS = ("unleash",)


def export_document(environment):
    """The environment's flags as a client-features document (segments referenced by id, with names)."""
    doc = snapshots.build_document(environment)
    return {"version": 2, "features": doc["features"], "segments": doc["segments"]}


def _variants(variants):
    """Variants as stored: a list without weightType is taken as fixed weights when they add up to 1000."""
    variants = [dict(v) for v in variants or [] if isinstance(v, dict)]
    if variants and all("weightType" not in v for v in variants):
        total = sum(v.get("weight", 0) for v in variants if isinstance(v.get("weight"), int))
        for v in variants:
            v["weightType"] = "fix" if total == 1000 else "variable"
    return variants


def _rollout_kind(strategies):
    names = [s.get("name") for s in strategies]
    if not names or names == ["default"]:
        return RolloutKind.IMMEDIATE
    if names == ["flexibleRollout"] and not strategies[0].get("constraints") and not strategies[0].get("segments"):
        return RolloutKind.PERCENTAGE
    return RolloutKind.CUSTOM


def import_document(*, environment, doc, by=None, reason=""):
    """Load ``doc`` as ``environment``'s flags; returns {"created", "updated", "segments"} counts."""
    if not isinstance(doc, dict) or not isinstance(doc.get("features"), list):
        raise errors.ValidationFailed('an Unleash document is a JSON object with a "features" list')
    problems = []
    raw_segments = doc.get("segments") or []
    if not isinstance(raw_segments, list):
        raise errors.ValidationFailed('"segments" must be a list')
    segment_names = {}
    by_name = {}
    for index, segment in enumerate(raw_segments):
        if not isinstance(segment, dict) or "id" not in segment:
            problems.append(f"segments[{index}]: needs an id")
            continue
        sid = segment["id"]
        if isinstance(sid, bool) or not isinstance(sid, int):
            problems.append(f"segments[{index}]: id must be a whole number")
            continue
        if sid in segment_names:
            problems.append(f"segments[{index}]: id {sid} is used twice")
            continue
        constraints = segment.get("constraints") or []
        if not isinstance(constraints, list):
            problems.append(f"segment {sid}: constraints must be a list")
        else:
            for i, constraint in enumerate(constraints):
                problems.extend(f"segment {sid}: constraint {i + 1}: {m}" for m in validate_constraint(constraint))
        name = str(segment.get("name") or f"imported-segment-{sid}")[:100]
        if name in by_name:
            # segments are matched by name: two with one name would become one, with the wrong constraints
            problems.append(f"segments {by_name[name]} and {sid} have the same name {name!r}")
        by_name.setdefault(name, sid)
        segment_names[sid] = name

    features = []
    names = set()
    for index, feature in enumerate(doc["features"]):
        if not isinstance(feature, dict) or not isinstance(feature.get("name"), str):
            problems.append(f"features[{index}]: needs a name")
            continue
        name = feature["name"]
        label = f"feature {name!r}"
        names.add(name)
        try:
            FeatureFlag._meta.get_field("key").run_validators(name)
        except Exception as exc:  # django ValidationError
            problems.append(f"{label}: {' '.join(getattr(exc, 'messages', [str(exc)]))}")
        flag_type = feature.get("type") or FlagType.RELEASE
        if flag_type not in FlagType.values:
            problems.append(f"{label}: type {flag_type!r} is not one of {', '.join(FlagType.values)}")
        strategies = feature.get("strategies") or []
        if not isinstance(strategies, list):
            problems.append(f"{label}: strategies must be a list")
            strategies = []
        for i, strategy in enumerate(strategies):
            problems.extend(f"{label}: strategy {i + 1}: {m}"
                            for m in validate_strategy(strategy, segment_ids=segment_names.keys()))
        for field in ("enabled", "impressionData"):
            if feature.get(field) is not None and not isinstance(feature[field], bool):
                problems.append(f"{label}: {field} must be true or false")
        variants = feature.get("variants") or []
        if not isinstance(variants, list):
            problems.append(f"{label}: variants must be a list")
            variants = []
        problems.extend(f"{label}: variants: variant {i + 1} must be an object"
                        for i, v in enumerate(variants) if not isinstance(v, dict))
        variants = _variants(variants)
        problems.extend(f"{label}: variants: {m}" for m in validate_variants(variants))
        for i, strategy in enumerate(strategies):
            if isinstance(strategy, dict) and isinstance(strategy.get("variants"), list):
                problems.extend(f"{label}: strategy {i + 1}: variant {j + 1} must be an object"
                                for j, v in enumerate(strategy["variants"]) if not isinstance(v, dict))
                strategy["variants"] = _variants(strategy["variants"])
        dependencies = feature.get("dependencies") or []
        if not isinstance(dependencies, list):
            problems.append(f"{label}: dependencies must be a list")
            dependencies = []
        for i, dependency in enumerate(dependencies):
            if not isinstance(dependency, dict):
                problems.append(f"{label}: dependency {i + 1} must be an object")
            elif not isinstance(dependency.get("feature"), str) or not dependency["feature"]:
                problems.append(f"{label}: dependency {i + 1}: feature must be a flag name")
            elif dependency.get("variants") is not None and (not isinstance(dependency["variants"], list) or not all(
                    isinstance(v, str) for v in dependency["variants"])):
                problems.append(f"{label}: dependency {i + 1}: variants must be a list of variant names")
        dependencies = [d for d in dependencies if isinstance(d, dict) and isinstance(d.get("feature"), str)]
        if len(dependencies) > 1:
            problems.append(f"{label}: only one parent dependency is supported")
        features.append((feature, flag_type, strategies, variants, dependencies[:1]))
    for feature, _t, _s, _v, dependencies in features:
        for dependency in dependencies:
            parent = dependency["feature"]
            if parent not in names and not FeatureFlag.objects.filter(key=parent).exists():
                problems.append(f"feature {feature['name']!r}: parent {parent!r} is neither in the file nor known")
    if problems:
        raise errors.ValidationFailed(f"the file was not imported: {len(problems)} problem(s): "
                                      + "; ".join(problems[:20]), reasons=problems)

    counts = {"created": 0, "updated": 0, "segments": 0}
    with transaction.atomic():
        segment_ids = {}
        for segment in raw_segments:
            existing = Segment.objects.filter(name=segment_names[segment["id"]]).first()
            constraints = segment.get("constraints") or []
            if existing is None or existing.constraints != constraints:
                existing = services.segment_save(name=segment_names[segment["id"]], constraints=constraints,
                                                 description=segment.get("description") or "", segment=existing,
                                                 by=by)
                counts["segments"] += 1
            segment_ids[segment["id"]] = existing.pk
        flags = {}
        for feature, flag_type, strategies, variants, _deps in features:
            flag = FeatureFlag.objects.filter(key=feature["name"]).first()
            data = {"description": feature.get("description") or "", "type": flag_type,
                    "impression_data": feature.get("impressionData") is True}
            if flag is None:
                flag = services.flag_create(key=feature["name"], by=by, **data)
                counts["created"] += 1
            else:
                flag = services.flag_update(flag=flag, data=data, by=by, reason=reason or "import")
                counts["updated"] += 1
            flags[flag.key] = flag
            stored = []
            for strategy in strategies:
                strategy = dict(strategy)
                strategy.pop("id", None)
                if strategy.get("segments"):
                    strategy["segments"] = [segment_ids[s] for s in strategy["segments"]]
                stored.append(strategy)
            state = services.state_for(flag, environment)
            config = {"enabled": feature.get("enabled") is True, "rollout": _rollout_kind(stored),
                      "strategies": stored, "variants": variants}
            services._apply(state, config, by=by, reason=reason or "import")
        for feature, _t, _s, _v, dependencies in features:
            if dependencies:
                dependency = dependencies[0]
                parent = flags.get(dependency["feature"]) or FeatureFlag.objects.get(key=dependency["feature"])
                services.flag_update(flag=flags[feature["name"]], data={
                    "parent": parent, "parent_enabled": dependency.get("enabled", True) is not False,
                    "parent_variants": list(dependency.get("variants") or [])}, by=by, reason=reason or "import")
        audit.record(action="flag.import", object_type="releases.environment", object_id=environment.pk,
                     object_repr=environment.name, by=by, after=counts, reason=reason)
    return counts
