"""The admin's own 403 page (its header, a way back, the reason), and no links to pages a user may not open."""
import pytest

from monitoring.statuspage import incidents
from releases.models import Deployment
from tests.factories import make_release

pytestmark = pytest.mark.django_db


def test_admin_403__staff_without_the_role__admin_styled_page_with_a_way_back(client, users):
    incident = incidents.incident_create(name="Mail delays", body="Delayed.", by=users["ops"])
    client.force_login(users["dev"])
    response = client.get(f"/admin/monitoring/incident/{incident.pk}/act/resolve/",
                          HTTP_REFERER="http://testserver/admin/releases/release/")
    assert response.status_code == 403
    html = response.content.decode()
    assert "You may not open this page" in html and "PenguinMails Release Portal" in html
    assert 'href="http://testserver/admin/releases/release/"' in html and 'href="/admin/"' in html
    assert "Log out" in html or "logout" in html


def test_admin_403__foreign_referer__back_goes_to_the_admin_home(client, users):
    incident = incidents.incident_create(name="Mail delays", body="Delayed.", by=users["ops"])
    client.force_login(users["dev"])
    response = client.get(f"/admin/monitoring/incident/{incident.pk}/act/resolve/",
                          HTTP_REFERER="https://evil.example/")
    assert response.status_code == 403 and "evil.example" not in response.content.decode()


def test_release_page__deployment_in_an_environment_the_user_cannot_see__not_linked(client, users, envs):
    release = make_release(by=users["planner"], envs=[envs["development"], envs["production"]])
    seen = Deployment.objects.create(release=release, environment=envs["development"], strategy="rolling-update",
                                     backend="simulation")
    hidden = Deployment.objects.create(release=release, environment=envs["production"], strategy="rolling-update",
                                       backend="simulation")
    client.force_login(users["dev"])
    html = client.get(f"/admin/releases/release/{release.pk}/change/").content.decode()
    assert f"/admin/releases/deployment/{seen.pk}/change/" in html
    assert f"/admin/releases/deployment/{hidden.pk}/change/" not in html
    assert client.get(f"/admin/releases/deployment/{hidden.pk}/change/").status_code in (302, 403, 404)
