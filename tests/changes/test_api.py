"""The change API as a CI author and an approver would use it: create, edit, the transitions (409/403/400),
awaiting my decision, windows, freezes, templates, and the OpenAPI schema."""
import datetime as dt

import pytest
from django.utils import timezone

from changes.models import ChangeRequest, ChangeWindow
from tests.changes.conftest import PLANS
from tests.factories import make_release

pytestmark = pytest.mark.django_db


def create(client, **data):
    body = {"title": "Deploy 1.2.0", "environments": ["production"], **PLANS, **data}
    return client.post("/api/v1/changes/", body, format="json")


def test_create__links_a_release__risk_and_requirement_shown(api, users, envs):
    release = make_release(by=users["planner"], envs=[envs["production"]])
    response = create(api(users["planner"]), releases=[release.version], impact="medium")
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["status"] == "draft" and body["requested_by"] == "planner" and body["change_class"] == "normal"
    assert body["links"] == [{"type": "release", "id": str(release.pk), "label": str(release)}]
    assert body["risk"] == "medium" and body["risk_reasons"][0].startswith("medium impact")
    roles = {r["role"]: (r["needed"], r["approved"]) for r in body["requirement"]["roles"]}
    assert roles == {"approvers": (1, 0), "operations": (1, 0), "product": (1, 0)}
    assert body["available_transitions"] == ["submit", "cancel"]


@pytest.mark.parametrize("data, field", [
    ({"releases": ["9.9.9"]}, "releases"),
    ({"deployments": [12345]}, "deployments"),
    ({"environments": []}, "environments"),
    ({"environments": ["mars"]}, "environments"),
    ({"impact": "apocalyptic"}, "impact"),
    ({"duration": 0}, "duration"),
    ({"change_class": "standard"}, "change_class"),
    ({"planned_start": "next tuesday"}, "planned_start"),
])
def test_create__bad_input__400_naming_the_field(api, users, envs, data, field):
    response = create(api(users["planner"]), **data)
    assert response.status_code == 400, response.content
    assert field in response.json(), response.json()
    assert not ChangeRequest.objects.exists()


def test_transitions__wrong_state_409__no_permission_403__missing_reason_400(api, users, envs):
    change_id = create(api(users["planner"])).json()["id"]
    url = f"/api/v1/changes/{change_id}"
    assert api(users["planner"]).post(f"{url}/validate/").status_code == 409
    assert api(users["planner"]).post(f"{url}/submit/").status_code == 200
    refused = api(users["planner"]).post(f"{url}/approve/", {"text": "mine"}, format="json")
    assert refused.status_code == 403 and "separation of duties" in refused.json()["detail"]
    assert api(users["approver"]).post(f"{url}/reject/", {"text": ""}, format="json").status_code == 400
    assert api(users["dev"]).post(f"{url}/approve/").status_code == 404  # dev cannot see production changes
    for name in ("approver", "ops", "product"):
        response = api(users[name]).post(f"{url}/approve/", {"text": "ok"}, format="json")
        assert response.status_code == 200, response.content
    assert response.json()["status"] == "approved"
    schedule = api(users["ops"]).post(f"{url}/schedule/", {"planned_start": (timezone.now() + dt.timedelta(
        hours=1)).isoformat()}, format="json")
    assert schedule.status_code == 200 and schedule.json()["status"] == "scheduled"
    assert api(users["approver"]).post(f"{url}/implement/").status_code == 403  # approvers cannot deploy there
    assert api(users["ops"]).post(f"{url}/implement/").json()["status"] == "implementing"
    assert api(users["ops"]).post(f"{url}/validate/").json()["status"] == "validating"
    closed = api(users["ops"]).post(f"{url}/close/", {"close_code": "nope"}, format="json")
    assert closed.status_code == 400 and "close_code" in closed.json()
    closed = api(users["ops"]).post(f"{url}/close/", {"close_code": "successful", "notes": "fine"}, format="json")
    assert closed.json()["status"] == "closed" and closed.json()["close_code"] == "successful"
    assert api(users["ops"]).delete(f"{url}/").status_code == 409  # never deleted


