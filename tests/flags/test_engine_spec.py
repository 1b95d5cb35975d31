"""The published Unleash client specification, run against ``flags.engine``.

The suite is located through ``UNLEASH_SPEC_DIR`` (a folder holding ``index.json``, or a package folder holding
``specifications/index.json``) or, failing that, downloaded once with ``npm pack`` into ``var/unleash-spec/``
under the repository root. No npm and no cached copy is an error, not a skip: the suite is the acceptance test.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tarfile
import tempfile
from pathlib import Path

import pytest

from flags.engine import Snapshot

SPEC_PACKAGE = "@unleash/client-specification"
SPEC_VERSION = "6.1.0"
REPO_ROOT = Path(__file__).resolve().parents[2]
CACHE_DIR = REPO_ROOT / "var" / "unleash-spec" / SPEC_VERSION


def _specifications_dir(candidate: Path) -> Path | None:
    for folder in (candidate, candidate / "specifications", candidate / "package" / "specifications"):
        if (folder / "index.json").is_file():
            return folder
    return None


def _download(target: Path) -> None:
    npm = shutil.which("npm")
    if npm is None:
        raise RuntimeError(
            f"npm is not installed: cannot fetch {SPEC_PACKAGE}@{SPEC_VERSION}. Install npm or point "
            "UNLEASH_SPEC_DIR at an extracted copy of the package."
        )
    with tempfile.TemporaryDirectory() as scratch:
        completed = subprocess.run(
            [npm, "pack", f"{SPEC_PACKAGE}@{SPEC_VERSION}", "--silent", "--pack-destination", scratch],
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        tarballs = list(Path(scratch).glob("*.tgz"))
        if completed.returncode != 0 or len(tarballs) != 1:
            raise RuntimeError(
                f"npm pack {SPEC_PACKAGE}@{SPEC_VERSION} failed (exit {completed.returncode}): "
                f"{completed.stderr.strip() or completed.stdout.strip()}"
            )
        staging = Path(tempfile.mkdtemp(prefix="unleash-spec-", dir=target.parent))
        try:
            with tarfile.open(tarballs[0], "r:gz") as archive:
                if hasattr(tarfile, "data_filter"):
                    archive.extractall(staging, filter="data")
                else:  # pragma: no cover - Python < 3.11.4 has no extraction filters
                    archive.extractall(staging)
            if target.exists():
                shutil.rmtree(target)
            staging.rename(target)
        finally:
            shutil.rmtree(staging, ignore_errors=True)


def locate_spec_dir() -> Path:
    configured = os.environ.get("UNLEASH_SPEC_DIR")
    if configured:
        found = _specifications_dir(Path(configured))
        if found is None:
            raise RuntimeError(f"UNLEASH_SPEC_DIR={configured!r} holds no index.json (nor specifications/)")
        return found
    found = _specifications_dir(CACHE_DIR)
    if found is None:
        CACHE_DIR.parent.mkdir(parents=True, exist_ok=True)
        _download(CACHE_DIR)
        found = _specifications_dir(CACHE_DIR)
        if found is None:
            raise RuntimeError(f"{SPEC_PACKAGE}@{SPEC_VERSION} unpacked into {CACHE_DIR} without index.json")
    return found


SPEC_DIR = locate_spec_dir()
SPEC_FILES = json.loads((SPEC_DIR / "index.json").read_text(encoding="utf-8"))


def _load(file_name: str) -> dict:
    return json.loads((SPEC_DIR / file_name).read_text(encoding="utf-8"))


def _cases(kind: str) -> list:
    params = []
    for file_name in SPEC_FILES:
        suite = _load(file_name)
        stem = file_name.removesuffix(".json")
        for index in range(len(suite.get(kind) or ())):
            params.append(pytest.param(file_name, index, id=f"{stem}[{index}]"))
    return params


_SNAPSHOTS: dict[str, tuple[Snapshot, dict]] = {}


def _suite(file_name: str) -> tuple[Snapshot, dict]:
    """Compile each file's state once; delta-API files (events instead of a state) go through apply_delta."""
    if file_name not in _SNAPSHOTS:
        suite = _load(file_name)
        state = suite["state"]
        if "events" in state:
            snapshot = Snapshot.empty(hostname="spec-host").apply_delta(state["events"])
        else:
            snapshot = Snapshot.from_client_features(state, hostname="spec-host")
        _SNAPSHOTS[file_name] = (snapshot, suite)
    return _SNAPSHOTS[file_name]


def test_spec_suite__pinned_version__has_all_files_and_cases():
    total = sum(
        len(_load(f).get("tests") or ()) + len(_load(f).get("variantTests") or ()) for f in SPEC_FILES
    )
    assert len(SPEC_FILES) >= 22
    assert total >= 279


@pytest.mark.parametrize(("file_name", "index"), _cases("tests"))
def test_is_enabled(file_name: str, index: int):
    snapshot, suite = _suite(file_name)
    case = suite["tests"][index]
    actual = snapshot.is_enabled(case["toggleName"], case["context"])
    assert actual == case["expectedResult"], (
        f"{case['description']}: expected {case['expectedResult']}, got {actual} "
        f"({snapshot.evaluate(case['toggleName'], case['context']).explanation})"
    )


