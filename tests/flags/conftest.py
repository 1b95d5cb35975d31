"""Fixtures of the flags tests: isolation of the per-process caches, flags and API keys."""
import pytest
from django.core.cache import cache
from django.test import Client

from flags import edge, services, snapshots, usage


@pytest.fixture(autouse=True)
def _flags_isolation(settings, tmp_path):
    """Each test starts with empty per-process snapshots, key cache and rate-limit buckets."""
    settings.FLAGS_USAGE_FLUSH_SECONDS = 0
    settings.FLAGS_EDGE_SNAPSHOT_DIR = tmp_path / "edge-snapshots"
    snapshots.reset()
    edge._buckets.clear()
    usage._counts.clear()
    cache.clear()
    yield
    snapshots.reset()
    edge._buckets.clear()
    usage._counts.clear()


@pytest.fixture
def make_flag(envs):
    """make_flag("key", enabled={"staging": True}, strategies={"staging": [...]}, variants={...}, **flag fields)"""

    def make(key, *, enabled=None, strategies=None, variants=None, **fields):
        flag = services.flag_create(key=key, **fields)
        for name in set(enabled or {}) | set(strategies or {}) | set(variants or {}):
            state = services.state_for(flag, envs[name])
            changes = {}
            if name in (enabled or {}):
                changes["enabled"] = enabled[name]
            if name in (strategies or {}):
                changes["strategies"] = strategies[name]
            if name in (variants or {}):
                changes["variants"] = variants[name]
            services.flag_state_update(state=state, **changes)
        return flag

    return make


@pytest.fixture
def used_segment(make_flag):
    """A segment that flag "f" uses in a strategy in staging (where it is on)."""
    segment = services.segment_save(name="beta", constraints=[
        {"contextName": "plan", "operator": "IN", "values": ["pro"]}])
    make_flag("f", enabled={"staging": True}, strategies={"staging": [
        {"name": "default", "parameters": {}, "constraints": [], "segments": [segment.pk]}]})
    return segment


@pytest.fixture
def make_key(envs):
    def make(env="staging", kind="client", **kwargs):
        _key, raw = services.api_key_create(environment=envs[env], kind=kind, **kwargs)
        return raw

    return make


@pytest.fixture
def http():
    return Client()


def pytest_terminal_summary(terminalreporter):
    """How many cases of the specification passed through import_flags and both SDKs (test_spec_import)."""
    passed = sum(dict(report.user_properties).get("spec_cases", 0)
                 for report in terminalreporter.stats.get("passed", []) if report.when == "call")
    failed = [r for r in terminalreporter.stats.get("failed", []) if "test_spec_import.py::test_spec_state__" in
              getattr(r, "nodeid", "")]
    if passed or failed:
        terminalreporter.write_line(
            f"Unleash specification through import_flags, Unleash SDK and OFREP: {passed} cases passed"
            + (f", {len(failed)} file(s) failed" if failed else ""))
