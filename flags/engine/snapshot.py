"""Compiled, immutable view of an Unleash client-features document: compile once, evaluate many."""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from .constraints import Predicate
from .strategies import (
    SPLIT,
    STATIC,
    TARGETING_MATCH,
    CompiledStrategy,
    compile_strategy,
    default_hostname,
)
from .variants import VariantSet, disabled_variant

DISABLED = "DISABLED"
UNKNOWN = "UNKNOWN"

_EMPTY: dict = {}


def _same(value):
    return value


def _variant_reason(reason: str, how: str) -> str:
    """The reason once a variant was picked: a weighted split is a SPLIT, an override a targeting match."""
    if how == "split":
        return SPLIT
    if how == "override" and reason != SPLIT:
        return TARGETING_MATCH
    return reason


@dataclass(slots=True)
class Evaluation:
    """The outcome of evaluating one flag for one context, with an OFREP-style reason and an explanation.

    Made per evaluation and never shared (not frozen: a frozen dataclass costs a microsecond more to build, on the
    serving path)."""

    flag: str
    enabled: bool
    variant: str = "disabled"
    variant_enabled: bool = False
    payload: dict | None = None
    reason: str = DISABLED
    explanation: str = ""
    flag_not_found: bool = False
    strategy_index: int | None = None
    strategy_name: str | None = None
    impression_data: bool = False

    def variant_dict(self) -> dict:
        """The variant in the client-specification / frontend-API shape."""
        result: dict = {"name": self.variant}
        if self.payload is not None:
            result["payload"] = dict(self.payload)
        result["enabled"] = self.variant_enabled
        result["feature_enabled"] = self.enabled
        return result


@dataclass(frozen=True, slots=True)
class FeatureInfo:
    name: str
    enabled: bool
    type: str | None = None
    project: str = "default"
    description: str | None = None
    stale: bool = False
    impression_data: bool = False
    dependencies: tuple[str, ...] = ()


@dataclass(slots=True)
class CompiledFeature:
    name: str
    enabled: bool
    strategies: tuple[CompiledStrategy, ...]
    variants: VariantSet | None
    dependencies: tuple[tuple[str, bool, frozenset | None], ...]
    is_on: Predicate  # enabled flag + strategies, without dependencies
    info: FeatureInfo
    segment_ids: frozenset = field(default_factory=frozenset)
    warnings: tuple[str, ...] = ()

    def match(self, ctx: dict) -> CompiledStrategy | None:
        for strategy in self.strategies:
            if strategy.check(ctx):
                return strategy
        return None


def _false(ctx: dict) -> bool:
    return False


def _true(ctx: dict) -> bool:
    return True


def _any_of(strategies: tuple[CompiledStrategy, ...]) -> Predicate:
    checks = tuple(s.check for s in strategies)
    if len(checks) == 1:
        return checks[0]
    if len(checks) == 2:
        a, b = checks

        def either(ctx: dict) -> bool:
            return a(ctx) or b(ctx)

        return either

    def any_of(ctx: dict) -> bool:
        for check in checks:
            if check(ctx):
                return True
        return False

    return any_of


def _segment_map(segments: Iterable | None) -> dict[int, list]:
    result: dict[int, list] = {}
    for segment in segments or ():
        if isinstance(segment, dict) and "id" in segment:
            result[segment["id"]] = list(segment.get("constraints") or ())
    return result


def compile_feature(raw: dict, segments: dict[int, list], hostname: str) -> CompiledFeature:
    name = str(raw.get("name", ""))
    enabled = bool(raw.get("enabled", False))
    strategies = tuple(
        compile_strategy(s, i, name, segments, hostname) for i, s in enumerate(raw.get("strategies") or ())
    )
    feature_variants = raw.get("variants")
    stickiness = None
    if isinstance(feature_variants, list) and feature_variants and isinstance(feature_variants[0], dict):
        stickiness = feature_variants[0].get("stickiness")
    variants = VariantSet.build(feature_variants, name, stickiness, allow_overrides=True)
    dependencies = []
    for dep in raw.get("dependencies") or ():
        if not isinstance(dep, dict) or not dep.get("feature"):
            continue
        expected_variants = dep.get("variants")
        dependencies.append(
            (
                str(dep["feature"]),
                dep.get("enabled", True) is not False,
                frozenset(expected_variants) if expected_variants else None,
            )
        )
    if not enabled:
        is_on: Predicate = _false
    elif not strategies:
        is_on = _true
    else:
        is_on = _any_of(strategies)
    segment_ids = frozenset(
        sid for s in raw.get("strategies") or () if isinstance(s, dict) for sid in s.get("segments") or ()
    )
    warnings = tuple(f"{name}: {s.label}: {w}" for s in strategies for w in s.warnings)
    info = FeatureInfo(
        name=name,
        enabled=enabled,
        type=raw.get("type"),
        project=raw.get("project") or "default",
        description=raw.get("description"),
        stale=bool(raw.get("stale", False)),
        impression_data=bool(raw.get("impressionData", False)),
        dependencies=tuple(d[0] for d in dependencies),
    )
    return CompiledFeature(
        name, enabled, strategies, variants, tuple(dependencies), is_on, info, segment_ids, warnings
    )


