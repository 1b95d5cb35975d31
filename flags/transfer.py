"""Import and export of an environment's flags in Unleash's client-features format, losslessly.

``parse_document`` reads ``{"version", "features": [...], "segments": [...]}`` (the body of Unleash's
``GET /api/client/features``, or our export) into an :class:`ImportPlan`. Only what is not an Unleash document is
refused — JSON of the wrong types, features without names, the same name twice — listing every problem at once
(ValidationFailed). Everything an Unleash server can serve is kept *exactly as given*: weights, weight types,
stickiness, ordering, parameters, constraint values, ids, names, keys the portal has no column for. Constructs the
specification gives an outcome for but that can never match (an unknown operator, an ``IN`` without values, an
invalid CIDR or regular expression, a segment or parent that does not exist, a dependency chain) are kept and
evaluate as the specification says; :func:`feature_warnings` says why, for the import plan and for the admin's
badges. Text that looks like a secret is kept too, with a warning.

``services.flags_import`` compares a plan with what is stored (created, changed, unchanged: ``--dry-run`` shows
that) and applies it in one transaction. ``export_document`` gives the stored flags back: import → export →
import changes nothing.
"""
from dataclasses import dataclass, field

from pmrelease import errors

from . import documents, leaks
from .engine.validation import validate_constraint, validate_payload, validate_strategy, validate_variants
from .models import RolloutKind

FORMATS = ("unleash",)
MAX_NAME = 100  # what Unleash allows, and the portal's column


def export_document(environment):
    """The environment's flags as a client-features document (segments referenced by id): what is served, plus
    the imported segments no flag refers to (an import of this export must find them again)."""
    from .models import Segment

    doc = documents.build_document(environment)
    segments = {s["id"]: s for s in doc["segments"]}
    for segment in Segment.objects.exclude(pk__in=list(segments)).exclude(unleash={}):
        segments[segment.pk] = segment.as_unleash()
    return {"version": 2, "features": doc["features"], "segments": [segments[i] for i in sorted(segments)]}


def _rollout_kind(strategies):
    """The seed's rollout kind a file's strategies amount to (custom unless plainly immediate or percentage)."""
    names = [s.get("name") for s in strategies]
    if not names or names == ["default"]:
        return RolloutKind.IMMEDIATE
    if names == ["flexibleRollout"] and not strategies[0].get("constraints") and not strategies[0].get("segments"):
        return RolloutKind.PERCENTAGE
    return RolloutKind.CUSTOM


def source_of(item, mapped):
    """What an imported object needs beyond the portal's columns: its keys in order, the other keys' values."""
    return {"keys": list(item), "extra": {k: v for k, v in item.items() if k not in mapped}}


def source_after_edit(source, keys):
    """An imported object's source once the portal edited ``keys`` (their values now come from the columns, and
    they are exported even when the import did not have them)."""
    if not source or "keys" not in source:
        return source
    extra = {k: v for k, v in (source.get("extra") or {}).items() if k not in keys}
    return {"keys": list(source["keys"]) + [k for k in keys if k not in source["keys"]], "extra": extra}


@dataclass(frozen=True)
class ImportedSegment:
    id: int  # the segment's id in the file (the file's strategies refer to it)
    name: str | None  # None: the file gives none
    doc: dict  # the segment as given

    @property
    def stored_name(self):
        return self.name if self.name is not None else f"imported-segment-{self.id}"


@dataclass(frozen=True)
class ImportedFlag:
    key: str
    doc: dict  # the feature as given (segments referred to by their ids in the file)

    def with_segment_ids(self, segment_ids):
        """The feature with the file's segment ids replaced by the stored segments' (``{file id: pk}``; ids of
        segments the file does not have are kept as they are)."""
        strategies = self.doc.get("strategies")
        if not isinstance(strategies, list) or not any(isinstance(s, dict) and s.get("segments") for s in strategies):
            return self.doc
        result = []
        for strategy in strategies:
            if isinstance(strategy, dict) and strategy.get("segments"):
                strategy = dict(strategy, segments=[segment_ids.get(s, s) for s in strategy["segments"]])
            result.append(strategy)
        return dict(self.doc, strategies=result)


@dataclass(frozen=True)
class ImportPlan:
    segments: list
    flags: list
    warnings: list = field(default_factory=list)


# --- what is not an Unleash document ------------------------------------------------------------------------
def _is_int(value):
    return isinstance(value, int) and not isinstance(value, bool)


def _is_text(value):
    return isinstance(value, str)


def _is_bool(value):
    return isinstance(value, bool)


