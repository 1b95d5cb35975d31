"""Variant selection: overrides, weighted split with murmur3 (seed 86028157), payload helpers."""

from __future__ import annotations

import csv
import io
import json
import random
from bisect import bisect_left
from collections.abc import Callable

from .constraints import as_text, make_getter
from .hashing import VARIANT_SEED, _hash

PAYLOAD_TYPES = frozenset({"json", "csv", "string", "number"})
WEIGHT_TYPES = frozenset({"fix", "variable"})
DEFAULT_TOTAL_WEIGHT = 1000

_randint = random.randint


def disabled_variant(feature_enabled: bool = False) -> dict:
    """The variant returned when the flag is off or has no variants (client-specification shape)."""
    return {"name": "disabled", "enabled": False, "feature_enabled": feature_enabled}


def _seed_getter(stickiness: str | None) -> Callable[[dict], object]:
    """Return a function giving the stickiness value for a context, or None (then selection is random)."""
    if stickiness is None or stickiness == "default":

        def default_seed(ctx: dict) -> object:
            value = ctx.get("userId")
            if value is None:
                return ctx.get("sessionId")
            return value

        return default_seed
    if stickiness == "random":
        return lambda ctx: None
    return make_getter(stickiness)


class VariantSet:
    """A compiled list of variants with their cumulative weights, group id and stickiness."""

    __slots__ = (
        "names",
        "payloads",
        "weights",
        "cumulative",
        "total",
        "group_prefix",
        "group_id",
        "stickiness",
        "seed_of",
        "overrides",
        "active_count",
    )

    def __init__(
        self,
        variants: list[dict],
        group_id: str,
        stickiness: str | None,
        allow_overrides: bool = True,
    ) -> None:
        self.names: tuple[str, ...] = tuple(str(v.get("name", "")) for v in variants)
        payloads = []
        for v in variants:
            payload = v.get("payload")
            payloads.append(dict(payload) if isinstance(payload, dict) else None)
        self.payloads: tuple[dict | None, ...] = tuple(payloads)
        weights = []
        for v in variants:
            try:
                weights.append(max(int(v.get("weight", 0) or 0), 0))
            except (TypeError, ValueError):
                weights.append(0)
        self.weights = tuple(weights)
        cumulative = []
        running = 0
        for w in weights:
            running += w
            cumulative.append(running)
        self.cumulative = cumulative
        self.total = running
        self.active_count = sum(1 for w in weights if w > 0)
        self.group_id = group_id
        self.group_prefix = f"{group_id}:"
        self.stickiness = stickiness or "default"
        self.seed_of = _seed_getter(stickiness)
        overrides = []
        if allow_overrides:
            for index, v in enumerate(variants):
                for o in v.get("overrides") or ():
                    if not isinstance(o, dict) or not o.get("contextName"):
                        continue
                    values = frozenset(as_text(x) for x in (o.get("values") or ()) if x is not None)
                    overrides.append((o["contextName"], make_getter(o["contextName"]), values, index))
        self.overrides = tuple(overrides)

    @classmethod
    def build(
        cls, variants: object, group_id: str, stickiness: str | None, allow_overrides: bool = True
    ) -> VariantSet | None:
        """Compile ``variants`` (a list of dicts); None when there is nothing selectable."""
        if not isinstance(variants, list) or not variants:
            return None
        usable = [v for v in variants if isinstance(v, dict)]
        if not usable:
            return None
        built = cls(usable, group_id, stickiness, allow_overrides)
        if built.total <= 0 and not built.overrides:
            return None
        return built

    # ---------------------------------------------------------------------------------------- selection

    def _override(self, ctx: dict) -> tuple[int, str] | None:
        for field, get, values, index in self.overrides:
            value = get(ctx)
            if value is not None and as_text(value) in values:
                return index, field
        return None

    def pick(self, ctx: dict) -> int:
        """Index of the selected variant."""
        if self.overrides:
            hit = self._override(ctx)
            if hit is not None:
                return hit[0]
        total = self.total
        if total <= 0:
            return -1
        seed = self.seed_of(ctx)
        if seed is None:
            target = _randint(1, total)
        else:
            target = _hash(f"{self.group_prefix}{seed}", VARIANT_SEED, False) % total + 1
        return bisect_left(self.cumulative, target)

    def pick_how(self, ctx: dict) -> tuple[int, str]:
        """(index, how) as ``pick_explained`` gives them, without the text."""
        if self.overrides:
            hit = self._override(ctx)
            if hit is not None:
                return hit[0], "override"
        if self.total <= 0:
            return -1, "single"
        return self.pick(ctx), "split" if self.active_count > 1 else "single"

    def pick_explained(self, ctx: dict) -> tuple[int, str, str]:
        """(index, how, text) where how is "override", "split" or "single"."""
        if self.overrides:
            hit = self._override(ctx)
            if hit is not None:
                return hit[0], "override", f"variant {self.names[hit[0]]!r} selected by override on {hit[1]}"
        total = self.total
        if total <= 0:
            return -1, "single", "no variant has a positive weight"
        seed = self.seed_of(ctx)
        if seed is None:
            target = _randint(1, total)
            basis = f"random (no {self.stickiness} stickiness value in context)"
        else:
            target = _hash(f"{self.group_prefix}{seed}", VARIANT_SEED, False) % total + 1
            basis = f"stickiness {self.stickiness}, group {self.group_id!r}"
        index = bisect_left(self.cumulative, target)
        if self.active_count <= 1:
            return index, "single", f"variant {self.names[index]!r} (only variant with weight)"
        return (
            index,
            "split",
            f"variant {self.names[index]!r} selected by weighted split: bucket {target}/{total} ({basis})",
        )

    def result(self, index: int, feature_enabled: bool = True) -> dict:
        """The client-specification variant object for ``index`` (a fresh dict)."""
        if index < 0:
            return disabled_variant(feature_enabled)
        payload = self.payloads[index]
        if payload is None:
            return {"name": self.names[index], "enabled": True, "feature_enabled": feature_enabled}
        return {
            "name": self.names[index],
            "payload": dict(payload),
            "enabled": True,
            "feature_enabled": feature_enabled,
        }


