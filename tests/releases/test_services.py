"""Release lifecycle through the services: approvals, transitions, access and audit."""
import pytest
from django.core import mail

from pmrelease import delivery, errors
from pmrelease.models import AuditEvent, Notification
from releases import environments, selectors, services
from releases.deploy import engine
from releases.deploy import services as deployments
from releases.models import Release, ReleaseStatus
from tests.factories import make_release, ready_plan

pytestmark = pytest.mark.django_db


@pytest.fixture
def targets(envs):
    return [envs["development"], envs["staging"], envs["production"]]


def _to(state, release, users):
    """Drive a release to ``state`` through the services and the deployment engine (simulation targets)."""
    if state == "planned":
        return release
    services.release_approve(release=release, by=users["approver"])
    if state == "approved":
        return release
    dev = release.environments.get(name="development")
    if state == "deploying":  # a deployment started and not run yet
        deployments.deployment_create(release=release, environment=dev, by=users["ops"], dispatch=False)
        return Release.objects.get(pk=release.pk)
    simulate = {"deployed": {}, "failed": {"fail_deploy": True}, "rolled_back": {"fail_deploy": True}}[state]
    dep = deployments.deployment_create(release=release, environment=dev, by=users["ops"], dispatch=False,
                                        parameters={"simulate": simulate}, auto_rollback=state != "failed")
    engine.run_inline(dep.pk)
    release = Release.objects.get(pk=release.pk)
    assert release.status == state, (release.status, engine.run_inline(dep.pk).failure_reason)
    return release


# The transitions a person runs; deploying, deployed, failed and rolled back follow the deployments.
ALLOWED = {
    "planned": {"approve", "reject"},
    "approved": {"reject"},
    "deploying": set(),
    "deployed": set(),
    "failed": {"redeploy"},
    "rolled_back": {"redeploy"},
}
TARGET = {"approve": "approved", "reject": "planned", "redeploy": "approved"}


@pytest.mark.parametrize("state", list(ALLOWED))
@pytest.mark.parametrize("name", list(TARGET))
def test_release_transition__every_state_and_transition__allowed_or_409(state, name, users, targets, sim_targets):
    release = _to(state, make_release(by=users["planner"], envs=targets), users)
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
    release = make_release(by=users["planner"], envs=targets, quorum=2)
    _, moved = services.release_approve(release=release, by=users["approver"], comment="ok")
    assert not moved and release.status == ReleaseStatus.PLANNED
    assert selectors.approval_blockers(release) == ["1 of 2 required approvals"]
    _, moved = services.release_approve(release=release, by=users["approver2"], comment="ok too")
    assert moved and release.status == ReleaseStatus.APPROVED and release.approved_at is not None


def test_release_approve__same_person_twice__refused(users, targets):
    release = make_release(by=users["planner"], envs=targets, quorum=2)
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
    release = make_release(by=users["planner"], envs=targets, plan=plan)
    with pytest.raises(errors.TransitionNotAllowed) as exc:
        services.release_approve(release=release, by=users["approver"])
    assert exc.value.reasons == ["prerequisite 'Vendor API key rotated' (third_party) is pending"]
    assert Release.objects.get(pk=release.pk).status == ReleaseStatus.PLANNED


def test_release_approve__failed_prerequisite__refused(users, targets):
    plan = ready_plan(prerequisites=[{"type": "compliance", "description": "DPIA", "status": "failed",
                                      "owner": "Sec"}])
    release = make_release(by=users["planner"], envs=targets, plan=plan)
    with pytest.raises(errors.TransitionNotAllowed) as exc:
        services.release_approve(release=release, by=users["approver"])
    assert "is failed" in exc.value.reasons[0]


def test_release_approve__no_rollback_plan__refused_with_reason(users, targets):
    release = make_release(by=users["planner"], envs=targets, plan=ready_plan(rollback_steps=[]))
    with pytest.raises(errors.TransitionNotAllowed) as exc:
        services.release_approve(release=release, by=users["approver"])
    assert exc.value.reasons == ["the rollback plan is missing: add at least one rollback step"]