def _texts(value):
    return isinstance(value, list) and all(isinstance(v, str) for v in value)


def _overrides(value):
    return isinstance(value, list) and all(isinstance(o, dict) and isinstance(o.get("contextName"), str)
                                           and isinstance(o.get("values"), list) for o in value)


def _payload(value):
    return isinstance(value, dict) and isinstance(value.get("type"), str) and isinstance(value.get("value"), str)


def _parameters(value):
    return isinstance(value, dict) and all(isinstance(v, str | int | float) and not isinstance(v, bool)
                                           for v in value.values())


# An object's fields and what each must be when it is given (None counts as not given); ``!``: required.
_CONSTRAINT = {"!contextName": (_is_text, "a string"), "!operator": (_is_text, "a string"),
               "values": (_texts, "a list of strings"), "value": (lambda v: isinstance(v, str | int | float),
                                                                  "a string"),
               "inverted": (_is_bool, "true or false"), "caseInsensitive": (_is_bool, "true or false")}
_VARIANT = {"!name": (_is_text, "a string"), "weight": (_is_int, "a whole number"),
            "weightType": (_is_text, "a string"), "stickiness": (_is_text, "a string"),
            "payload": (_payload, "an object with a string type and a string value"),
            "overrides": (_overrides, "a list of {contextName, values}")}
_STRATEGY = {"!name": (lambda v: isinstance(v, str) and bool(v), "a non-empty string"),
             "parameters": (_parameters, "an object of strings"),
             "segments": (lambda v: isinstance(v, list) and all(_is_int(s) for s in v), "a list of segment ids")}
_DEPENDENCY = {"!feature": (lambda v: isinstance(v, str) and bool(v), "a flag name"),
               "enabled": (_is_bool, "true or false"), "variants": (_texts, "a list of variant names")}
_FEATURE = {"enabled": (_is_bool, "true or false"), "stale": (_is_bool, "true or false"),
            "impressionData": (_is_bool, "true or false"), "type": (_is_text, "a string"),
            "description": (_is_text, "a string"), "project": (_is_text, "a string")}


def _check(item, where, fields):
    """What is wrong with the types of ``item``'s fields (``fields``: see _CONSTRAINT)."""
    if not isinstance(item, dict):
        return [f"{where} must be an object"]
    problems = []
    for key, (valid, what) in fields.items():
        name = key.lstrip("!")
        value = item.get(name)
        if (value is not None or key.startswith("!")) and not valid(value):
            problems.append(f"{where}: {name} must be {what}")
    return problems


def _each(value, label, what, check):
    """What is wrong with a list field: not a list, or what ``check(item, number)`` says of its items."""
    if value is None:
        return []
    if not isinstance(value, list):
        return [f"{label}: {what} must be a list"]
    return [p for i, item in enumerate(value, 1) for p in check(item, i)]


def _check_constraints(constraints, label):
    return _each(constraints, label, "constraints", lambda c, i: _check(c, f"{label}: constraint {i}", _CONSTRAINT))


def _check_variants(variants, label, item="variant"):
    return _each(variants, label, "variants", lambda v, i: _check(v, f"{label}: {item} {i}", _VARIANT))


def _check_strategy(strategy, label):
    problems = _check(strategy, label, _STRATEGY)
    if isinstance(strategy, dict):
        problems += _check_constraints(strategy.get("constraints"), label)
        problems += _check_variants(strategy.get("variants"), label)
    return problems


def _check_feature(feature, label):
    return (_check(feature, label, _FEATURE)
            + _each(feature.get("strategies"), label, "strategies",
                    lambda s, i: _check_strategy(s, f"{label}: strategy {i}"))
            + _check_variants(feature.get("variants"), label, "variants: variant")
            + _each(feature.get("dependencies"), label, "dependencies",
                    lambda d, i: _check(d, f"{label}: dependency {i}", _DEPENDENCY)))


