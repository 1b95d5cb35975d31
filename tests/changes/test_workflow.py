"""Change requests through the seven steps: every transition allowed and refused, separation of duties, standard
and emergency changes, edits withdrawing approvals, risk raised never lowered."""
import datetime as dt

import pytest
import time_machine
from django.core import mail
from django.utils import timezone

from changes import services
from changes.models import ChangeApproval, ChangeFreeze, ChangeRequest
from pmrelease import errors
from pmrelease.models import AuditEvent
from tests.factories import approve_change

pytestmark = pytest.mark.django_db


def approved(new_change, users, *names, **kw):
    change = new_change(*names, **kw)
    services.change_submit(change=change, by=change.requested_by)
    return approve_change(change)


def status(change):
    return ChangeRequest.objects.get(pk=change.pk).status


# --- the happy path, step by step --------------------------------------------------------------------------------
def test_normal_change__every_step__draft_to_closed_with_the_audit_trail(new_change, users):
    change = new_change("staging", by=users["dev"])
    assert change.status == "draft" and change.requested_by == users["dev"]
    services.change_submit(change=change, by=users["dev"])
    assert status(change) == "submitted"
    services.change_approve(change=change, by=users["approver"], comment="Reviewed")
    assert status(change) == "approved"  # staging: the technical review is all the policy asks
    services.change_schedule(change=change, by=users["ops"], planned_start=timezone.now() + dt.timedelta(hours=1))
    assert status(change) == "scheduled"
    services.change_implement(change=change, by=users["ops"])
    change.refresh_from_db()
    assert change.status == "implementing" and change.implementer == users["ops"]
    services.change_validate(change=change, by=users["ops"])
    services.change_close(change=change, by=users["ops"], close_code="successful_with_issues", notes="slow cache")
    change.refresh_from_db()
    assert (change.status, change.close_code, change.close_notes) == ("closed", "successful_with_issues", "slow cache")
    steps = list(AuditEvent.objects.for_object(change).values_list("action", flat=True))
    for action in ("change.create", "changerequest.submit", "changerequest.review", "change.approval",
                   "changerequest.approve", "changerequest.schedule", "changerequest.implement",
                   "changerequest.validate", "changerequest.close"):
        assert action in steps, (action, steps)


# Every transition from every state: (state, transition) pairs that are allowed; everything else is a 409.
ALLOWED = {
    ("draft", "submit"), ("draft", "cancel"),
    ("submitted", "approve"), ("submitted", "reject"), ("submitted", "cancel"),
    ("in_review", "approve"), ("in_review", "reject"), ("in_review", "cancel"),
    ("approved", "schedule"), ("approved", "implement"), ("approved", "reject"), ("approved", "cancel"),
    ("scheduled", "implement"), ("scheduled", "reject"), ("scheduled", "cancel"),
    ("implementing", "validate"), ("implementing", "fail"),
    ("validating", "close"), ("validating", "fail"),
}
STATES = ["draft", "submitted", "in_review", "approved", "scheduled", "implementing", "validating", "closed",
          "failed", "cancelled"]
TRANSITIONS = ["submit", "approve", "reject", "schedule", "implement", "validate", "close", "fail", "cancel"]


def _bring_to(state, new_change, users):
    """A production change (two roles approve) in ``state``."""
    change = new_change("production", by=users["planner"], planned_start=timezone.now() + dt.timedelta(hours=2))
    if state == "draft":
        return change
    if state == "cancelled":
        return services.change_cancel(change=change, by=users["planner"], reason="not needed")
    services.change_submit(change=change, by=users["planner"])
    if state == "submitted":
        return change
    services.change_approve(change=change, by=users["approver"])
    if state == "in_review":
        return change
    approve_change(change)
    if state == "approved":
        return change
    if state == "scheduled":
        return services.change_schedule(change=change, by=users["ops"])
    services.change_implement(change=change, by=users["ops"])
    if state == "implementing":
        return change
    if state == "failed":
        return services.change_fail(change=change, by=users["ops"], reason="health checks failed")
    services.change_validate(change=change, by=users["ops"])
    if state == "validating":
        return change
    return services.change_close(change=change, by=users["ops"])


