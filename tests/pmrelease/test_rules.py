"""Rule arithmetic (pmrelease/rules.py, pure): operators, sustain over a window, cooldown, no data, baselines."""
import pytest

from pmrelease import rules

NOW = 1_000_000.0


def series(values, *, end=NOW, step=1.0):
    """Samples one step apart, the last one at ``end``."""
    return [(end - step * (len(values) - 1 - i), v) for i, v in enumerate(values)]


def rule(**kw):
    return rules.Rule(**{"metric": "error_rate", "operator": ">", "threshold": 0.1, "duration": 6, **kw})


@pytest.mark.parametrize(("op", "value", "breaches"), [
    (">", 0.2, True), (">", 0.1, False), ("<", 0.05, True), ("<", 0.1, False), (">=", 0.1, True), (">=", 0.09, False),
    ("<=", 0.1, True), ("<=", 0.11, False), ("==", 0.1, True), ("==", 0.2, False), ("!=", 0.2, True), ("!=", 0.1, False),
])
def test_breaches__every_operator(op, value, breaches):
    assert rules.breaches(rule(operator=op), value) is breaches


def test_judge__breach_over_the_whole_duration__fires():
    verdict = rules.judge(rule(), series([0.3] * 8), now=NOW, step=1)
    assert verdict.decision == rules.FIRED and verdict.value == 0.3


def test_judge__a_spike_shorter_than_the_duration__breaching_not_fired():
    verdict = rules.judge(rule(), series([0.01] * 5 + [0.5, 0.5, 0.01]), now=NOW, step=1)
    assert verdict.decision == rules.OK
    verdict = rules.judge(rule(), series([0.01] * 5 + [0.5, 0.5, 0.5]), now=NOW, step=1)
    assert verdict.decision == rules.BREACHING and "not yet sustained" in verdict.detail


def test_judge__one_good_sample_inside_the_window__not_sustained():
    verdict = rules.judge(rule(), series([0.3, 0.3, 0.3, 0.05, 0.3, 0.3, 0.3, 0.3]), now=NOW, step=1)
    assert verdict.decision == rules.BREACHING


def test_judge__clock_edge__breach_exactly_as_long_as_the_duration_fires_one_step_short_does_not():
    exact = series([0.01] + [0.3] * 7)  # breaching from NOW-6 to NOW
    assert rules.judge(rule(), exact, now=NOW, step=1).decision == rules.FIRED
    short = series([0.01] * 2 + [0.3] * 6)  # from NOW-5: one step short
    assert rules.judge(rule(), short, now=NOW, step=1).decision == rules.BREACHING


def test_judge__duration_shorter_than_a_tick__still_judged_from_the_samples():
    """The tick may come every 30 s: a 6 s duration is judged from the provider's samples, not the ticks."""
    verdict = rules.judge(rule(duration=6), series([0.01] * 20 + [0.3] * 7), now=NOW, step=1)
    assert verdict.decision == rules.FIRED


def test_judge__series_stopped__stale_data_proves_nothing():
    old = series([0.3] * 8, end=NOW - 30)
    assert rules.judge(rule(), old, now=NOW, step=1).decision == rules.NO_DATA


def test_judge__hole_in_the_series__not_sustained():
    samples = series([0.3] * 8)
    holed = samples[:2] + samples[5:]  # three samples missing: more than one missed scrape
    assert rules.judge(rule(), holed, now=NOW, step=1).decision == rules.BREACHING


@pytest.mark.parametrize(("policy", "decision"), [("hold", rules.NO_DATA), ("alert", rules.NO_DATA),
                                                  ("breach", rules.FIRED)])
def test_judge__no_data__the_policy_decides(policy, decision):
    verdict = rules.judge(rule(no_data=policy), [], now=NOW, step=1)
    assert verdict.decision == decision and (policy in verdict.detail)


def test_judge__provider_error__error_never_a_pass():
    verdict = rules.judge(rule(), series([0.0] * 8), now=NOW, step=1, error="Prometheus did not answer")
    assert verdict.decision == rules.ERROR and "did not answer" in verdict.detail


def test_judge__fired_within_cooldown__cooling_down_then_fires_again():
    fired_at = NOW - 100
    verdict = rules.judge(rule(cooldown=300), series([0.3] * 8), now=NOW, step=1, last_fired_at=fired_at)
    assert verdict.decision == rules.COOLING_DOWN and "200 s more" in verdict.detail
    later = rules.judge(rule(cooldown=300), series([0.3] * 8, end=NOW + 200), now=NOW + 200, step=1,
                        last_fired_at=fired_at)
    assert later.decision == rules.FIRED


def test_judge__cooldown_boundary__exactly_cooldown_later_may_fire():
    verdict = rules.judge(rule(cooldown=60), series([0.3] * 8), now=NOW, step=1, last_fired_at=NOW - 60)
    assert verdict.decision == rules.FIRED


def test_judge__compare_stable_ratio__twice_the_stable_error_rate_fires():
    stable = series([0.02] * 8)
    twice = rule(compare="stable", threshold=2.0)
    assert rules.judge(twice, series([0.05] * 8), now=NOW, step=1, baseline=stable).decision == rules.FIRED
    assert rules.judge(twice, series([0.03] * 8), now=NOW, step=1, baseline=stable).decision == rules.OK


def test_judge__compare_stable_difference_and_missing_baseline():
    diff = rule(compare="stable", compare_mode="difference", threshold=0.01)
    assert rules.judge(diff, series([0.05] * 8), now=NOW, step=1, baseline=series([0.02] * 8)).value == \
        pytest.approx(0.03)
    assert rules.judge(diff, series([0.05] * 8), now=NOW, step=1, baseline=[]).decision == rules.NO_DATA


def test_relative__zero_baseline__only_zero_over_zero_counts():
    assert rules.relative([(1, 0.0), (2, 0.5)], [(0, 0.0)]) == [(1, 1.0)]


def test_problems__bad_fields__each_named():
    found = rules.problems(metric="", operator="~", threshold=float("nan"), duration=-1, no_data="ignore",
                           compare="canary")
    assert [p.split(":")[0] for p in found] == ["metric", "operator", "threshold", "duration", "no_data", "compare"]
