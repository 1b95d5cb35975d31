"""Release lifecycle through the services: approvals, transitions, access and audit."""
import pytest
from django.core import mail

from pmrelease import errors
from pmrelease.models import AuditEvent
from releases import environments, selectors, services
from releases.models import Release, ReleaseStatus
from tests.factories import make_release, ready_plan

pytestmark = pytest.mark.django_db


@pytest.fixture
def targets(envs):
    return [envs["development"], envs["staging"], envs["production"]]


def _to(state, release, users):
    """Drive a release to ``state`` through the services."""
    if state == "planned":
        return release
    services.release_approve(release=release, by=users["approver"])
    if state == "approved":
        return release
    services.release_deploy(release=release, by=users["ops"])
    if state == "deploying":
        return release
    if state == "deployed":
        return services.release_complete(release=release, by=users["ops"])
    if state == "failed":
        return services.release_fail(release=release, by=users["ops"], reason="boom")
    if state == "rolled_back":
        services.release_fail(release=release, by=users["ops"], reason="boom")
        return services.release_rollback(release=release, by=users["ops"], reason="restore")
    raise AssertionError(state)


ALLOWED = {
    "planned": {"approve", "reject"},
    "approved": {"reject", "deploy"},
    "deploying": {"complete", "fail", "rollback"},
    "deployed": {"rollback"},
    "failed": {"rollback"},
    "rolled_back": set(),
}
TARGET = {"approve": "approved", "reject": "planned", "deploy": "deploying", "complete": "deployed",
          "fail": "failed", "rollback": "rolled_back"}


@pytest.mark.parametrize("state", list(ALLOWED))
@pytest.mark.parametrize("name", list(TARGET))
def test_release_transition__every_state_and_transition__allowed_or_409(state, name, users, targets):
    release = _to(state, make_release(by=users["dev"], envs=targets), users)
    actor = users["approver2"] if name in ("approve", "reject") else users["ops"]
    if name in ALLOWED[state]:
        result = services.release_transition(release=release, name=name, by=actor, text="because")
        assert result.status == TARGET[name]
        assert AuditEvent.objects.filter(action=f"release.{name}", object_id=str(release.pk)).exists()
    else:
        before = Release.objects.get(pk=release.pk).status
        with pytest.raises(errors.TransitionNotAllowed):
            services.release_transition(release=release, name=name, by=actor, text="because")
        assert Release.objects.get(pk=release.pk).status == before


def test_release_approve__quorum_of_two__approved_only_on_second_vote(users, targets):
    release = make_release(by=users["dev"], envs=targets, quorum=2)
    _, moved = services.release_approve(release=release, by=users["approver"], comment="ok")
    assert not moved and release.status == ReleaseStatus.PLANNED
    assert release.approval_blockers() == ["1 of 2 required approvals"]
    _, moved = services.release_approve(release=release, by=users["approver2"], comment="ok too")
    assert moved and release.status == ReleaseStatus.APPROVED and release.approved_at is not None


def test_release_approve__same_person_twice__refused(users, targets):
    release = make_release(by=users["dev"], envs=targets, quorum=2)
    services.release_approve(release=release, by=users["approver"])
    with pytest.raises(errors.PermissionDenied, match="already voted"):
        services.release_approve(release=release, by=users["approver"])


def test_release_approve__author__refused_even_as_approver(users, targets):
    release = make_release(by=users["approver"], envs=targets)
    with pytest.raises(errors.PermissionDenied, match="author of a release cannot approve"):
        services.release_approve(release=release, by=users["approver"])
    assert release.approvals.count() == 0


def test_release_approve__pending_prerequisite__refused_with_reason(users, targets):
    plan = ready_plan(prerequisites=[{"type": "third_party", "description": "Vendor API key rotated",
                                      "status": "pending", "owner": "Ops"}])
    release = make_release(by=users["dev"], envs=targets, plan=plan)
    with pytest.raises(errors.TransitionNotAllowed) as exc:
        services.release_approve(release=release, by=users["approver"])
    assert exc.value.reasons == ["prerequisite 'Vendor API key rotated' (third_party) is pending"]
    assert Release.objects.get(pk=release.pk).status == ReleaseStatus.PLANNED


def test_release_approve__failed_prerequisite__refused(users, targets):
    plan = ready_plan(prerequisites=[{"type": "compliance", "description": "DPIA", "status": "failed",
                                      "owner": "Sec"}])
    release = make_release(by=users["dev"], envs=targets, plan=plan)
    with pytest.raises(errors.TransitionNotAllowed) as exc:
        services.release_approve(release=release, by=users["approver"])
    assert "is failed" in exc.value.reasons[0]