@pytest.mark.parametrize("state", STATES)
@pytest.mark.parametrize("name", TRANSITIONS)
def test_every_transition__from_every_state__allowed_or_409(new_change, users, state, name):
    change = _bring_to(state, new_change, users)
    assert status(change) == state
    # someone who may do the step when the state allows it: operations run it, a fresh approver decides
    actor = {"submit": users["planner"], "cancel": users["planner"], "approve": users["approver2"],
             "reject": users["approver2"]}.get(name, users["ops"])
    text = "because" if name in ("reject", "fail", "cancel") else ""
    if (state, name) in ALLOWED:
        services.change_transition(change=ChangeRequest.objects.get(pk=change.pk), name=name, by=actor, text=text)
        assert status(change) != state or name == "approve"
    else:
        with pytest.raises(errors.TransitionNotAllowed):
            services.change_transition(change=ChangeRequest.objects.get(pk=change.pk), name=name, by=actor,
                                       text=text)
        assert status(change) == state


def test_submit__plans_missing__400_naming_them(new_change, users):
    change = new_change("staging", implementation_plan="", testing_plan="  ")
    with pytest.raises(errors.ValidationFailed) as exc:
        services.change_submit(change=change, by=users["dev"])
    assert set(exc.value.field_errors) == {"implementation_plan", "testing_plan"}
    assert status(change) == "draft"


def test_reject__back_to_draft_with_reason_and_new_round(new_change, users):
    change = new_change("staging")
    services.change_submit(change=change, by=users["dev"])
    with pytest.raises(errors.ValidationFailed):
        services.change_reject(change=change, by=users["approver"], reason=" ")
    services.change_reject(change=change, by=users["approver"], reason="the rollback plan is missing a step")
    change.refresh_from_db()
    assert change.status == "draft" and change.approval_round == 2
    vote = ChangeApproval.objects.get(change=change)
    assert (vote.decision, vote.comment, vote.round) == ("rejected", "the rollback plan is missing a step", 1)
    services.change_submit(change=change, by=users["dev"])
    services.change_approve(change=change, by=users["approver"])  # a new round: the same person decides again
    assert status(change) == "approved"


# --- separation of duties ------------------------------------------------------------------------------------------
def test_requester__cannot_approve_or_reject_own_change__refusal_recorded(new_change, users, make_user):
    both = make_user("both", "approvers", "developers")
    change = new_change("staging", by=both)
    services.change_submit(change=change, by=both)
    with pytest.raises(errors.PermissionDenied, match="requester"):
        services.change_approve(change=change, by=both)
    with pytest.raises(errors.PermissionDenied, match="requester"):
        services.change_reject(change=change, by=both, reason="no")
    refused = AuditEvent.objects.get(action="change.approval_refused", object_id=str(change.pk))
    assert refused.actor_username == "both" and "separation of duties" in refused.reason
    assert not ChangeApproval.objects.filter(change=change).exists()
    assert status(change) == "submitted"


def test_implementer__named_in_advance__cannot_approve(new_change, users):
    change = new_change("staging", implementer=users["approver"])
    services.change_submit(change=change, by=users["dev"])
    with pytest.raises(errors.PermissionDenied, match="implementer"):
        services.change_approve(change=change, by=users["approver"])
    services.change_approve(change=change, by=users["approver2"])
    assert status(change) == "approved"


def test_approve__role_the_policy_does_not_name__403(new_change, users):
    change = new_change("staging")
    services.change_submit(change=change, by=users["dev"])
    with pytest.raises(errors.PermissionDenied, match="none of the roles"):
        services.change_approve(change=change, by=users["qa"])


def test_approve__twice_in_one_round__refused(new_change, users):
    change = new_change("production", by=users["planner"])
    services.change_submit(change=change, by=users["planner"])
    services.change_approve(change=change, by=users["approver"])
    with pytest.raises(errors.PermissionDenied, match="already decided"):
        services.change_approve(change=change, by=users["approver"])