class Snapshot:
    """An immutable compiled feature set. Build with :meth:`from_client_features`; share between threads."""

    __slots__ = ("_features", "_raw_features", "_raw_segments", "hostname", "version", "meta")

    def __init__(
        self,
        features: dict[str, CompiledFeature],
        raw_features: dict[str, dict],
        raw_segments: dict,
        hostname: str,
        version: object = 2,
        meta: object = None,
    ) -> None:
        self._features = features
        self._raw_features = raw_features
        self._raw_segments = raw_segments
        self.hostname = hostname
        self.version = version
        self.meta = meta

    # ------------------------------------------------------------------------------------------ building

    @classmethod
    def from_client_features(cls, doc: Mapping, *, hostname: str | None = None, copy_input: bool = True) -> Snapshot:
        """Compile ``{"version", "features", "segments"}`` (the body of ``GET /api/client/features``).

        A document holding delta events (``{"events": [...]}``) is accepted too. ``copy_input=False``: the caller
        hands over a document it will never change (it is kept as it is, without a deep copy).
        """
        keep = copy.deepcopy if copy_input else _same
        if not isinstance(doc, Mapping):
            raise TypeError("a client-features document must be a mapping")
        host = default_hostname() if hostname is None else hostname
        if "events" in doc and "features" not in doc:
            return cls.empty(hostname=host).apply_delta(doc["events"], copy_input=copy_input)
        raw_segments = {
            s["id"]: keep(s) for s in doc.get("segments") or () if isinstance(s, dict) and "id" in s
        }
        segments = _segment_map(raw_segments.values())
        raw_features: dict[str, dict] = {}
        features: dict[str, CompiledFeature] = {}
        for raw in doc.get("features") or ():
            if not isinstance(raw, dict) or not raw.get("name"):
                continue
            raw = keep(raw)
            raw_features[raw["name"]] = raw
            features[raw["name"]] = compile_feature(raw, segments, host)
        return cls(features, raw_features, raw_segments, host, doc.get("version", 2), doc.get("meta"))

    @classmethod
    def empty(cls, *, hostname: str | None = None) -> Snapshot:
        return cls({}, {}, {}, default_hostname() if hostname is None else hostname)

    def apply_delta(self, events: Iterable[Mapping] | Mapping, *, copy_input: bool = True) -> Snapshot:
        """Return a new snapshot with delta-API events applied (``hydration``, ``feature-updated``,
        ``feature-removed``, ``segment-updated``, ``segment-removed``). Only affected flags are recompiled, and
        the work is proportional to them (the unchanged ones are shared, in their order; new ones go last)."""
        keep = copy.deepcopy if copy_input else _same
        if isinstance(events, Mapping):
            events = events.get("events") or ()
        features = dict(self._features)
        raw_features = dict(self._raw_features)
        raw_segments = dict(self._raw_segments)
        dirty_segments: set = set()
        dirty_features: dict[str, None] = {}  # an ordered set
        for event in events:
            kind = event.get("type")
            if kind == "hydration":
                features, raw_features, dirty_features = {}, {}, {}
                raw_segments = {
                    s["id"]: keep(s) for s in event.get("segments") or () if isinstance(s, dict)
                }
                dirty_segments = set()
                for raw in event.get("features") or ():
                    if isinstance(raw, dict) and raw.get("name"):
                        raw_features[raw["name"]] = keep(raw)
                        dirty_features[raw["name"]] = None
            elif kind == "feature-updated":
                raw = event.get("feature")
                if isinstance(raw, dict) and raw.get("name"):
                    raw_features[raw["name"]] = keep(raw)
                    dirty_features[raw["name"]] = None
            elif kind == "feature-removed":
                name = event.get("featureName")
                raw_features.pop(name, None)
                features.pop(name, None)
                dirty_features.pop(name, None)
            elif kind == "segment-updated":
                segment = event.get("segment")
                if isinstance(segment, dict) and "id" in segment:
                    raw_segments[segment["id"]] = keep(segment)
                    dirty_segments.add(segment["id"])
            elif kind == "segment-removed":
                segment_id = event.get("segmentId", event.get("id"))
                raw_segments.pop(segment_id, None)
                dirty_segments.add(segment_id)
        segments = _segment_map(raw_segments.values())
        if dirty_segments:
            for name, compiled in features.items():
                if compiled.segment_ids & dirty_segments:
                    dirty_features[name] = None
        # Keep the document order: updated flags stay where they were (a dict keeps a key's place when its value
        # is replaced), new ones go last.
        for name in dirty_features:
            features[name] = compile_feature(raw_features[name], segments, self.hostname)
        return Snapshot(features, raw_features, raw_segments, self.hostname, self.version, self.meta)

    # ---------------------------------------------------------------------------------------- inspection

    @property
    def warnings(self) -> list[str]:
        """Compile problems (unknown operators, invalid values, missing segments...), one string each."""
        return [w for f in self._features.values() for w in f.warnings]

    def feature_names(self) -> list[str]:
        return list(self._features)

    def feature(self, name: str) -> FeatureInfo | None:
        compiled = self._features.get(name)
        return None if compiled is None else compiled.info

    def __contains__(self, name: object) -> bool:
        return name in self._features

    def __len__(self) -> int:
        return len(self._features)

    def to_client_features(self) -> dict:
        """The (copied) raw document this snapshot was compiled from."""
        return {
            "version": self.version,
            "features": copy.deepcopy(list(self._raw_features.values())),
            "segments": copy.deepcopy(list(self._raw_segments.values())),
        }

    # ----------------------------------------------------------------------------------------- fast path

    def _dependencies_ok(self, feature: CompiledFeature, ctx: dict) -> bool:
        features = self._features
        for parent_name, expect_enabled, expected_variants in feature.dependencies:
            parent = features.get(parent_name)
            if parent is None or parent.dependencies:
                return False
            parent_on = parent.is_on(ctx)
            if not expect_enabled:
                if parent_on:
                    return False
                continue
            if not parent_on:
                return False
            if expected_variants and self._variant_name(parent, ctx) not in expected_variants:
                return False
        return True

    @staticmethod
    def _variant_name(feature: CompiledFeature, ctx: dict) -> str:
        """Variant name of a feature already known to be on (dependencies not considered)."""
        variants = feature.variants
        if feature.strategies:
            strategy = feature.match(ctx)
            if strategy is not None and strategy.variants is not None:
                variants = strategy.variants
        if variants is None:
            return "disabled"
        index = variants.pick(ctx)
        return "disabled" if index < 0 else variants.names[index]

    def is_enabled(self, name: str, context: dict | None = None) -> bool:
        feature = self._features.get(name)
        if feature is None:
            return False
        ctx = context or _EMPTY
        if feature.dependencies and not self._dependencies_ok(feature, ctx):
            return False
        return feature.is_on(ctx)

    def get_variant(self, name: str, context: dict | None = None) -> dict:
        """The variant object of the client specification:
        ``{"name", "payload"?, "enabled", "feature_enabled"}``."""
        feature = self._features.get(name)
        if feature is None or not feature.enabled:
            return disabled_variant(False)
        ctx = context or _EMPTY
        if feature.dependencies and not self._dependencies_ok(feature, ctx):
            return disabled_variant(False)
        variants = feature.variants
        if feature.strategies:
            strategy = feature.match(ctx)
            if strategy is None:
                return disabled_variant(False)
            if strategy.variants is not None:
                variants = strategy.variants
        if variants is None:
            return disabled_variant(True)
        return variants.result(variants.pick(ctx))

    # --------------------------------------------------------------------------------------- explaining

    def evaluate(self, name: str, context: dict | None = None) -> Evaluation:
        """Evaluate with a reason (STATIC / TARGETING_MATCH / SPLIT / DISABLED / UNKNOWN) and an explanation."""
        feature = self._features.get(name)
        if feature is None:
            return Evaluation(
                name, False, reason=UNKNOWN, explanation=f"flag {name!r} does not exist", flag_not_found=True
            )
        ctx = context or _EMPTY
        impression = feature.info.impression_data
        if not feature.enabled:
            return Evaluation(
                name, False, reason=DISABLED, explanation="flag is disabled", impression_data=impression
            )
        problem = self._explain_dependencies(feature, ctx)
        if problem is not None:
            return Evaluation(
                name, False, reason=TARGETING_MATCH, explanation=problem, impression_data=impression
            )

        strategy: CompiledStrategy | None = None
        if not feature.strategies:
            reason, explanation = STATIC, "flag is enabled and has no strategies"
        else:
            failures: list[str] = []
            failure_kinds: set[str] = set()
            for candidate in feature.strategies:
                passed, text, kind = candidate.explain(ctx)
                if passed:
                    strategy, reason, explanation = candidate, kind, text
                    break
                failures.append(text)
                failure_kinds.add(kind)
            if strategy is None:
                return Evaluation(
                    name,
                    False,
                    reason=SPLIT if SPLIT in failure_kinds else TARGETING_MATCH,
                    explanation="no strategy matched: " + "; ".join(failures),
                    impression_data=impression,
                )
        if feature.dependencies:
            explanation = f"{explanation}; parent dependencies satisfied"
            if reason == STATIC:
                reason = TARGETING_MATCH

        variants = feature.variants
        if strategy is not None and strategy.variants is not None:
            variants = strategy.variants
        if variants is None:
            return Evaluation(
                name,
                True,
                reason=reason,
                explanation=explanation,
                strategy_index=None if strategy is None else strategy.index,
                strategy_name=None if strategy is None else strategy.name,
                impression_data=impression,
            )
        index, how, variant_text = variants.pick_explained(ctx)
        reason = _variant_reason(reason, how)
        if index < 0:
            variant_name, payload, variant_enabled = "disabled", None, False
        else:
            variant_name, payload, variant_enabled = variants.names[index], variants.payloads[index], True
        return Evaluation(
            name,
            True,
            variant=variant_name,
            variant_enabled=variant_enabled,
            payload=None if payload is None else dict(payload),
            reason=reason,
            explanation=f"{explanation}; {variant_text}",
            strategy_index=None if strategy is None else strategy.index,
            strategy_name=None if strategy is None else strategy.name,
            impression_data=impression,
        )

    def resolve(self, name: str, context: dict | None = None) -> Evaluation:
        """What :meth:`evaluate` decides — enabled, variant, payload, reason, deciding strategy — without the
        explanation text: the serving path (OFREP). A property test holds the two to the same answers."""
        feature = self._features.get(name)
        if feature is None:
            return Evaluation(name, False, reason=UNKNOWN, flag_not_found=True)
        ctx = context or _EMPTY
        impression = feature.info.impression_data
        if not feature.enabled:
            return Evaluation(name, False, reason=DISABLED, impression_data=impression)
        if feature.dependencies and not self._dependencies_ok(feature, ctx):
            return Evaluation(name, False, reason=TARGETING_MATCH, impression_data=impression)
        strategy: CompiledStrategy | None = None
        if not feature.strategies:
            reason = STATIC
        else:
            split = False
            for candidate in feature.strategies:
                if candidate.check(ctx):
                    strategy, reason = candidate, candidate.passed_kind(ctx)
                    break
                if not split and candidate.failed_on_split(ctx):
                    split = True
            if strategy is None:
                return Evaluation(name, False, reason=SPLIT if split else TARGETING_MATCH, impression_data=impression)
        if feature.dependencies and reason == STATIC:
            reason = TARGETING_MATCH
        variants = feature.variants
        if strategy is not None and strategy.variants is not None:
            variants = strategy.variants
        strategy_index = None if strategy is None else strategy.index
        strategy_name = None if strategy is None else strategy.name
        if variants is None:
            return Evaluation(name, True, reason=reason, strategy_index=strategy_index, strategy_name=strategy_name,
                              impression_data=impression)
        index, how = variants.pick_how(ctx)
        reason = _variant_reason(reason, how)
        if index < 0:
            return Evaluation(name, True, reason=reason, strategy_index=strategy_index, strategy_name=strategy_name,
                              impression_data=impression)
        payload = variants.payloads[index]
        return Evaluation(name, True, variant=variants.names[index], variant_enabled=True,
                          payload=None if payload is None else dict(payload), reason=reason,
                          strategy_index=strategy_index, strategy_name=strategy_name, impression_data=impression)

    def _explain_dependencies(self, feature: CompiledFeature, ctx: dict) -> str | None:
        for parent_name, expect_enabled, expected_variants in feature.dependencies:
            parent = self._features.get(parent_name)
            if parent is None:
                return f"parent flag {parent_name!r} does not exist"
            if parent.dependencies:
                return (
                    f"parent flag {parent_name!r} has dependencies of its own (only one level is supported)"
                )
            parent_on = parent.is_on(ctx)
            if not expect_enabled:
                if parent_on:
                    return f"parent flag {parent_name!r} is enabled but is required to be disabled"
                continue
            if not parent_on:
                return f"parent flag {parent_name!r} is not enabled"
            if expected_variants:
                variant = self._variant_name(parent, ctx)
                if variant not in expected_variants:
                    wanted = ", ".join(repr(v) for v in sorted(expected_variants))
                    return f"parent flag {parent_name!r} has variant {variant!r}, required one of [{wanted}]"
        return None

    def evaluate_all(self, context: dict | None = None) -> dict[str, Evaluation]:
        """Evaluate every flag (document order) — for the frontend API and bulk OFREP."""
        return {name: self.evaluate(name, context) for name in self._features}
