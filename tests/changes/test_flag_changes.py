"""Flag changes where the environment needs a second person: change requests of the flag_change class, decided
on the change request's page by whom the policy names (one operations approver other than the author)."""
import pytest

from changes import services
from changes.models import ChangeRequest
from flags import services as flags
from flags.models import FlagChangeRequest, FlagEnvironment
from pmrelease import errors
from pmrelease.models import AuditEvent
from tests.flags.conftest import make_flag  # noqa: F401 (fixture)

pytestmark = pytest.mark.django_db


@pytest.fixture
def proposed(users, envs, make_flag, make_user):  # noqa: F811
    users["ops2"] = make_user("ops2", "operations")
    make_flag("pay")
    state = FlagEnvironment.objects.get(flag__key="pay", environment__name="production")
    _, flag_change = flags.flag_state_change(state=state, enabled=True, by=users["ops"], reason="launch day")
    return flag_change, ChangeRequest.objects.get(change_class="flag_change"), state


def enabled(state):
    return FlagEnvironment.objects.get(pk=state.pk).enabled


def test_proposal__becomes_a_submitted_flag_change_request(users, envs, proposed):
    flag_change, change, state = proposed
    assert change.status == "submitted" and change.requested_by == users["ops"]
    assert change.title == "Flag pay in production: enable" and change.description == "launch day"
    assert [e.name for e in change.environments.all()] == ["production"]
    assert change.links.get().object_id == str(flag_change.pk)
    from changes.policy import POLICY

    assert POLICY.requirement(change).per_role == {"operations": 1}
    assert not enabled(state)


def test_approve__author_refused__another_operations_approver_applies_and_closes(users, envs, proposed):
    flag_change, change, state = proposed
    with pytest.raises(errors.PermissionDenied, match="separation of duties"):
        services.change_approve(change=change, by=users["ops"])
    with pytest.raises(errors.PermissionDenied, match="none of the roles"):
        services.change_approve(change=change, by=users["approver"])
    services.change_approve(change=change, by=users["ops2"], comment="checked the segment")
    change.refresh_from_db()
    assert (change.status, change.close_code, change.implementer) == ("closed", "successful", users["ops2"])
    assert FlagChangeRequest.objects.get(pk=flag_change.pk).status == "applied" and enabled(state)
    assert AuditEvent.objects.filter(action="flag.change.approve", actor_username="ops2").exists()


def test_reject__flag_unchanged_and_the_change_ends(users, envs, proposed):
    flag_change, change, state = proposed
    services.change_reject(change=change, by=users["ops2"], reason="not before the campaign")
    change.refresh_from_db()
    assert change.status == "cancelled"
    assert FlagChangeRequest.objects.get(pk=flag_change.pk).status == "rejected" and not enabled(state)


def test_withdraw__the_author_cancels(users, envs, proposed):
    flag_change, change, state = proposed
    services.change_cancel(change=change, by=users["ops"], reason="wrong flag")
    assert FlagChangeRequest.objects.get(pk=flag_change.pk).status == "withdrawn"


def test_flag_changed_meanwhile__approval_refused_and_not_counted(users, envs, proposed):
    flag_change, change, state = proposed
    flags.flag_state_update(state=state, strategies=[{"name": "default", "parameters": {}, "constraints": []}])
    with pytest.raises(errors.TransitionNotAllowed, match="the flag changed since"):
        services.change_approve(change=change, by=users["ops2"])
    change.refresh_from_db()
    assert change.status == "submitted" and not change.approvals.exists()


def test_edit__the_proposal_is_fixed(users, envs, proposed):
    _, change, _ = proposed
    with pytest.raises(errors.ValidationFailed, match="proposed flag change"):
        services.change_update(change=change, by=users["ops"], data={"rollback_plan": "other"})
    services.change_update(change=change, by=users["ops"], data={"title": "Enable pay for launch day"})


def test_flags_api_decision__taken_on_the_change_request(api, users, envs, proposed):
    flag_change, change, state = proposed
    assert api(users["ops"]).post(f"/api/v1/flags/changes/{flag_change.pk}/approve/").status_code == 403
    response = api(users["ops2"]).post(f"/api/v1/flags/changes/{flag_change.pk}/approve/")
    assert response.status_code == 200 and response.json()["status"] == "applied"
    assert ChangeRequest.objects.get(pk=change.pk).status == "closed"


def test_change_page__approver_named_by_the_policy_approves_in_the_admin(client, users, envs, proposed, step_up):
    flag_change, change, state = proposed
    client.force_login(users["ops2"])
    step_up(client)  # production actions need a recent second factor
    page = client.get(f"/admin/changes/changerequest/{change.pk}/change/").content.decode()
    assert f"/admin/changes/changerequest/{change.pk}/act/approve/" in page and "flagchangerequest" in page
    response = client.post(f"/admin/changes/changerequest/{change.pk}/act/approve/", {"text": "ok"}, follow=True)
    assert "is now closed" in response.content.decode()
    assert enabled(state)
    client.force_login(users["ops"])
    step_up(client)  # production actions need a recent second factor
    assert "/act/approve/" not in client.get(f"/admin/changes/changerequest/{change.pk}/change/").content.decode()