# --- standard changes ----------------------------------------------------------------------------------------------
def _template(users, envs, approve=True, **kw):
    template = services.template_save(by=users["admin"], data={
        "name": "Rotate certificates", "type": "infrastructure", "implementation_plan": "renew",
        "rollback_plan": "restore", "testing_plan": "handshake", "max_risk": "medium", **kw})
    if approve:
        services.template_approve(template=template, by=users["admin"])
    return template


def test_standard_change__approved_template__skips_review(users, envs):
    template = _template(users, envs, environments=[envs["production"]])
    change = services.change_create_from_template(template=template, by=users["planner"], data={
        "title": "Rotate December certificates", "environments": [envs["production"]]})
    assert change.change_class == "standard" and change.implementation_plan == "renew"
    services.change_submit(change=change, by=users["planner"])
    change.refresh_from_db()
    assert change.status == "approved" and not change.approvals.exists()
    event = AuditEvent.objects.get(action="changerequest.approve", object_id=str(change.pk))
    assert "pre-approved template" in event.reason


def test_standard_change__unapproved_template_or_wrong_environment_or_risk__refused(users, envs):
    draft = _template(users, envs, approve=False)
    with pytest.raises(errors.ValidationFailed, match="not approved"):
        services.change_create_from_template(template=draft, by=users["planner"], data={
            "title": "x", "environments": [envs["staging"]]})
    template = _template(users, envs, environments=[envs["staging"]], name="Staging only")
    with pytest.raises(errors.ValidationFailed, match="staging only"):
        services.change_create_from_template(template=template, by=users["planner"], data={
            "title": "x", "environments": [envs["production"]]})
    low = _template(users, envs, name="Low only", max_risk="low")
    with pytest.raises(errors.ValidationFailed, match="make it a normal change"):
        services.change_create_from_template(template=low, by=users["planner"], data={
            "title": "x", "environments": [envs["production"]]})  # production: at least medium


def test_template__approved_version__not_editable(users, envs):
    template = _template(users, envs)
    with pytest.raises(errors.TransitionNotAllowed, match="new version"):
        services.template_save(template=template, by=users["admin"], data={"testing_plan": "none"})
    with pytest.raises(errors.PermissionDenied):
        services.template_save(by=users["ops"], data={"name": "mine"})


# --- emergency changes --------------------------------------------------------------------------------------------
def test_emergency__one_operations_approver__implements_inside_a_freeze_and_needs_its_review(users, envs):
    now = timezone.now()
    ChangeFreeze.objects.create(reason="Launch week", starts_at=now - dt.timedelta(hours=1),
                                ends_at=now + dt.timedelta(days=1))
    change = services.change_create(by=users["planner"], change_class="emergency", data={
        "title": "Hotfix the bounce handler", "environments": [envs["production"]], "impact": "high",
        "implementation_plan": "", "rollback_plan": "", "testing_plan": ""})
    services.change_submit(change=change, by=users["planner"])  # no plans needed up front
    with pytest.raises(errors.PermissionDenied, match="operations"):
        services.change_approve(change=change, by=users["approver"])
    services.change_approve(change=change, by=users["ops"])
    assert status(change) == "approved"
    services.change_implement(change=change, by=users["planner"])  # inside the freeze: a warning, not a refusal
    event = AuditEvent.objects.get(action="changerequest.implement", object_id=str(change.pk))
    assert "emergency change" in event.reason and "Launch week" in event.reason
    services.change_validate(change=change, by=users["planner"])
    with pytest.raises(errors.TransitionNotAllowed) as exc:
        services.change_close(change=change, by=users["planner"])
    assert exc.value.reasons == ["post-implementation review (root cause, prevention)",
                                 "retrospective approval by operations"]
    with pytest.raises(errors.PermissionDenied, match="implementer"):
        services.change_record_review(change=change, by=users["planner"], root_cause="a", prevention="b")
    with pytest.raises(errors.ValidationFailed):
        services.change_record_review(change=change, by=users["ops"], root_cause="", prevention="b")
    services.change_record_review(change=change, by=users["approver"], root_cause="a bad regex",
                                  prevention="fuzz the parser in CI")
    with pytest.raises(errors.TransitionNotAllowed, match="retrospective approval"):
        services.change_close(change=change, by=users["planner"])
    with pytest.raises(errors.PermissionDenied):  # the reviewer cannot approve it as well
        services.change_retro_approve(change=change, by=users["approver"])
    with pytest.raises(errors.PermissionDenied, match="operations"):
        services.change_retro_approve(change=change, by=users["security"])
    services.change_retro_approve(change=change, by=users["ops"], comment="good fix")
    services.change_close(change=change, by=users["planner"])
    assert status(change) == "closed"