def test_release_approve__no_rollback_plan__refused_with_reason(users, targets):
    release = make_release(by=users["dev"], envs=targets, plan=ready_plan(rollback_steps=[]))
    with pytest.raises(errors.TransitionNotAllowed) as exc:
        services.release_approve(release=release, by=users["approver"])
    assert exc.value.reasons == ["the rollback plan is missing: add at least one rollback step"]


def test_release_approve__high_risk__needs_two_approvals(users, targets):
    plan = ready_plan(risk_assessment={"impact": "high", "likelihood": "high"})
    release = make_release(by=users["dev"], envs=targets, plan=plan)
    assert release.risk_assessment.level == "critical"
    _, moved = services.release_approve(release=release, by=users["approver"])
    assert not moved


def test_release_approve__named_role__only_its_members(users, targets, groups):
    release = make_release(by=users["dev"], envs=[targets[0]])
    release.required_roles.set([groups["qa"]])
    with pytest.raises(errors.PermissionDenied, match="not among this release's approvers"):
        services.release_approve(release=release, by=users["approver"])
    _, moved = services.release_approve(release=release, by=users["qa"])
    assert moved


def test_release_reject__with_reason__back_to_planned_and_new_round(users, targets):
    release = make_release(by=users["dev"], envs=targets)
    services.release_approve(release=release, by=users["approver"])
    services.release_reject(release=release, by=users["approver2"], reason="Missing load test")
    assert release.status == ReleaseStatus.PLANNED and release.approval_round == 2
    assert release.current_approvals().count() == 0
    event = AuditEvent.objects.filter(action="release.reject").get()
    assert event.reason == "Missing load test" and event.actor_username == "approver2"
    # the earlier approver may vote again in the new round
    _, moved = services.release_approve(release=release, by=users["approver"])
    assert moved


def test_release_reject__without_reason__400(users, targets):
    release = make_release(by=users["dev"], envs=targets)
    with pytest.raises(errors.ValidationFailed, match="needs a reason"):
        services.release_reject(release=release, by=users["approver"], reason="  ")


@pytest.mark.parametrize(("role", "env", "allowed"), [
    ("developers", "development", True),
    ("developers", "staging", False),  # limited
    ("developers", "production", False),  # none
    ("qa", "staging", True),
    ("qa", "production", False),
    ("support", "production", False),  # limited debugging access
    ("operations", "production", True),
    ("operations", "dr", True),
    ("security", "production", False),
    ("approvers", "production", False),
])
def test_release_deploy__role_by_environment__matrix(role, env, allowed, make_user, users, envs):
    release = make_release(by=users["product"], envs=[envs[env]])
    services.release_approve(release=release, by=users["approver"])
    actor = make_user(f"actor-{role}", role)
    if allowed:
        assert services.release_deploy(release=release, by=actor).status == ReleaseStatus.DEPLOYING
    else:
        with pytest.raises(errors.PermissionDenied, match=f"access to {env}"):
            services.release_deploy(release=release, by=actor)
        assert Release.objects.get(pk=release.pk).status == ReleaseStatus.APPROVED


def test_release_approve__developer_in_approvers_group__cannot_approve_production(make_user, users, targets):
    """Approval needs at least read access on every target: a developer has none on production."""
    release = make_release(by=users["dev"], envs=targets)
    dev_approver = make_user("dev-approver", "developers")
    release.required_roles.set([dev_approver.groups.get()])
    with pytest.raises(errors.PermissionDenied, match="none access to production"):
        services.release_approve(release=release, by=dev_approver)


def test_environment_update__developer_on_production__refused(users, envs):
    with pytest.raises(errors.PermissionDenied):
        environments.environment_update(environment=envs["production"], data={"purpose": "x"}, by=users["dev"])
    envs["production"].refresh_from_db()
    assert envs["production"].purpose == "Live user-facing system"


def test_environment_update__operations__saved_and_audited(users, envs):
    environments.environment_update(environment=envs["production"], data={"data_retention": "7 years"}, by=users["ops"])
    event = AuditEvent.objects.get(action="environment.update")
    assert event.before == {"data_retention": "Per data classification policy"}
    assert event.after == {"data_retention": "7 years"}


def test_release_create__no_version__proposed_from_last(users, targets):
    make_release(by=users["dev"], envs=targets, version="2.1.0")
    assert make_release(by=users["dev"], envs=targets, type="patch").version == "2.1.1"
    assert make_release(by=users["dev"], envs=targets, type="minor").version == "2.2.0"
    assert make_release(by=users["dev"], envs=targets, type="major").version == "3.0.0"
    assert make_release(by=users["dev"], envs=targets, type="hotfix").version == "3.0.1"