def decode_payload(payload: dict | None) -> object:
    """Turn a variant payload ``{"type", "value"}`` into a Python value.

    ``json`` → parsed JSON, ``number`` → int or float, ``csv`` → list of rows (lists of strings),
    ``string`` (and unknown types) → the string. Raises ``ValueError`` for a malformed json/number payload.
    """
    if not payload:
        return None
    kind = payload.get("type")
    value = payload.get("value")
    if value is None:
        return None
    if kind == "json":
        return json.loads(value) if isinstance(value, str) else value
    if kind == "number":
        if isinstance(value, int | float) and not isinstance(value, bool):
            return value
        text = str(value).strip()
        try:
            return int(text)
        except ValueError:
            return float(text)
    if kind == "csv":
        return [row for row in csv.reader(io.StringIO(str(value)))]
    return value


def compute_variant_weights(variants: list[dict], total: int = DEFAULT_TOTAL_WEIGHT) -> list[dict]:
    """Return copies of ``variants`` with ``weight`` filled in the way the Unleash server does.

    ``weightType: "fix"`` variants keep their weight; the remainder of ``total`` is shared evenly between
    the ``variable`` ones, the first ones getting one extra unit while the division leaves a remainder.
    Raises ``ValueError`` when fixed weights exceed ``total``.
    """
    result = [dict(v) for v in variants]
    if not result:
        return result
    fixed = [v for v in result if v.get("weightType") == "fix"]
    variable = [v for v in result if v.get("weightType") != "fix"]
    fixed_total = 0
    for v in fixed:
        fixed_total += int(v.get("weight", 0) or 0)
    if fixed_total > total:
        raise ValueError(f"the fixed variant weights add up to {fixed_total}, more than {total}")
    if not variable:
        return result
    share, remainder = divmod(total - fixed_total, len(variable))
    for v in variable:
        v["weight"] = share + (1 if remainder > 0 else 0)
        remainder -= 1
        v.setdefault("weightType", "variable")
    return result