def test_open_reviews__reminded_once_a_day(users, envs):
    users["ops"].email = "ops@example.com"
    users["ops"].save()
    change = services.change_create(by=users["planner"], change_class="emergency", data={
        "title": "Hotfix", "environments": [envs["production"]]})
    services.change_submit(change=change, by=users["planner"])
    services.change_approve(change=change, by=users["ops"])
    assert services.remind_open_reviews() == 0  # not implemented yet: nothing to review
    services.change_implement(change=change, by=users["planner"])
    assert services.remind_open_reviews() == 1
    assert "1 emergency change(s) await their review" in mail.outbox[-1].subject
    assert services.remind_open_reviews() == 0
    with time_machine.travel(timezone.now() + dt.timedelta(days=1, minutes=1)):
        assert services.remind_open_reviews() == 1


# --- edits withdraw approvals --------------------------------------------------------------------------------------
@pytest.mark.parametrize("edit", [
    {"rollback_plan": "a different rollback"},
    {"duration": 120},
    {"impact": "high"},
    "environments",
    "links",
])
def test_edit_of_approved_content__withdraws_votes_new_round_back_to_review(new_change, users, envs, edit):
    change = approved(new_change, users, "production", by=users["planner"])
    assert change.status == "approved" and change.approvals.count() == 3
    if edit == "environments":
        services.change_update(change=change, by=users["planner"],
                               data={"environments": [envs["production"], envs["dr"]]})
    elif edit == "links":
        from tests.factories import make_release

        release = make_release(by=users["planner"], envs=[envs["production"]])
        services.change_link(change=change, obj=release, by=users["planner"])
    else:
        services.change_update(change=change, by=users["planner"], data=edit)
    change.refresh_from_db()
    assert change.status == "in_review" and change.approval_round == 2
    withdrawn = AuditEvent.objects.get(action="changerequest.approvals_withdrawn", object_id=str(change.pk))
    assert withdrawn.before["round"] == 1 and len(withdrawn.before["votes"]) == 3
    assert withdrawn.after["changed"]
    assert not change.approvals.filter(round=2).exists()
    approve_change(change)
    assert status(change) == "approved"


def test_edit_of_title_only__approvals_stand(new_change, users):
    change = approved(new_change, users, "staging")
    services.change_update(change=change, by=users["dev"], data={"title": "A clearer title"})
    change.refresh_from_db()
    assert change.status == "approved" and change.approval_round == 1


def test_edit__after_implementation_or_by_someone_else__refused(new_change, users):
    change = approved(new_change, users, "staging")
    with pytest.raises(errors.PermissionDenied):
        services.change_update(change=change, by=users["dev2"], data={"title": "mine now"})
    services.change_implement(change=change, by=users["ops"])
    with pytest.raises(errors.TransitionNotAllowed):
        services.change_update(change=change, by=users["dev"], data={"testing_plan": "less"})


def test_raise_risk__raised_by_an_approver__more_approvals_needed_never_lowered(new_change, users):
    change = new_change("staging")
    services.change_submit(change=change, by=users["dev"])
    with pytest.raises(errors.ValidationFailed, match="never lowered"):
        services.change_raise_risk(change=change, by=users["approver"], level="low", reason="fine")
    with pytest.raises(errors.PermissionDenied):
        services.change_raise_risk(change=change, by=users["dev"], level="high", reason="mine")
    services.change_raise_risk(change=change, by=users["approver"], level="high", reason="touches billing")
    change.refresh_from_db()
    assert change.risk_override == "high" and "raised to high by an approver" in change.risk_reasons
    event = AuditEvent.objects.get(action="change.risk_raised")
    assert (event.before, event.after, event.reason) == ({"risk": "low"}, {"risk": "high"}, "touches billing")