def test_release_approve__high_risk__needs_two_approvals(users, targets):
    plan = ready_plan(risk_assessment={"impact": "high", "likelihood": "high"})
    release = make_release(by=users["planner"], envs=targets, plan=plan)
    assert release.risk_assessment.level == "critical"
    _, moved = services.release_approve(release=release, by=users["approver"])
    assert not moved


def test_release_approve__named_role__only_its_members(users, targets, groups):
    services.approver_role_save(data={"group": groups["qa"], "max_risk": "medium"}, by=users["admin"])
    release = make_release(by=users["planner"], envs=[targets[0]], required_roles=[groups["qa"]])
    with pytest.raises(errors.PermissionDenied, match="not among this release's approvers"):
        services.release_approve(release=release, by=users["approver"])
    _, moved = services.release_approve(release=release, by=users["qa"])
    assert moved


def test_release_reject__with_reason__back_to_planned_and_new_round(users, targets):
    release = make_release(by=users["planner"], envs=targets)
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
    release = make_release(by=users["planner"], envs=targets)
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
def test_deployment_create__role_by_environment__matrix(role, env, allowed, make_user, users, envs, sim_targets):
    """Who may start a deployment where (full access or more). Allowed outside development, the promotion
    path is what refuses next (no earlier environment has it yet), not the access check."""
    release = make_release(by=users["planner"], envs=[envs[env]])
    services.release_approve(release=release, by=users["approver"])
    actor = make_user(f"actor-{role}", role)
    if not allowed:
        with pytest.raises(errors.PermissionDenied, match=f"access to {env}"):
            deployments.deployment_create(release=release, environment=envs[env], by=actor, dispatch=False)
        assert Release.objects.get(pk=release.pk).status == ReleaseStatus.APPROVED
    elif env == "development":
        dep = deployments.deployment_create(release=release, environment=envs[env], by=actor, dispatch=False)
        assert dep.status == "running" and Release.objects.get(pk=release.pk).status == ReleaseStatus.DEPLOYING
    else:
        with pytest.raises(errors.TransitionNotAllowed, match=f"may not go to {env} yet"):
            deployments.deployment_create(release=release, environment=envs[env], by=actor, dispatch=False)


def test_release_approve__developer_role_allowed_by_an_administrator__still_needs_access(make_user, users, targets,
                                                                                          groups):
    """Approval needs at least read access on every target: a developer has none on production, even in a
    role an administrator allowed to approve."""
    services.approver_role_save(data={"group": groups["developers"], "max_risk": "critical"}, by=users["admin"])
    release = make_release(by=users["planner"], envs=targets)
    dev_approver = make_user("dev-approver", "developers")
    release.required_roles.set([groups["developers"]])  # bypassing the service, which refuses to name them
    with pytest.raises(errors.PermissionDenied, match="no access to production"):
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
    make_release(by=users["planner"], envs=targets, version="2.1.0")
    assert make_release(by=users["planner"], envs=targets, type="patch").version == "2.1.1"
    assert make_release(by=users["planner"], envs=targets, type="minor").version == "2.2.0"
    assert make_release(by=users["planner"], envs=targets, type="major").version == "3.0.0"
    assert make_release(by=users["planner"], envs=targets, type="hotfix").version == "3.0.1"


def test_release_create__duplicate_version__refused(users, targets):
    make_release(by=users["planner"], envs=targets, version="2.1.0")
    with pytest.raises(errors.ValidationFailed) as exc:
        make_release(by=users["planner"], envs=targets, version="2.1.0")
    assert exc.value.field_errors == {"version": ["release 2.1.0 already exists"]}


def test_release_create__non_semver__refused(users, targets):
    with pytest.raises(errors.ValidationFailed) as exc:
        make_release(by=users["planner"], envs=targets, version="2.1")
    assert "not a semantic version" in exc.value.field_errors["version"][0]
    assert Release.objects.count() == 0


def test_release_create__invalid_plan_item__nothing_stored(users, targets):
    plan = ready_plan(rollback_steps=[{"order": 1, "description": "x", "verification": "y",
                                       "on_failure": "explode"}])
    with pytest.raises(errors.ValidationFailed) as exc:
        make_release(by=users["planner"], envs=targets, plan=plan)
    assert "rollback_steps[0]" in exc.value.field_errors
    assert Release.objects.count() == 0 and AuditEvent.objects.count() == 0


