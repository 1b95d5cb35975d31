"""Hostile input on the ground floor's endpoints: deep JSON and out-of-range UTC offsets are 400s, never 500s."""
import pytest

from pmrelease.parsers import depth_exceeds

DEEP = "[" * 990 + "]" * 990  # about 2 KB


def test_depth_exceeds__brackets_inside_strings__not_counted():
    assert not depth_exceeds(b'{"a": "[[[[[[[[[[\\"[[[["}', 3)
    assert depth_exceeds(b'{"a": [[[1]]]}', 3)
    assert not depth_exceeds(b'{"a": [[1]]}', 3)


@pytest.mark.django_db
def test_token_endpoint__json_nested_990_deep__400_not_500(client):
    response = client.post("/api/v1/auth/token/", DEEP, content_type="application/json")
    assert response.status_code == 400, response.content
    assert "deeper than 64" in response.json()["detail"]


@pytest.mark.django_db
def test_api_endpoint__json_nested_990_deep__400(api, users):
    response = api(users["admin"]).post("/api/v1/releases/", DEEP, content_type="application/json")
    assert response.status_code == 400, response.content


@pytest.mark.django_db
def test_api_endpoint__json_64_deep__parsed(api, users):
    body = '{"title": ' + "[" * 63 + "]" * 63 + "}"
    response = api(users["admin"]).post("/api/v1/releases/", body, content_type="application/json")
    assert response.status_code == 400 and "deeper" not in response.content.decode()


@pytest.mark.django_db
@pytest.mark.parametrize("offset", ["-17:00", "+16:00", "+23:59"])
def test_audit_events__since_offset_beyond_1559__400(api, users, offset):
    response = api(users["admin"]).get("/api/v1/audit-events/", {"since": f"2026-01-01T00:00:00{offset}"})
    assert response.status_code == 400, response.content
    assert "since" in response.json()


@pytest.mark.django_db
def test_audit_events__until_offset_beyond_1559__400(api, users):
    response = api(users["admin"]).get("/api/v1/audit-events/", {"until": "2026-01-01T00:00:00-16:30"})
    assert response.status_code == 400 and "until" in response.json()


@pytest.mark.django_db
def test_audit_events__since_offset_1559__filters(api, users):
    response = api(users["admin"]).get("/api/v1/audit-events/", {"since": "2000-01-01T00:00:00+15:59"})
    assert response.status_code == 200


@pytest.mark.django_db
def test_api_endpoint__nul_character_in_a_json_string__400(api, users):
    response = api(users["admin"]).post("/api/v1/releases/", '{"title": "a\\u0000b"}', content_type="application/json")
    assert response.status_code == 400 and "NUL" in response.json()["detail"]


@pytest.mark.django_db
def test_api_endpoint__nul_character_in_a_utf16_json_body__400(api, users, envs):
    """Found by schemathesis on PostgreSQL: a JSON body in another charset than UTF-8 (``charset=utf-16``) holding
    a NUL in a release's environments was a 500."""
    body = '{"title": "x", "type": "minor", "environments": ["sta\\u0000ging"]}'.encode("utf-16")
    response = api(users["admin"]).post("/api/v1/releases/", body, content_type="application/json; charset=utf-16")
    assert response.status_code == 400 and "NUL" in response.json()["detail"]


@pytest.mark.django_db
def test_api_endpoint__nul_character_in_a_multipart_part_of_another_charset__400(api, users, envs):
    """Found by schemathesis on PostgreSQL: a multipart field declared utf-16 holding a NUL was a 500 (the
    database refuses NUL): whatever way a NUL reaches a query, the answer is a 400."""
    boundary = "pm-boundary"
    body = (f'--{boundary}\r\nContent-Disposition: form-data; name="environments"\r\n'
            'Content-Type: text/plain; charset=utf-16\r\n\r\n').encode() + "sta\x00ging".encode("utf-16") + \
        f"\r\n--{boundary}--\r\n".encode()
    response = api(users["admin"]).generic("POST", "/api/v1/releases/", body,
                                           content_type=f"multipart/form-data; boundary={boundary}")
    assert response.status_code == 400


@pytest.mark.django_db
def test_api_endpoint__nul_character_in_a_form_field__400(api, users, envs):
    """Found by schemathesis on PostgreSQL: a form-encoded release whose environments hold a NUL was a 500."""
    response = api(users["admin"]).post("/api/v1/releases/", "title=x&type=minor&environments=sta%00ging",
                                        content_type="application/x-www-form-urlencoded")
    assert response.status_code == 400 and "NUL" in response.json()["detail"]


@pytest.mark.django_db
@pytest.mark.parametrize("path", ["/api/v1/environments/sta%00ging/", "/api/v1/releases/?environment=a%00b",
                                  "/api/v1/audit-events/?actor=%00"])
def test_api_endpoint__nul_character_in_path_or_query__400(api, users, envs, path):
    response = api(users["admin"]).get(path)
    assert response.status_code == 400 and "NUL" in response.json()["detail"]
