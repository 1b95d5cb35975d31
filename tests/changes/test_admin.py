"""The change-management admin: the change page's decision buttons, the approver queue, the calendar, the add
and edit forms through the services, windows and freezes."""
import datetime as dt

import pytest
from django.utils import timezone

from changes import services
from changes.models import ChangeFreeze, ChangeRequest, ChangeWindow
from pmrelease.models import AuditEvent
from tests.changes.conftest import PLANS

pytestmark = pytest.mark.django_db


@pytest.fixture
def submitted(users, envs):
    change = services.change_create(by=users["planner"], data={
        "title": "Deploy 3.0.0", "environments": [envs["production"]],
        "planned_start": timezone.now() + dt.timedelta(days=1), **PLANS})
    services.change_submit(change=change, by=users["planner"])
    return change


def page(client, user, url):
    client.force_login(user)
    response = client.get(url)
    assert response.status_code == 200, (url, response.status_code)
    return response.content.decode()


def test_change_page__approver_sees_decision_buttons_and_what_the_policy_asks(client, users, submitted):
    html = page(client, users["approver"], f"/admin/changes/changerequest/{submitted.pk}/change/")
    assert f'/admin/changes/changerequest/{submitted.pk}/act/approve/' in html
    assert f'/admin/changes/changerequest/{submitted.pk}/act/reject/' in html
    assert "What the approval policy asks" in html and "operations" in html and "product" in html
    assert "Raise risk" in html


def test_change_page__requester_sees_no_approve_button_and_why(client, users, submitted):
    html = page(client, users["planner"], f"/admin/changes/changerequest/{submitted.pk}/change/")
    assert "/act/approve/" not in html
    assert "separation of duties" in html


def test_approve_from_the_page__three_roles__approved(client, users, submitted, step_up):
    for name in ("approver", "ops", "product"):
        client.force_login(users[name])
        step_up(client)  # production actions need a recent second factor
        response = client.post(f"/admin/changes/changerequest/{submitted.pk}/act/approve/", {"text": "ok"},
                               follow=True)
        assert response.status_code == 200
    assert "is now approved" in response.content.decode()
    assert ChangeRequest.objects.get(pk=submitted.pk).status == "approved"


def test_refused_decision__message_not_500(client, users, submitted, step_up):
    client.force_login(users["planner"])
    step_up(client)  # production actions need a recent second factor
    response = client.post(f"/admin/changes/changerequest/{submitted.pk}/act/approve/", follow=True)
    assert "separation of duties" in response.content.decode()
    assert AuditEvent.objects.filter(action="change.approval_refused").count() == 1
    assert client.get(f"/admin/changes/changerequest/{submitted.pk}/act/approve/").status_code == 405
    assert client.post(f"/admin/changes/changerequest/{submitted.pk}/act/delete/").status_code == 403


def test_hidden_change__404_for_who_cannot_see_it(client, users, submitted):
    client.force_login(users["dev"])
    assert client.post(f"/admin/changes/changerequest/{submitted.pk}/act/approve/").status_code == 404


def test_queue__awaiting_my_decision(client, users, submitted):
    assert "Deploy 3.0.0" in page(client, users["product"], "/admin/changes/changerequest/awaiting-my-decision/")
    assert "Nothing awaits your decision" in page(client, users["planner"],
                                                  "/admin/changes/changerequest/awaiting-my-decision/")
    listed = page(client, users["ops"], "/admin/changes/changerequest/?queue=mine")
    assert "Deploy 3.0.0" in listed


