"""Unknown routes and methods under the machine prefixes answer JSON, never Django's HTML (nor its URL list)."""
import pytest

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("debug", [True, False])
@pytest.mark.parametrize("path", ["/api/v1/no-such-resource/", "/api/nothing", "/ofrep/v1/nothing",
                                  "/status/api/v2/no-such.json", "/api/v1/releases/1/no-such-transition/"])
def test_unknown_route__machine_prefix__json_404_without_url_list(client, admin_user, settings, debug, path):
    settings.DEBUG = debug
    client.force_login(admin_user)
    response = client.get(path)
    assert response.status_code == 404
    assert response["Content-Type"] == "application/json"
    assert response.json() == {"detail": "Not found."}
    assert b"urlpatterns" not in response.content and b"admin/" not in response.content


def test_unknown_transition__existing_release__json_404(api, users, envs):
    from tests.factories import make_release

    release = make_release(by=users["dev"], envs=[envs["development"]])
    response = api(users["admin"]).post(f"/api/v1/releases/{release.pk}/frobnicate/", {}, format="json")
    assert response.status_code == 404 and response.json() == {"detail": "Not found."}


def test_wrong_method__published_status_document__json_405_with_allow(client):
    response = client.post("/status/api/v2/summary.json")
    assert response.status_code == 405
    assert response.json() == {"detail": 'Method "POST" not allowed.'}
    assert "GET" in response["Allow"]


def test_wrong_method__drf_transition__json_405(api, users):
    response = api(users["admin"]).get("/api/v1/releases/1/approve/")
    assert response.status_code in (404, 405) and response["Content-Type"] == "application/json"


def test_unknown_route__outside_machine_prefixes__html_kept(client, settings):
    settings.DEBUG = False
    response = client.get("/no-such-page/")
    assert response.status_code == 404 and not response["Content-Type"].startswith("application/json")
