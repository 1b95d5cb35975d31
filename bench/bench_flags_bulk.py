"""Benchmark: bulk evaluation of 100 flags for one context, in process (what ``POST /ofrep/v1/evaluate/flags``
and ``/api/frontend`` do per request, without HTTP).

    python bench/bench_flags_bulk.py [--contexts 2000] [--repeats 3]
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from flags.engine import Snapshot  # noqa: E402

CONSTRAINTS = [
    {"contextName": "environment", "operator": "IN", "values": ["production", "staging"]},
    {"contextName": "plan", "operator": "STR_STARTS_WITH", "values": ["pro", "team"], "caseInsensitive": True},
]


def document(count=100):
    features = []
    for i in range(count):
        feature = {"name": f"flag-{i:03d}", "enabled": i % 5 != 0, "strategies": [
            {"name": "flexibleRollout", "parameters": {"rollout": str(i), "stickiness": "default", "groupId": f"g{i}"},
             "constraints": CONSTRAINTS[: i % 3]}]}
        if i % 4 == 0:
            feature["variants"] = [
                {"name": "a", "weight": 500, "weightType": "variable", "stickiness": "default",
                 "payload": {"type": "json", "value": '{"x": 1}'}},
                {"name": "b", "weight": 500, "weightType": "variable", "stickiness": "default"}]
        features.append(feature)
    return {"version": 2, "features": features}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--contexts", type=int, default=2000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    snapshot = Snapshot.from_client_features(document())
    contexts = [{"userId": str(i), "environment": "production", "properties": {"plan": "pro" if i % 2 else "free"}}
                for i in range(args.contexts)]
    for label, run in (("evaluate_all (reasons, explanations)", snapshot.evaluate_all),
                       ("is_enabled x 100", lambda ctx: [snapshot.is_enabled(n, ctx) for n in snapshot.feature_names()])):
        best = float("inf")
        for _ in range(args.repeats):
            start = time.perf_counter()
            for ctx in contexts:
                run(ctx)
            best = min(best, time.perf_counter() - start)
        per = best / len(contexts)
        print(f"{label:38} {per * 1000:7.3f} ms per 100-flag bulk  {len(contexts) / best:9,.0f} bulks/s  "
              f"{100 * len(contexts) / best:11,.0f} flag evaluations/s")


if __name__ == "__main__":
    main()
