"""Murmur3 normalisation shared by rollouts and variant selection (Unleash client specification)."""

from __future__ import annotations

import mmh3

ROLLOUT_SEED = 0
VARIANT_SEED = 86028157

_hash = mmh3.hash


def normalized_hash(group_id: str, identifier: object, modulus: int = 100, seed: int = ROLLOUT_SEED) -> int:
    """Return ``murmur3_32(f"{group_id}:{identifier}", seed) % modulus + 1`` (unsigned), i.e. 1..modulus."""
    return _hash(f"{group_id}:{identifier}", seed, False) % modulus + 1
