"""Strategy → plan of steps (releases/deploy/strategies.py, pure)."""
import pytest

from releases.deploy import strategies


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
    ("canary", {"rollback_triggers": {"metric": "error_rate"}}, "rollback_triggers"),
    ("feature-flag", {}, "flag"),
    ("yolo", {}, "strategy"),
])
def test_normalise__bad_parameters__named_in_error(strategy, params, field):
    with pytest.raises(strategies.PlanError) as exc:
        strategies.normalise(strategy, params)
    assert field in exc.value.errors