@pytest.mark.parametrize(("file_name", "index"), _cases("variantTests"))
def test_get_variant(file_name: str, index: int):
    snapshot, suite = _suite(file_name)
    case = suite["variantTests"][index]
    actual = snapshot.get_variant(case["toggleName"], case["context"])
    assert actual == case["expectedResult"], case["description"]


@pytest.mark.parametrize(("file_name", "index"), _cases("tests"))
def test_evaluate__spec_case__agrees_with_is_enabled(file_name: str, index: int):
    """The explaining path must reach the same verdict as the fast path."""
    snapshot, suite = _suite(file_name)
    case = suite["tests"][index]
    evaluation = snapshot.evaluate(case["toggleName"], case["context"])
    assert evaluation.enabled == case["expectedResult"], evaluation.explanation


@pytest.mark.parametrize(("file_name", "index"), _cases("variantTests"))
def test_evaluate__spec_variant_case__agrees_with_get_variant(file_name: str, index: int):
    snapshot, suite = _suite(file_name)
    case = suite["variantTests"][index]
    evaluation = snapshot.evaluate(case["toggleName"], case["context"])
    assert evaluation.variant_dict() == case["expectedResult"], evaluation.explanation


def _decided(evaluation):
    return (evaluation.enabled, evaluation.variant_dict(), evaluation.reason, evaluation.strategy_index,
            evaluation.strategy_name, evaluation.flag_not_found, evaluation.impression_data)


@pytest.mark.parametrize("file_name", SPEC_FILES)
def test_resolve__every_flag_for_every_spec_context__decides_as_evaluate(file_name: str):
    """The serving path (``resolve``, no explanation text) gives every flag of each state the same enabled,
    variant, reason and strategy as ``evaluate`` for every context of the file (random draws replayed)."""
    import random

    snapshot, suite = _suite(file_name)
    contexts = [c["context"] for c in (suite.get("tests") or []) + (suite.get("variantTests") or [])]
    contexts += [{}, {"userId": "1"}, {"sessionId": "s"}, {"properties": {"customField": "x"}}]
    for number, ctx in enumerate(contexts):
        for name in [*snapshot.feature_names(), "no-such-flag"]:
            random.seed(number)
            explained = snapshot.evaluate(name, ctx)
            random.seed(number)
            assert _decided(snapshot.resolve(name, ctx)) == _decided(explained), (name, ctx, explained.explanation)


def _random_feature(rng, index):
    constraint = rng.choice([[], [{"contextName": "plan", "operator": "IN", "values": ["pro"]}],
                             [{"contextName": "plan", "operator": "IN", "values": ["pro"], "inverted": True}]])
    strategies = []
    for _ in range(rng.randint(0, 3)):
        name = rng.choice(["default", "flexibleRollout", "userWithId", "gradualRolloutUserId", "remoteAddress"])
        parameters = {"flexibleRollout": {"rollout": str(rng.choice([0, 30, 100])), "groupId": "g",
                                          "stickiness": rng.choice(["default", "userId", "sessionId", "plan"])},
                      "userWithId": {"userIds": "1,2,3"}, "gradualRolloutUserId": {"percentage": "50", "groupId": "x"},
                      "remoteAddress": {"IPs": "10.0.0.0/8"}}.get(name, {})
        strategy = {"name": name, "parameters": parameters, "constraints": rng.choice([[], constraint])}
        if rng.random() < 0.3:
            strategy["variants"] = [{"name": "s1", "weight": 500, "stickiness": "default"},
                                    {"name": "s2", "weight": 500, "stickiness": "default"}]
        strategies.append(strategy)
    feature = {"name": f"f{index}", "enabled": rng.random() < 0.9, "strategies": strategies}
    if rng.random() < 0.4:
        feature["variants"] = [{"name": "a", "weight": rng.choice([0, 1, 50]), "stickiness": "default",
                                "overrides": [{"contextName": "userId", "values": ["7"]}]},
                               {"name": "b", "weight": 50, "payload": {"type": "string", "value": "b"}}]
    if index and rng.random() < 0.3:
        feature["dependencies"] = [{"feature": f"f{rng.randrange(index)}", "enabled": rng.random() < 0.8}]
    return feature


@pytest.mark.parametrize("seed", range(20))
def test_resolve__random_flags_and_contexts__decides_as_evaluate(seed: int):
    import random

    rng = random.Random(seed)
    snapshot = Snapshot.from_client_features({"features": [_random_feature(rng, i) for i in range(12)]},
                                             hostname="h")
    for number in range(60):
        ctx = {k: v for k, v in {"userId": str(rng.randint(1, 9)), "sessionId": rng.choice([None, "s1", "s2"]),
                                 "remoteAddress": rng.choice([None, "10.1.1.1", "8.8.8.8"]),
                                 "properties": {"plan": rng.choice(["pro", "free"])}}.items() if v is not None}
        if rng.random() < 0.2:
            ctx.pop("userId")
        for name in snapshot.feature_names():
            random.seed(number)
            explained = snapshot.evaluate(name, ctx)
            random.seed(number)
            assert _decided(snapshot.resolve(name, ctx)) == _decided(explained), (name, ctx, explained.explanation)
