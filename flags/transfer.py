"""Import and export of an environment's flags in Unleash's client-features format.

``parse_document`` reads ``{"version", "features": [...], "segments": [...]}`` (the body of Unleash's
``GET /api/client/features``, or our export) into an :class:`ImportPlan`, listing every problem of the file at
once (ValidationFailed). ``services.flags_import`` applies a plan to one environment, in one transaction.
"""
from dataclasses import dataclass

from pmrelease import errors

from . import snapshots
from .engine.validation import validate_constraint, validate_strategy, validate_variants
from .models import FeatureFlag, FlagType, RolloutKind

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
    """The seed's rollout kind a file's strategies amount to (custom unless plainly immediate or percentage)."""
    names = [s.get("name") for s in strategies]
    if not names or names == ["default"]:
        return RolloutKind.IMMEDIATE
    if names == ["flexibleRollout"] and not strategies[0].get("constraints") and not strategies[0].get("segments"):
        return RolloutKind.PERCENTAGE
    return RolloutKind.CUSTOM


@dataclass(frozen=True)
class ImportedSegment:
    id: int  # the segment's id in the file (the file's strategies refer to it)
    name: str
    description: str
    constraints: list


@dataclass(frozen=True)
class ImportedFlag:
    key: str
    type: str
    description: str
    impression_data: bool
    enabled: bool
    rollout: str
    strategies: list  # segments referred to by their ids in the file
    variants: list
    dependency: dict | None  # {"feature", "enabled", "variants"}: the parent flag (one level)

    def strategies_with(self, segment_ids):
        """The strategies with the file's segment ids replaced by the stored segments' (``{file id: pk}``)."""
        result = []
        for strategy in self.strategies:
            strategy = dict(strategy)
            if strategy.get("segments"):
                strategy["segments"] = [segment_ids[s] for s in strategy["segments"]]
            result.append(strategy)
        return result


@dataclass(frozen=True)
class ImportPlan:
    segments: list
    flags: list


def parse_document(doc):
    """Read an Unleash document into an ImportPlan; ValidationFailed listing every problem when it is not valid."""
    if not isinstance(doc, dict) or not isinstance(doc.get("features"), list):
        raise errors.ValidationFailed('an Unleash document is a JSON object with a "features" list')
    problems = []
    raw_segments = doc.get("segments") or []
    if not isinstance(raw_segments, list):
        raise errors.ValidationFailed('"segments" must be a list')
    segments = {}
    by_name = {}
    for index, segment in enumerate(raw_segments):
        if not isinstance(segment, dict) or "id" not in segment:
            problems.append(f"segments[{index}]: needs an id")
            continue
        sid = segment["id"]
        if isinstance(sid, bool) or not isinstance(sid, int):
            problems.append(f"segments[{index}]: id must be a whole number")
            continue
        if sid in segments:
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
        segments[sid] = ImportedSegment(id=sid, name=name, description=segment.get("description") or "",
                                        constraints=constraints)

    flags = []
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
        strategies = [dict(s) if isinstance(s, dict) else s for s in strategies]  # the caller's document is kept
        for i, strategy in enumerate(strategies):
            problems.extend(f"{label}: strategy {i + 1}: {m}"
                            for m in validate_strategy(strategy, segment_ids=segments.keys()))
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
        dependency = None
        if dependencies:
            first = dependencies[0]
            dependency = {"feature": first["feature"], "enabled": first.get("enabled", True) is not False,
                          "variants": list(first.get("variants") or [])}
        stored = [{k: v for k, v in s.items() if k != "id"} for s in strategies if isinstance(s, dict)]
        flags.append(ImportedFlag(
            key=name, type=flag_type, description=feature.get("description") or "",
            impression_data=feature.get("impressionData") is True, enabled=feature.get("enabled") is True,
            rollout=_rollout_kind(stored), strategies=stored, variants=variants, dependency=dependency))
    for flag in flags:
        parent = flag.dependency and flag.dependency["feature"]
        if parent and parent not in names and not FeatureFlag.objects.filter(key=parent).exists():
            problems.append(f"feature {flag.key!r}: parent {parent!r} is neither in the file nor known")
    if problems:
        raise errors.ValidationFailed(f"the file was not imported: {len(problems)} problem(s): "
                                      + "; ".join(problems[:20]), reasons=problems)
    return ImportPlan(segments=list(segments.values()), flags=flags)
