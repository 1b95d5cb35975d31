"""The promotion-path rules (releases/deploy/promotion.py, pure)."""
from releases.deploy import promotion

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


def test_refusals__dr_follows_production_and_qa_after_development():
    assert _refusals("dr", [promotion.Success("staging")]) == [
        "dr needs a successful deployment to production first (dr mirrors production)"]
    assert _refusals("dr", [promotion.Success("production")]) == []
    assert _refusals("qa", []) == ["qa needs a successful deployment to development first (qa hangs off staging)"]


def test_refusals__hotfix__may_skip_development_not_staging():
    assert _refusals("staging", [], release_type="hotfix") == []
    assert _refusals("production", [], release_type="hotfix") == [
        "production needs a successful deployment to staging first (promotion path)"]


def test_refusals__environment_not_targeted__refused():
    assert "does not target dr" in _refusals("dr", [], targets={"development"})[0]