def test_release_create__duplicate_version__refused(users, targets):
    make_release(by=users["dev"], envs=targets, version="2.1.0")
    with pytest.raises(errors.ValidationFailed) as exc:
        make_release(by=users["dev"], envs=targets, version="2.1.0")
    assert exc.value.field_errors == {"version": ["release 2.1.0 already exists"]}


def test_release_create__non_semver__refused(users, targets):
    with pytest.raises(errors.ValidationFailed) as exc:
        make_release(by=users["dev"], envs=targets, version="2.1")
    assert "not a semantic version" in exc.value.field_errors["version"][0]
    assert Release.objects.count() == 0


def test_release_create__invalid_plan_item__nothing_stored(users, targets):
    plan = ready_plan(rollback_steps=[{"order": 1, "description": "x", "verification": "y",
                                       "on_failure": "explode"}])
    with pytest.raises(errors.ValidationFailed) as exc:
        make_release(by=users["dev"], envs=targets, plan=plan)
    assert "rollback_steps[0]" in exc.value.field_errors
    assert Release.objects.count() == 0 and AuditEvent.objects.count() == 0


def test_release_create__audited_and_approvers_notified(users, targets, django_capture_on_commit_callbacks):
    from releases.tasks import notify_approvers

    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        release = make_release(by=users["dev"], envs=targets)
    assert len(callbacks) == 1
    assert AuditEvent.objects.filter(action="release.create", object_id=str(release.pk)).count() == 1
    sent = notify_approvers(release.pk, release.approval_round)  # the task body, as the worker runs it
    assert sent == 3 and len(mail.outbox) == 1
    assert set(mail.outbox[0].to) == {"approver@example.com", "approver2@example.com", "approver3@example.com"}


def test_release_update__approved_release__409(users, targets):
    release = make_release(by=users["dev"], envs=targets)
    services.release_approve(release=release, by=users["approver"])
    with pytest.raises(errors.TransitionNotAllowed, match="only planned releases can be edited"):
        services.release_update(release=release, data={"title": "new"}, by=users["dev"])


def test_release_update__planned__diff_audited(users, targets):
    release = make_release(by=users["dev"], envs=targets, title="Old")
    services.release_update(release=release, data={"title": "New"}, by=users["dev"],
                            plan={"note_items": [{"kind": "fix", "summary": "Fixed it"}]})
    event = AuditEvent.objects.get(action="release.update")
    assert event.before["title"] == "Old" and event.after["title"] == "New"
    assert event.after["note_items"] == [["fix", "Fixed it", ""]]


def test_available_actions__per_user__only_what_they_may_do(users, targets):
    release = make_release(by=users["dev"], envs=targets)
    names = lambda u: selectors.available_actions(release, u)  # noqa: E731
    assert names(users["approver"]) == ["approve", "reject"]
    assert names(users["dev"]) == []  # author
    assert names(users["ops"]) == []  # not an approver; nothing to deploy yet
    services.release_approve(release=release, by=users["approver"])
    assert names(users["ops"]) == ["deploy"]
    assert names(users["dev2"]) == []  # developers have no deploy access to staging/production
    assert names(users["approver2"]) == ["reject"]


def test_awaiting_approval__lists_only_eligible_unvoted(users, targets):
    mine = make_release(by=users["dev"], envs=targets, quorum=2)
    own = make_release(by=users["approver"], envs=targets)
    assert [r.pk for r in selectors.awaiting_approval(users["approver"])] == [mine.pk]
    services.release_approve(release=mine, by=users["approver"])
    assert selectors.awaiting_approval(users["approver"]) == []
    assert [r.pk for r in selectors.awaiting_approval(users["approver2"])] == [own.pk, mine.pk] or \
        {r.pk for r in selectors.awaiting_approval(users["approver2"])} == {own.pk, mine.pk}


def test_release_notes__release_with_changes__markdown(users, targets, settings):
    settings.PRODUCT_NAME = "PenguinMails"
    release = make_release(by=users["dev"], envs=targets, version="2.1.0", plan=ready_plan(note_items=[
        {"kind": k, "summary": f"{k} item"} for k in ("feature", "fix", "improvement", "migration", "security")]))
    md = selectors.release_notes(release)
    assert md.startswith("# Release 2.1.0 - PenguinMails (")
    for heading in ("New Features", "Bug Fixes", "Technical Improvements", "Migration Notes", "Security Updates"):
        assert heading in md


def test_promotion_path__seed_environments__development_staging_production(envs):
    from releases.models import Environment

    assert [e.name for e in Environment.promotion_path()] == ["development", "staging", "production"]
    assert envs["dr"].attached_to == envs["production"] and envs["dr"].attachment == "mirror"
    assert envs["qa"].attached_to == envs["staging"]