def test_release_create__audited_and_approvers_notified(users, targets, django_capture_on_commit_callbacks):
    from releases.tasks import notify_approvers

    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        release = make_release(by=users["planner"], envs=targets)
    assert len(callbacks) == 1
    assert AuditEvent.objects.filter(action="release.create", object_id=str(release.pk)).count() == 1
    sent = notify_approvers(release.pk, release.approval_round)  # the task body, as the worker runs it
    [pk] = Notification.objects.filter(event="approval.requested", channel=None).values_list("pk", flat=True)
    assert delivery.send(notification_id=pk) == "delivered"  # the delivery task (pmrelease.delivery)
    assert sent == 3 and len(mail.outbox) == 1
    assert set(mail.outbox[0].to) == {"approver@example.com", "approver2@example.com", "approver3@example.com"}


def test_release_update__approved_release__409(users, targets):
    release = make_release(by=users["planner"], envs=targets)
    services.release_approve(release=release, by=users["approver"])
    with pytest.raises(errors.TransitionNotAllowed, match="only planned releases can be edited"):
        services.release_update(release=release, data={"title": "new"}, by=users["planner"])


def test_release_update__planned__diff_audited(users, targets):
    release = make_release(by=users["planner"], envs=targets, title="Old")
    services.release_update(release=release, data={"title": "New"}, by=users["planner"],
                            plan={"note_items": [{"kind": "fix", "summary": "Fixed it"}]})
    event = AuditEvent.objects.get(action="release.update")
    assert event.before["title"] == "Old" and event.after["title"] == "New"
    assert event.after["note_items"] == [["fix", "Fixed it", ""]]


def test_available_actions__per_user__only_what_they_may_do(users, targets):
    release = make_release(by=users["planner"], envs=targets)
    names = lambda u: selectors.available_actions(release, u)  # noqa: E731
    assert names(users["approver"]) == ["approve", "reject"]
    assert names(users["planner"]) == []  # author
    assert names(users["ops"]) == []  # not an approver; deploying happens on the deployments
    services.release_approve(release=release, by=users["approver"])
    assert names(users["ops"]) == []
    assert names(users["dev2"]) == []
    assert names(users["approver2"]) == ["reject"]


def test_awaiting_approval__lists_only_eligible_unvoted(users, targets):
    mine = make_release(by=users["planner"], envs=targets, quorum=2)
    own = make_release(by=users["approver"], envs=targets)
    assert [r.pk for r in selectors.awaiting_approval(users["approver"])] == [mine.pk]
    services.release_approve(release=mine, by=users["approver"])
    assert selectors.awaiting_approval(users["approver"]) == []
    assert [r.pk for r in selectors.awaiting_approval(users["approver2"])] == [own.pk, mine.pk] or \
        {r.pk for r in selectors.awaiting_approval(users["approver2"])} == {own.pk, mine.pk}