def parse_document(doc):
    """Read an Unleash document into an ImportPlan (with its warnings); ValidationFailed listing every problem
    when it is not an Unleash client-features document."""
    if not isinstance(doc, dict) or not isinstance(doc.get("features"), list):
        raise errors.ValidationFailed('an Unleash document is a JSON object with a "features" list')
    problems = []
    raw_segments = doc.get("segments")
    if raw_segments is not None and not isinstance(raw_segments, list):
        raise errors.ValidationFailed('"segments" must be a list')
    segments = {}
    by_name = {}
    for index, segment in enumerate(raw_segments or []):
        if not isinstance(segment, dict) or "id" not in segment:
            problems.append(f"segments[{index}]: needs an id")
            continue
        sid = segment["id"]
        if not _is_int(sid):
            problems.append(f"segments[{index}]: id must be a whole number")
            continue
        if sid in segments:
            problems.append(f"segments[{index}]: id {sid} is used twice")
            continue
        name = segment.get("name")
        if name is not None and (not isinstance(name, str) or not name.strip() or len(name) > MAX_NAME):
            problems.append(f"segment {sid}: name must be a string of 1 to {MAX_NAME} characters")
            continue
        problems.extend(_check_constraints(segment.get("constraints"), f"segment {sid}"))
        item = ImportedSegment(id=sid, name=name, doc=segment)
        if item.stored_name in by_name:
            # segments are matched by name: two with one name would become one, with the wrong constraints
            problems.append(f"segments {by_name[item.stored_name]} and {sid} have the same name {item.stored_name!r}")
        by_name.setdefault(item.stored_name, sid)
        segments[sid] = item

    flags = []
    names = set()
    for index, feature in enumerate(doc["features"]):
        if not isinstance(feature, dict) or not isinstance(feature.get("name"), str) or not feature["name"]:
            problems.append(f"features[{index}]: needs a name")
            continue
        name = feature["name"]
        label = f"feature {name!r}"
        if len(name) > MAX_NAME:
            problems.append(f"{label}: a name is at most {MAX_NAME} characters")
        if name in names:
            problems.append(f"{label}: given twice")
        names.add(name)
        problems.extend(_check_feature(feature, label))
        flags.append(ImportedFlag(key=name, doc=feature))
    if problems:
        raise errors.ValidationFailed(f"the file was not imported: {len(problems)} problem(s): "
                                      + "; ".join(problems[:20]), reasons=problems)
    return ImportPlan(segments=list(segments.values()), flags=flags)


# --- what can never match (kept; said) ----------------------------------------------------------------------
_NEVER = {
    "unknown operator": "an unknown operator evaluates to false",
    "needs at least one value": "a constraint without values never matches",
    "is not a valid IP address or CIDR range": "an invalid address never matches",
    "is not a valid regular expression": "an unsupported regular expression never matches",
    "is not a valid semantic version": "an invalid version never matches",
    "is not a number": "a value that is not a number never matches",
    "is not a valid ISO-8601 date-time": "an invalid date never matches",
    "unknown strategy": "an unknown strategy evaluates to false",
}


def _why(message):
    for needle, why in _NEVER.items():
        if needle in message:
            return f"{message}: {why}"
    return message


def constraint_warnings(constraints, label):
    return [_why(f"{label}: constraint {i + 1}: {m}") for i, c in enumerate(constraints or [])
            for m in validate_constraint(c)]


def _text_warnings(feature, label):
    texts = [("description", feature.get("description"))]
    for where, variants in [("variants", feature.get("variants"))] + [
            (f"strategy {i + 1} variants", s.get("variants")) for i, s in enumerate(feature.get("strategies") or [])
            if isinstance(s, dict)]:
        for variant in variants or []:
            if isinstance(variant, dict) and isinstance(variant.get("payload"), dict):
                texts.append((f"{where}: {variant.get('name')} payload", variant["payload"].get("value")))
    return [f"{label}: {where} looks like it holds a secret ({kind}): kept as imported"
            for where, text in texts for kind in leaks.secret_kinds(text)]


def feature_warnings(feature, *, segment_ids, flags):
    """Why parts of an Unleash feature can never match (or look like secrets). ``segment_ids``: the segments that
    exist; ``flags``: ``{name: dependencies}`` of the flags that exist (for the dependency checks)."""
    label = f"feature {feature.get('name')!r}"
    warnings = []
    for index, strategy in enumerate(feature.get("strategies") or []):
        if not isinstance(strategy, dict):
            continue
        where = f"{label}: strategy {index + 1} ({strategy.get('name')})"
        checked = dict(strategy, constraints=[], variants=None, segments=[])
        warnings.extend(_why(f"{where}: {m}") for m in validate_strategy(checked)
                        if "must be a string" not in m)
        warnings.extend(constraint_warnings(strategy.get("constraints"), where))
        warnings.extend(f"{where}: variants: {m}" for m in validate_variants(strategy.get("variants"))
                        if "must be an integer" not in m)
        for sid in strategy.get("segments") or []:
            if sid not in segment_ids:
                warnings.append(f"{where}: segment {sid} does not exist: the strategy never matches")
    warnings.extend(f"{label}: variants: {m}" for m in validate_variants(feature.get("variants"))
                    if "must be an integer" not in m)
    for variant in feature.get("variants") or []:
        if isinstance(variant, dict):
            warnings.extend(f"{label}: variant {variant.get('name')!r}: {m}"
                            for m in validate_payload(variant.get("payload")) if "must be" not in m)
    dependencies = [d for d in feature.get("dependencies") or [] if isinstance(d, dict)]
    for dependency in dependencies:
        parent = dependency.get("feature")
        if parent not in flags:
            warnings.append(f"{label}: parent {parent!r} does not exist: the flag is never enabled")
        elif parent == feature.get("name"):
            warnings.append(f"{label}: depends on itself: the flag is never enabled")
        elif flags[parent]:
            warnings.append(f"{label}: parent {parent!r} depends on other flags itself (only one level is "
                            "evaluated): the flag is never enabled")
    warnings.extend(_text_warnings(feature, label))
    return warnings