def test_create__environment_the_requester_cannot_see__403(users, envs):
    with pytest.raises(errors.PermissionDenied, match="production"):
        services.change_create(by=users["dev"], data={"title": "x", "environments": [envs["production"]]})
    with pytest.raises(errors.ValidationFailed, match="at least one environment"):
        services.change_create(by=users["dev"], data={"title": "x", "environments": []})


def test_cancel__needs_reason_and_the_requester_or_a_release_manager(new_change, users):
    change = new_change("staging")
    with pytest.raises(errors.ValidationFailed):
        services.change_cancel(change=change, by=users["dev"], reason="")
    with pytest.raises(errors.PermissionDenied):
        services.change_cancel(change=change, by=users["dev2"], reason="not mine")
    services.change_cancel(change=change, by=users["approver"], reason="superseded")
    assert status(change) == "cancelled"


# --- named approvers, maintenance on the status page ---------------------------------------------------------------
def test_named_approver__must_approve_besides_the_roles__and_may_without_the_role(new_change, users):
    change = new_change("staging", approvers=[users["qa"]])
    services.change_submit(change=change, by=users["dev"])
    services.change_approve(change=change, by=users["approver"])
    change.refresh_from_db()
    assert change.status == "in_review"  # the technical review is in; qa, named, is not
    from changes import selectors

    assert [c.pk for c in selectors.awaiting_decision(users["qa"])] == [change.pk]
    assert selectors.awaiting_decision(users["approver2"]) == []
    services.change_approve(change=change, by=users["qa"])
    assert status(change) == "approved"


def test_named_approver__requester_or_implementer__refused(new_change, users):
    with pytest.raises(errors.ValidationFailed, match="separation of duties"):
        new_change("staging", approvers=[users["dev"]])
    with pytest.raises(errors.ValidationFailed):
        new_change("staging", approvers=[users["qa"]], implementer=users["qa"])


def test_maintenance_change__scheduled__announced_on_the_status_page_and_moved_with_it(new_change, users, envs):
    from monitoring.models import Component, Maintenance

    api = Component.objects.create(name="Sending API")
    api.environments.set([envs["staging"]])
    start = timezone.now() + dt.timedelta(days=2)
    change = approved(new_change, users, "staging", maintenance=True, planned_start=start, duration=45,
                      description="The database moves to a new host; sending pauses for a few minutes.")
    services.change_schedule(change=change, by=users["ops"])
    announced = Maintenance.objects.get()
    assert (announced.name, announced.scheduled_for, announced.scheduled_until) == (
        change.title, start, start + dt.timedelta(minutes=45))
    assert list(announced.components.all()) == [api] and "new host" in announced.body
    assert change.links.filter(content_type__model="maintenance").exists()
    later = start + dt.timedelta(days=1)
    services.change_update(change=change, by=users["dev"], data={"planned_start": later})  # back to review
    approve_change(change)
    services.change_schedule(change=change, by=users["ops"])
    assert Maintenance.objects.count() == 1 and Maintenance.objects.get().scheduled_for == later


def test_maintenance_change__cancelled__its_announcement_is_withdrawn(new_change, users, envs):
    from monitoring.models import Component, Maintenance

    Component.objects.create(name="Sending API").environments.set([envs["staging"]])
    change = approved(new_change, users, "staging", maintenance=True,
                      planned_start=timezone.now() + dt.timedelta(days=2), duration=45)
    services.change_schedule(change=change, by=users["ops"])
    assert Maintenance.objects.get().status == "scheduled"
    services.change_cancel(change=change, by=users["dev"], reason="the vendor moved the date")  # the requester
    announced = Maintenance.objects.get()
    assert announced.status == "cancelled"
    assert "will not take place" in announced.updates.order_by("-id").first().body