def test_release_notes__release_with_changes__markdown(users, targets, settings):
    settings.PRODUCT_NAME = "PenguinMails"
    release = make_release(by=users["planner"], envs=targets, version="2.1.0", plan=ready_plan(note_items=[
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


# --- approvals mean what was approved (approval rounds) ------------------------------------------------------
def test_release_update__after_a_vote__withdraws_it_and_opens_a_new_round(users, envs):
    """Risk lowered high → low and quorum 2 → 1 after the first vote: the old vote must not count."""
    release = make_release(by=users["dev"], envs=[envs["staging"]], quorum=2,
                           plan=ready_plan(risk_assessment={"impact": "high", "likelihood": "high"}))
    services.release_approve(release=release, by=users["approver"])
    services.release_update(release=release, data={"quorum": 1}, by=users["dev"],
                            plan={"risk_assessment": {"impact": "low", "likelihood": "low"}})
    release.refresh_from_db()
    assert release.status == ReleaseStatus.PLANNED and release.approval_round == 2
    assert release.current_approvals().count() == 0
    event = AuditEvent.objects.get(action="release.approvals_withdrawn")
    assert event.before == {"round": 1, "votes": [["approver", "approved"]]}
    assert event.after == {"round": 2, "changed": ["quorum", "risk_assessment"]} and event.actor_username == "dev"
    _, moved = services.release_approve(release=release, by=users["approver"])  # may vote again, on the new content
    assert moved


@pytest.mark.parametrize("edit", [
    {"plan": {"rollback_steps": [{"order": 1, "description": "Pray", "verification": "none", "timeout": 60,
                                  "on_failure": "continue"}]}},
    {"data": {"environments": "staging+production"}},
    {"data": {"required_approvers": "approver2+3"}},
    {"data": {"scheduled_for": "tomorrow"}},
    {"plan": {"note_items": [{"kind": "feature", "summary": "A new thing nobody reviewed"}]}},
])
def test_release_update__any_approved_content__withdraws_the_votes(edit, users, envs):
    import datetime as dt

    from django.utils import timezone

    release = make_release(by=users["planner"], envs=[envs["staging"]], quorum=2)
    services.release_approve(release=release, by=users["approver"])
    values = {"staging+production": [envs["staging"], envs["production"]], "approver2+3": [users["approver2"], users["approver3"]],
              "tomorrow": timezone.now() + dt.timedelta(days=1)}
    data = {k: values.get(v, v) for k, v in edit.get("data", {}).items()}
    services.release_update(release=release, data=data, plan=edit.get("plan"), by=users["planner"])
    assert Release.objects.get(pk=release.pk).approval_round == 2
    assert AuditEvent.objects.filter(action="release.approvals_withdrawn").count() == 1


def test_release_update__nothing_changed__votes_kept(users, envs):
    release = make_release(by=users["dev"], envs=[envs["staging"]], quorum=2, title="Same")
    services.release_approve(release=release, by=users["approver"])
    services.release_update(release=release, data={"title": "Same"}, by=users["dev"])
    assert Release.objects.get(pk=release.pk).current_approvals().count() == 1


# --- who may edit and delete ------------------------------------------------------------------------------
def test_release_update__neither_author_nor_release_manager__refused(users, envs):
    release = make_release(by=users["dev"], envs=[envs["development"]])
    with pytest.raises(errors.PermissionDenied, match="only its author or a release manager"):
        services.release_update(release=release, data={"title": "Mine now"}, by=users["dev2"])
    with pytest.raises(errors.PermissionDenied, match="only its author or a release manager"):
        services.release_delete(release=release, by=users["dev2"])
    services.release_update(release=release, data={"title": "Edited by a release manager"}, by=users["approver"])
    assert Release.objects.get(pk=release.pk).title == "Edited by a release manager"


def test_release_update__by_its_author_without_access_to_a_target__refused(users, envs):
    """A developer edited and deleted an operations-owned production release."""
    release = make_release(by=users["planner"], envs=[envs["staging"], envs["production"]])
    for service, kwargs in ((services.release_update, {"data": {"title": "x"}}), (services.release_delete, {})):
        with pytest.raises(errors.PermissionDenied):
            service(release=release, by=users["dev"], **kwargs)
    assert Release.objects.filter(pk=release.pk, title="Test release").exists()
    mine = make_release(by=users["dev"], envs=[envs["staging"]])
    with pytest.raises(errors.PermissionDenied, match="no access to production"):
        services.release_update(release=mine, data={"environments": [envs["production"]]}, by=users["dev"])


# --- redeploy ---------------------------------------------------------------------------------------------
def test_release_redeploy__approvals_no_longer_hold__refused(users, targets, sim_targets, groups):
    release = _to("rolled_back", make_release(by=users["planner"], envs=targets), users)
    users["approver"].groups.remove(groups["approvers"])
    with pytest.raises(errors.TransitionNotAllowed, match="approvals no longer hold"):
        services.release_redeploy(release=release, by=users["ops"], reason="flaky")
    with pytest.raises(errors.ValidationFailed, match="needs a reason"):
        services.release_redeploy(release=release, by=users["ops"], reason=" ")
