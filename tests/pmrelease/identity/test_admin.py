"""The identity admin: role mappings through the service (administrators with a recent second factor), the user
form refusing a hand edit of a mapped role's membership, naming its source."""
import time

import pytest
from django.contrib.auth.models import Group

from pmrelease.identity import stepup
from pmrelease.models import AuditEvent, RoleMapping

pytestmark = pytest.mark.django_db


def _step_up(client):
    session = client.session
    session[stepup.SESSION_KEY] = time.time()
    session.save()


def test_role_mapping__added_in_admin__needs_step_up_then_saved_and_audited(client, users):
    client.force_login(users["admin"])
    data = {"source": "oidc", "group_name": "portal-approvers", "role": "approvers"}
    refused = client.post("/admin/pmrelease/rolemapping/add/", data)
    assert refused.status_code == 302 and refused["Location"].startswith("/account/step-up/?next=")
    assert not RoleMapping.objects.exists()
    _step_up(client)
    assert client.post("/admin/pmrelease/rolemapping/add/", data).status_code == 302
    mapping = RoleMapping.objects.get()
    assert AuditEvent.objects.filter(action="identity.mapping.save", object_id=str(mapping.pk)).exists()
    bad = client.post("/admin/pmrelease/rolemapping/add/", {**data, "role": "wizards"})
    assert bad.status_code == 200 and b"wizards" in bad.content


def test_role_mapping__non_administrator__no_access(client, users):
    client.force_login(users["ops"])
    assert client.get("/admin/pmrelease/rolemapping/").status_code == 403


def test_user_form__mapped_role_edited_by_hand__refused_naming_source(client, users):
    RoleMapping.objects.create(source="oidc", group_name="portal-ops", role="operations")
    client.force_login(users["admin"])
    dev = users["dev"]
    page = client.get(f"/admin/auth/user/{dev.pk}/change/")
    form = page.context["adminform"].form
    data = {name: form.initial.get(name) for name in ("username", "first_name", "last_name", "email",
                                                      "date_joined_0", "date_joined_1")}
    data.update({"username": dev.username, "is_active": "on", "is_staff": "on",
                 "date_joined_0": dev.date_joined.strftime("%Y-%m-%d"),
                 "date_joined_1": dev.date_joined.strftime("%H:%M:%S"),
                 "groups": [Group.objects.get(name="developers").pk, Group.objects.get(name="operations").pk]})
    response = client.post(f"/admin/auth/user/{dev.pk}/change/", data)
    assert response.status_code == 200
    assert "operations follows oidc groups" in response.content.decode()
    assert not dev.groups.filter(name="operations").exists()