def plan_warnings(plan, *, existing_segments, existing_flags):
    """Every warning of a plan: ``existing_segments`` (ids) and ``existing_flags`` (``{name: dependencies}``)
    are what the portal holds besides the file."""
    segment_ids = set(existing_segments) | {s.id for s in plan.segments}
    flags = dict(existing_flags)
    flags.update({f.key: [d for d in f.doc.get("dependencies") or [] if isinstance(d, dict)] for f in plan.flags})
    warnings = []
    for segment in plan.segments:
        warnings.extend(constraint_warnings(segment.doc.get("constraints"), f"segment {segment.id}"))
    for flag in plan.flags:
        warnings.extend(feature_warnings(flag.doc, segment_ids=segment_ids, flags=flags))
    return warnings


# --- from a plan to rows ------------------------------------------------------------------------------------
def split_feature(doc, flag_types):
    """``(flag columns, state columns, source)`` of an imported feature: a value goes to its column when the
    column holds it exactly, otherwise (a null, a type the portal does not know) it stays in the source."""
    flag, state, extra = {}, {}, {}
    for key, value in doc.items():
        if key == "name":
            continue
        if key == "type" and value in flag_types:
            flag["type"] = value
        elif key == "description" and isinstance(value, str):
            flag["description"] = value
        elif key == "impressionData" and isinstance(value, bool):
            flag["impression_data"] = value
        elif key == "dependencies" and isinstance(value, list):
            flag["dependencies"] = value
        elif key == "enabled" and isinstance(value, bool):
            state["enabled"] = value
        elif key in ("strategies", "variants") and isinstance(value, list):
            state[key] = value
        else:
            extra[key] = value
    return flag, state, {"keys": list(doc), "extra": extra}


def split_segment(doc):
    """``(columns, source)`` of an imported segment."""
    columns, extra = {}, {}
    for key, value in doc.items():
        if key == "id" or key == "name" and isinstance(value, str):
            continue
        if key == "constraints" and isinstance(value, list):
            columns["constraints"] = value
        elif key == "description" and isinstance(value, str):
            columns["description"] = value
        else:
            extra[key] = value
    return columns, {"keys": list(doc), "extra": extra}


@dataclass
class ImportReport:
    """What an import does (or, with ``dry_run``, would do)."""

    dry_run: bool = False
    created: list = field(default_factory=list)
    changed: list = field(default_factory=list)
    unchanged: list = field(default_factory=list)
    proposed: list = field(default_factory=list)  # flags whose state became a change request (approval needed)
    segments_created: list = field(default_factory=list)
    segments_changed: list = field(default_factory=list)
    segments_unchanged: list = field(default_factory=list)
    warnings: list = field(default_factory=list)

    def counts(self):
        return {"created": len(self.created), "changed": len(self.changed), "unchanged": len(self.unchanged),
                "proposed": len(self.proposed), "segments_created": len(self.segments_created),
                "segments_changed": len(self.segments_changed), "warnings": len(self.warnings)}

    def lines(self):
        """The plan, for people: what changes first, then the warnings."""
        verb = "would be" if self.dry_run else "were"
        out = []
        for title, names in (("created", self.created), ("changed", self.changed),
                             ("proposed for approval", self.proposed), ("unchanged", self.unchanged)):
            out.append(f"{len(names)} flag(s) {verb} {title}" + (f": {', '.join(names[:50])}" if names else ""))
            if len(names) > 50:
                out[-1] += f" … and {len(names) - 50} more"
        out.append(f"segments: {len(self.segments_created)} {verb} created, {len(self.segments_changed)} changed, "
                   f"{len(self.segments_unchanged)} unchanged")
        out.append(f"{len(self.warnings)} warning(s)" + (":" if self.warnings else ""))
        out.extend(f"  ! {w}" for w in self.warnings)
        return out