def test_calendar__month_and_week__windows_freezes_changes_and_conflicts(client, users, envs, submitted):
    ChangeWindow.objects.create(environment=envs["production"], name="Mid-week", days=[1, 2, 3],
                                start_time=dt.time(10), end_time=dt.time(16), timezone="Europe/Berlin")
    start = timezone.now() + dt.timedelta(days=1)
    freeze = ChangeFreeze.objects.create(reason="Campaign peak", starts_at=start, ends_at=start + dt.timedelta(hours=3))
    freeze.environments.set([envs["production"]])
    other = services.change_create(by=users["planner"], data={
        "title": "Overlapping change", "environments": [envs["production"]], "planned_start": submitted.planned_start,
        **PLANS})
    services.change_submit(change=other, by=users["planner"])
    day = submitted.planned_start.date().isoformat()
    month = page(client, users["ops"], f"/admin/changes/changerequest/calendar/?date={day}")
    assert "production: Mid-week" in month and "Freeze: Campaign peak" in month
    assert "Deploy 3.0.0" in month and "conflict" in month
    week = page(client, users["ops"], f"/admin/changes/changerequest/calendar/?view=week&date={day}")
    assert "Week of" in week and "Overlapping change" in week
    assert page(client, users["ops"], "/admin/changes/changerequest/calendar/?date=garbage")  # falls back to today
    html = page(client, users["approver"], f"/admin/changes/changerequest/{submitted.pk}/change/")
    assert "Conflicts with" in html and "Overlapping change" in html


def test_add_form__creates_through_the_service_with_the_release_linked(client, users, envs):
    from tests.factories import make_release

    release = make_release(by=users["planner"], envs=[envs["production"]])
    client.force_login(users["planner"])
    response = client.post("/admin/changes/changerequest/add/", {
        "title": "Deploy from the admin", "type": "enhancement", "priority": "medium", "impact": "low",
        "likelihood": "low", "environments": [envs["production"].pk], "duration": 60, "change_class": "normal",
        "releases": [release.pk], **PLANS})
    assert response.status_code == 302, response.content.decode()[:3000]
    change = ChangeRequest.objects.get(title="Deploy from the admin")
    assert change.requested_by == users["planner"] and change.links.get().object_id == str(release.pk)
    assert AuditEvent.objects.filter(action="change.create", object_id=str(change.pk)).exists()


def test_edit_form__approved_change__votes_withdrawn(client, users, envs, submitted):
    from tests.factories import approve_change

    approve_change(submitted)
    client.force_login(users["planner"])
    data = {"title": submitted.title, "description": "", "type": "enhancement", "priority": "medium",
            "impact": "low", "likelihood": "low", "environments": [envs["production"].pk], "duration": 90,
            "planned_start_0": submitted.planned_start.strftime("%Y-%m-%d"),
            "planned_start_1": submitted.planned_start.strftime("%H:%M:%S"), **PLANS}
    response = client.post(f"/admin/changes/changerequest/{submitted.pk}/change/", data)
    assert response.status_code == 302, response.content.decode()[:3000]
    submitted.refresh_from_db()
    assert submitted.status == "in_review" and submitted.approval_round == 2


def test_window_and_freeze_admin__through_services_with_admin_access(client, users, envs, step_up):
    client.force_login(users["ops"])
    step_up(client)  # production actions need a recent second factor
    response = client.post("/admin/changes/changewindow/add/", {
        "environment": envs["production"].pk, "name": "Mid-week", "days": "[1, 2, 3]", "start_time": "10:00",
        "end_time": "16:00", "timezone": "Europe/Berlin", "active": "on"})
    assert response.status_code == 302
    assert AuditEvent.objects.filter(action="changewindow.create").exists()
    response = client.post("/admin/changes/changewindow/add/", {
        "environment": envs["production"].pk, "name": "Bad", "days": "[9]", "start_time": "10:00",
        "end_time": "16:00", "timezone": "Mars/Base", "active": "on"}, follow=True)
    html = response.content.decode()
    assert ChangeWindow.objects.count() == 1 and "Invalid window — days: weekdays as numbers" in html
    client.force_login(users["dev"])
    step_up(client)  # production actions need a recent second factor
    assert client.get("/admin/changes/changewindow/add/").status_code == 403