def test_schedule__outside_the_window__409_with_the_window_named(api, users, envs):
    ChangeWindow.objects.create(environment=envs["production"], name="Tue-Thu", days=[1, 2, 3],
                                start_time=dt.time(10), end_time=dt.time(16), timezone="Europe/Berlin")
    change_id = create(api(users["planner"])).json()["id"]
    url = f"/api/v1/changes/{change_id}"
    api(users["planner"]).post(f"{url}/submit/")
    for name in ("approver", "ops", "product"):
        api(users[name]).post(f"{url}/approve/")
    saturday = dt.datetime(2026, 12, 5, 12, tzinfo=dt.UTC)
    response = api(users["ops"]).post(f"{url}/schedule/", {"planned_start": saturday.isoformat()}, format="json")
    assert response.status_code == 409
    assert "outside every deployment window: Tue-Thu (Tue, Wed, Thu 10:00–16:00 Europe/Berlin)" in \
        response.json()["reasons"][0]
    tuesday = dt.datetime(2026, 12, 8, 10, tzinfo=dt.UTC)  # 11:00 Berlin
    assert api(users["ops"]).post(f"{url}/schedule/", {"planned_start": tuesday.isoformat()},
                                  format="json").status_code == 200


def test_edit__approved_change__votes_withdrawn_back_in_review(api, users, envs):
    client = api(users["planner"])
    change_id = create(client).json()["id"]
    client.post(f"/api/v1/changes/{change_id}/submit/")
    for name in ("approver", "ops", "product"):
        api(users[name]).post(f"/api/v1/changes/{change_id}/approve/")
    response = client.patch(f"/api/v1/changes/{change_id}/", {"rollback_plan": "new plan"}, format="json")
    assert response.status_code == 200
    body = client.get(f"/api/v1/changes/{change_id}/").json()
    assert body["status"] == "in_review" and body["approval_round"] == 2
    assert body["requirement"]["satisfied"] is False
    assert client.patch(f"/api/v1/changes/{change_id}/", {"change_class": "emergency"},
                        format="json").status_code == 400


def test_awaiting_my_decision__per_person(api, users, envs):
    change_id = create(api(users["planner"])).json()["id"]
    api(users["planner"]).post(f"/api/v1/changes/{change_id}/submit/")
    mine = lambda name: [c["id"] for c in api(users[name]).get("/api/v1/changes/awaiting-my-decision/").json()]  # noqa: E731
    assert mine("approver") == [change_id] and mine("product") == [change_id]
    assert mine("planner") == []  # the requester
    assert mine("qa") == []  # not a role the policy names
    api(users["approver"]).post(f"/api/v1/changes/{change_id}/approve/")
    assert mine("approver") == [] and mine("approver2") == []  # the technical review is done
    assert mine("ops") == [change_id]


def test_emergency_review__api(api, users, envs):
    client = api(users["planner"])
    change_id = create(client, change_class="emergency", implementation_plan="", testing_plan="").json()["id"]
    url = f"/api/v1/changes/{change_id}"
    client.post(f"{url}/submit/")
    api(users["ops"]).post(f"{url}/approve/")
    client.post(f"{url}/implement/")
    assert api(users["planner"]).get("/api/v1/changes/open-reviews/").json()[0]["id"] == change_id
    assert api(users["planner"]).post(f"{url}/review/", {"root_cause": "x", "prevention": "y"},
                                      format="json").status_code == 403  # its implementer
    assert api(users["approver"]).post(f"{url}/review/", {"root_cause": "x"}, format="json").status_code == 400
    assert api(users["approver"]).post(f"{url}/review/", {"root_cause": "x", "prevention": "y"},
                                       format="json").status_code == 200
    assert api(users["ops"]).post(f"{url}/retro-approve/").status_code == 200
    client.post(f"{url}/validate/")
    assert client.post(f"{url}/close/").json()["status"] == "closed"


