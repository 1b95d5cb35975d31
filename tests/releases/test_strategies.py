"""Pure pieces of the deployment engine: plans, promotion rules, JUnit parsing."""
import pytest

from releases.deploy import junit, promotion, strategies


def kinds(strategy, **params):
    return [s["kind"] for s in strategies.plan(strategy, strategies.normalise(strategy, params))]


def test_plan__canary_defaults__weights_pauses_analysis_then_promote():
    steps = strategies.plan("canary", strategies.normalise("canary", {}))
    assert [s["kind"] for s in steps] == [
        "canary", "health_check", "pause", "analysis",
        "canary", "health_check", "pause", "analysis",
        "promote_full", "health_check", "gates", "finalize"]
    assert [s["params"]["weight"] for s in steps if s["kind"] == "canary"] == [10, 50]
    assert steps[2]["params"]["duration"] == 300


def test_plan__canary_manual_pause__waits_for_promotion():
    steps = strategies.plan("canary", strategies.normalise("canary", {"steps": [25, 100], "pause": None}))
    assert steps[2] == {"kind": "pause", "name": "Wait for promotion after 25%", "params": {"duration": None}}


def test_plan__seed_camelcase_parameters__accepted():
    params = strategies.normalise("canary", {"rolloutPercentage": 5, "duration": 20})
    assert params["steps"] == [5, 50, 100] and params["pause"] == 600


def test_plan__blue_green__idle_checks_switch_keep_old_colour():
    assert kinds("blue-green", scale_down_delay=60) == [
        "deploy_idle", "health_check", "switch_traffic", "health_check", "scale_down", "gates", "finalize"]
    assert kinds("blue-green", auto_promote=False)[2] == "pause"


def test_plan__rolling_and_big_bang__deploy_then_checks():
    assert kinds("rolling-update") == ["deploy", "health_check", "gates", "finalize"]
    steps = strategies.plan("big-bang", strategies.normalise("big-bang", {}), has_gates=False)
    assert [s["kind"] for s in steps] == ["deploy", "health_check", "finalize"]
    assert steps[0]["params"]["mode"] == "recreate"


def test_plan__feature_flag__dark_deploy_then_ramp():
    steps = strategies.plan("feature-flag", strategies.normalise("feature-flag", {"flag": "new-editor", "pause": 0}))
    assert [s["kind"] for s in steps] == ["deploy", "health_check", "ramp_flag", "analysis", "ramp_flag", "analysis",
                                          "ramp_flag", "gates", "finalize"]
    assert [s["params"]["percentage"] for s in steps if s["kind"] == "ramp_flag"] == [10, 50, 100]


@pytest.mark.parametrize(("strategy", "params", "field"), [
    ("canary", {"steps": [50, 10]}, "steps"),
    ("canary", {"steps": [0, 100]}, "steps"),
    ("canary", {"pause": -1}, "pause"),
    ("canary", {"pause": 1e300}, "pause"),
    ("blue-green", {"scale_down_delay": 10**12}, "scale_down_delay"),
    ("canary", {"rollback_triggers": [{"metric": "error_rate", "operator": "~", "threshold": 1}]},
     "rollback_triggers"),
    ("feature-flag", {}, "flag"),
    ("yolo", {}, "strategy"),
])
def test_normalise__bad_parameters__named_in_error(strategy, params, field):
    with pytest.raises(strategies.PlanError) as exc:
        strategies.normalise(strategy, params)
    assert field in exc.value.errors


def test_breached__error_rate_above_threshold__fires():
    triggers = [{"metric": "error_rate", "operator": ">", "threshold": 0.1}]
    assert strategies.breached(triggers, {"error_rate": 0.2}) == ["error_rate = 0.2 > 0.1"]
    assert strategies.breached(triggers, {"error_rate": 0.01}) == []
    assert strategies.breached(triggers, {}) == []


ENVS = {
    "development": promotion.Env("development", "development", None),
    "staging": promotion.Env("staging", "staging", "development"),
    "production": promotion.Env("production", "production", "staging"),
    "qa": promotion.Env("qa", "testing", None, "staging", "testing"),
    "dr": promotion.Env("dr", "production", None, "production", "mirror"),
}
ALL = {"development", "staging", "production", "qa", "dr"}


def _refusals(target, successes, release_type="minor", targets=ALL):
    return promotion.refusals(release_type=release_type, target=target, envs=ENVS, targets=targets,
                              successes={s.environment: s for s in successes})


def test_refusals__production_without_staging__names_the_rule():
    assert _refusals("production", [promotion.Success("development")]) == [
        "production needs a successful deployment to staging first (promotion path)"]


def test_refusals__staging_required_gate_failed__production_refused():
    reasons = _refusals("production", [promotion.Success("staging", ("Security Tests",))])
    assert reasons == ["staging's required gates did not pass: Security Tests"]


def test_refusals__staging_after_development__allowed():
    assert _refusals("staging", [promotion.Success("development")]) == []
    assert _refusals("development", []) == []


def test_refusals__hotfix__may_skip_development_not_staging():
    assert _refusals("staging", [], release_type="hotfix") == []
    assert _refusals("production", [], release_type="hotfix") == [
        "production needs a successful deployment to staging first (promotion path)"]


def test_refusals__dr_follows_production_and_qa_after_development():
    assert _refusals("dr", [promotion.Success("staging")]) == [
        "dr needs a successful deployment to production first (dr mirrors production)"]
    assert _refusals("dr", [promotion.Success("production")]) == []
    assert _refusals("qa", []) == ["qa needs a successful deployment to development first (qa hangs off staging)"]


def test_refusals__environment_not_targeted__refused():
    assert "does not target dr" in _refusals("dr", [], targets={"development"})[0]


JUNIT = b"""<?xml version="1.0"?>
<testsuites><testsuite name="api"><testcase classname="api" name="ok"/>
<testcase classname="api" name="broken"><failure message="boom"/></testcase>
<testcase classname="api" name="crash"><error/></testcase><testcase name="later"><skipped/></testcase>
</testsuite><testsuite name="db"><testcase name="db_ok"/></testsuite></testsuites>"""


def test_junit_counts__failures_errors_skipped__counted():
    assert junit.counts(JUNIT) == {"tests": 5, "failures": 1, "errors": 1, "skipped": 1, "passed": 2, "suites": 2,
                                   "failed_cases": ["api.broken", "api.crash"]}


@pytest.mark.parametrize("bad", [b"", b"<testsuite><testcase", b"not xml", b"<html/>",
                                 b'<!DOCTYPE x [<!ENTITY a "b">]><testsuite/>'])
def test_junit_counts__malformed__invalid(bad):
    with pytest.raises(junit.InvalidJUnit):
        junit.counts(bad)
