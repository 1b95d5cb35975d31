"""Benchmark: evaluations per second of flags.engine versus Unleash's Yggdrasil engine (Rust, via ctypes).

    python bench/bench_flag_engine.py [--evaluations 200000] [--repeats 3]

Both engines get the same client-features document: a flexibleRollout flag (50%, default stickiness) with two
constraints (environment IN [...], plan STR_STARTS_WITH [...] case-insensitive) and a two-way variant split,
and the same pre-built contexts. Reports the best of ``--repeats`` runs for each measurement. Yggdrasil is
optional (``pip install yggdrasil-engine==2.0.0``); without it only our figures are printed.
"""

from __future__ import annotations

import argparse
import gc
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from flags.engine import Snapshot  # noqa: E402

FLAG = "new-checkout"

STATE = {
    "version": 2,
    "features": [
        {
            "name": FLAG,
            "type": "release",
            "enabled": True,
            "project": "default",
            "strategies": [
                {
                    "name": "flexibleRollout",
                    "parameters": {"rollout": "50", "stickiness": "default", "groupId": FLAG},
                    "constraints": [
                        {
                            "contextName": "environment",
                            "operator": "IN",
                            "values": ["production", "staging"],
                            "inverted": False,
                            "caseInsensitive": False,
                        },
                        {
                            "contextName": "plan",
                            "operator": "STR_STARTS_WITH",
                            "values": ["pro", "team"],
                            "inverted": False,
                            "caseInsensitive": True,
                        },
                    ],
                    "variants": [],
                }
            ],
            "variants": [
                {"name": "blue", "weight": 500, "weightType": "variable", "stickiness": "default"},
                {"name": "green", "weight": 500, "weightType": "variable", "stickiness": "default"},
            ],
        }
    ],
    "segments": [],
}


def make_contexts(count: int) -> list[dict]:
    plans = ["Pro", "team-large", "free", "PRO-annual"]
    return [
        {
            "userId": f"user-{i}",
            "environment": "production" if i % 10 else "development",
            "appName": "checkout-web",
            "properties": {"plan": plans[i % len(plans)]},
        }
        for i in range(count)
    ]


def rate(fn: Callable[[str, dict], object], contexts: list[dict], evaluations: int, repeats: int) -> float:
    """Best-of-``repeats`` evaluations per second of ``fn(FLAG, context)``."""
    n_contexts = len(contexts)
    rounds = max(evaluations // n_contexts, 1)
    best = 0.0
    for _ in range(repeats):
        gc.collect()
        gc.disable()
        try:
            start = time.perf_counter()
            for _ in range(rounds):
                for ctx in contexts:
                    fn(FLAG, ctx)
            elapsed = time.perf_counter() - start
        finally:
            gc.enable()
        best = max(best, rounds * n_contexts / elapsed)
    return best


def agreement(ours: Snapshot, engine, contexts: list[dict]) -> tuple[int, int]:
    enabled = sum(ours.is_enabled(FLAG, c) == engine.check_enabled(FLAG, c).is_enabled for c in contexts)
    variants = sum(
        ours.get_variant(FLAG, c)["name"] == engine.check_variant(FLAG, c).variant.name for c in contexts
    )
    return enabled, variants


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--evaluations", type=int, default=200_000, help="evaluations per measurement")
    parser.add_argument("--repeats", type=int, default=3, help="runs per measurement (best is kept)")
    parser.add_argument("--contexts", type=int, default=1_000, help="distinct contexts cycled through")
    args = parser.parse_args()

    contexts = make_contexts(args.contexts)
    state_json = json.dumps(STATE)

    start = time.perf_counter()
    snapshot = Snapshot.from_client_features(json.loads(state_json))
    compile_ms = (time.perf_counter() - start) * 1000
    enabled_share = sum(snapshot.is_enabled(FLAG, c) for c in contexts) / len(contexts)

    print(f"python {sys.version.split()[0]}; {args.evaluations:,} evaluations x best of {args.repeats}")
    print(
        f"flag: flexibleRollout 50% + 2 constraints + 2 variants; enabled for {enabled_share:.0%} of contexts"
    )
    print(f"flags.engine compile: {compile_ms:.2f} ms")

    results: dict[str, float] = {}
    results["flags.engine is_enabled"] = rate(snapshot.is_enabled, contexts, args.evaluations, args.repeats)
    results["flags.engine get_variant"] = rate(snapshot.get_variant, contexts, args.evaluations, args.repeats)
    results["flags.engine evaluate"] = rate(snapshot.evaluate, contexts, args.evaluations, args.repeats)

    try:
        from yggdrasil_engine.engine import UnleashEngine
    except ImportError:
        engine = None
        print(
            "yggdrasil-engine is not installed (pip install yggdrasil-engine==2.0.0): skipping the comparison"
        )
    else:
        engine = UnleashEngine()
        warnings = engine.take_state(state_json)
        if warnings:
            print(f"yggdrasil warnings: {warnings}")
        same_enabled, same_variant = agreement(snapshot, engine, contexts)
        print(
            f"agreement with yggdrasil on {len(contexts)} contexts: is_enabled {same_enabled}/{len(contexts)}, "
            f"variant {same_variant}/{len(contexts)}"
        )
        results["yggdrasil check_enabled"] = rate(
            engine.check_enabled, contexts, args.evaluations, args.repeats
        )
        results["yggdrasil is_enabled (+metrics)"] = rate(
            engine.is_enabled, contexts, args.evaluations, args.repeats
        )
        results["yggdrasil check_variant"] = rate(
            engine.check_variant, contexts, args.evaluations, args.repeats
        )

    print()
    width = max(len(k) for k in results)
    for name, value in results.items():
        print(f"{name:<{width}}  {value:>12,.0f} eval/s  {1e6 / value:7.2f} us/eval")
    if engine is not None:
        print()
        ratio_enabled = results["flags.engine is_enabled"] / results["yggdrasil check_enabled"]
        ratio_variant = results["flags.engine get_variant"] / results["yggdrasil check_variant"]
        print(
            f"ratio flags.engine / yggdrasil: is_enabled {ratio_enabled:.1f}x, get_variant {ratio_variant:.1f}x"
        )
    target = 100_000
    verdict = "meets" if results["flags.engine is_enabled"] >= target else "MISSES"
    print(f"target {target:,} eval/s on one core: flags.engine is_enabled {verdict} it")
    return 0 if verdict == "meets" else 1


if __name__ == "__main__":
    raise SystemExit(main())
