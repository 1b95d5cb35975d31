"""Pure-Python Unleash feature-flag evaluation engine (no Django imports).

Compile once, evaluate many::

    snapshot = Snapshot.from_client_features(doc)      # {"version", "features", "segments"}
    snapshot.is_enabled("new-checkout", {"userId": "42", "properties": {"plan": "pro"}})
    snapshot.get_variant("new-checkout", context)      # {"name", "payload"?, "enabled", "feature_enabled"}
    snapshot.evaluate("new-checkout", context)         # Evaluation(enabled, variant, reason, explanation...)

Snapshots are immutable and safe to share between threads; swap in a new one when the configuration changes
(``snapshot.apply_delta(events)`` returns a new snapshot for delta-API events).
"""

from .constraints import OPERATORS, CompiledConstraint, compile_constraint
from .hashing import ROLLOUT_SEED, VARIANT_SEED, normalized_hash
from .regex import RegexTranslationError, compile_rust_regex, translate_rust_regex
from .snapshot import DISABLED, UNKNOWN, Evaluation, FeatureInfo, Snapshot
from .strategies import KNOWN_STRATEGIES, SPLIT, STATIC, TARGETING_MATCH
from .variants import (
    PAYLOAD_TYPES,
    WEIGHT_TYPES,
    VariantSet,
    compute_variant_weights,
    decode_payload,
    disabled_variant,
)

REASONS = (STATIC, TARGETING_MATCH, SPLIT, DISABLED, UNKNOWN)

__all__ = [
    "DISABLED",
    "KNOWN_STRATEGIES",
    "OPERATORS",
    "PAYLOAD_TYPES",
    "REASONS",
    "ROLLOUT_SEED",
    "SPLIT",
    "STATIC",
    "TARGETING_MATCH",
    "UNKNOWN",
    "VARIANT_SEED",
    "WEIGHT_TYPES",
    "CompiledConstraint",
    "Evaluation",
    "FeatureInfo",
    "RegexTranslationError",
    "Snapshot",
    "VariantSet",
    "compile_constraint",
    "compile_rust_regex",
    "compute_variant_weights",
    "decode_payload",
    "disabled_variant",
    "normalized_hash",
    "translate_rust_regex",
]