def test_windows_freezes_templates__admin_access_to_edit(api, users, envs):
    window = {"environment": "production", "name": "Mid-week", "days": [1, 2, 3], "start_time": "10:00",
              "end_time": "16:00", "timezone": "Europe/Berlin"}
    assert api(users["dev"]).post("/api/v1/change-windows/", window, format="json").status_code == 403
    response = api(users["ops"]).post("/api/v1/change-windows/", window, format="json")
    assert response.status_code == 201 and response.json()["start_time"] == "10:00"
    bad = api(users["ops"]).post("/api/v1/change-windows/", {**window, "timezone": "Mars/Olympus"}, format="json")
    assert bad.status_code == 400 and "timezone" in bad.json()
    bad = api(users["ops"]).post("/api/v1/change-windows/", {**window, "days": [7]}, format="json")
    assert bad.status_code == 400 and "days" in bad.json()
    freeze = {"reason": "Year end", "environments": ["production"], "rule": "FREQ=YEARLY;BYMONTH=12;BYMONTHDAY=23",
              "rule_start": "2026-12-23T00:00:00+01:00", "duration_minutes": 14400, "timezone": "Europe/Berlin"}
    created = api(users["ops"]).post("/api/v1/change-freezes/", freeze, format="json")
    assert created.status_code == 201, created.content
    assert created.json()["next_periods"][0][0].startswith("2026-12-22T23:00:00")
    bad = api(users["ops"]).post("/api/v1/change-freezes/", {**freeze, "rule": "FREQ=OFTEN"}, format="json")
    assert bad.status_code == 400 and "rule" in bad.json()
    bad = api(users["ops"]).post("/api/v1/change-freezes/", {"reason": "x", "environments": ["production"],
                                                             "starts_at": "2026-12-02T00:00:00Z",
                                                             "ends_at": "2026-12-01T00:00:00Z"}, format="json")
    assert bad.status_code == 400 and "ends_at" in bad.json()
    everywhere = api(users["ops"]).post("/api/v1/change-freezes/", {"reason": "all", "starts_at": "2026-12-01T00:00Z",
                                                                    "ends_at": "2026-12-02T00:00Z"}, format="json")
    assert everywhere.status_code == 403  # a freeze of every environment is set by an administrator
    template = {"name": "Rotate certs", "type": "infrastructure", "implementation_plan": "a", "rollback_plan": "b",
                "testing_plan": "c", "max_risk": "medium"}
    assert api(users["ops"]).post("/api/v1/change-templates/", template, format="json").status_code == 403
    made = api(users["admin"]).post("/api/v1/change-templates/", template, format="json").json()
    approved = api(users["admin"]).post(f"/api/v1/change-templates/{made['id']}/approve/")
    assert approved.status_code == 200 and approved.json()["approved_by"] == "admin"
    different = create(api(users["planner"]), template=made["id"])  # plans other than the template's
    assert different.status_code == 400 and "rollback_plan" in different.json()
    standard = create(api(users["planner"]), template=made["id"], implementation_plan="", rollback_plan="",
                      testing_plan="")
    assert standard.status_code == 201, standard.content
    assert standard.json()["change_class"] == "standard"
    submitted = api(users["planner"]).post(f"/api/v1/changes/{standard.json()['id']}/submit/")
    assert submitted.json()["status"] == "approved"


def test_schema__change_operations_documented(api, users):
    schema = api(users["admin"]).get("/api/schema/", {"format": "json"}).json()
    for route in ("/api/v1/changes/", "/api/v1/changes/{id}/approve/", "/api/v1/changes/{id}/retro-approve/",
                  "/api/v1/changes/awaiting-my-decision/", "/api/v1/change-windows/", "/api/v1/change-freezes/",
                  "/api/v1/change-templates/", "/api/v1/compliance/report/"):
        assert route in schema["paths"], route
