"""Lists stay flat with history (issue 18): the releases and deployments lists (API and admin) and the audit
trail cost the same number of queries for a page of 3 rows as for a page of 12, page 2 of a cursor list costs
what page 1 costs, and the indexes their orderings need exist."""
from contextlib import nullcontext

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from releases import selectors
from tests.factories import make_release
from tests.scale_support import build_audit, build_deployments, build_releases, reporters

# a page of any size; about a dozen is what a list with its prefetches needs
MAX_QUERIES = 20


def _queries(client, url, assert_max=None, limit=MAX_QUERIES, **params):
    """(number of queries, response) of a GET, after one unmeasured GET (what a process caches on its first
    request is not the list's cost); with ``assert_max`` (``django_assert_max_num_queries``), at most ``limit``."""
    client.get(url, params)
    with CaptureQueriesContext(connection) as captured, (assert_max(limit) if assert_max else nullcontext()):
        response = client.get(url, params)
    assert response.status_code == 200, response.content[:500]
    return len(captured), response


@pytest.fixture
def history(users, envs):
    """A function adding ``n`` releases with plans, each deployed once with steps and gate results by
    different users, and ``n`` audit events."""
    state = {"made": 0}
    ci = reporters(4)

    def add(n):
        releases = build_releases(n, by=users["planner"], approver=users["approver"], environments=envs.values(),
                                  start=state["made"])
        build_deployments(releases, environments=envs.values(), by=users["ops"], users=ci)
        build_audit(n, actors=[users["ops"], users["approver"], *ci])
        state["made"] += n

    return add


LISTS = [
    ("/api/v1/releases/", "admin"),
    ("/api/v1/releases/", "dev"),
    ("/api/v1/deployments/", "admin"),
    ("/api/v1/deployments/", "dev"),
    ("/api/v1/audit-events/", "admin"),
    ("/api/v1/environments/", "dev"),
]


@pytest.mark.parametrize(("url", "who"), LISTS)
def test_api_list__3_or_12_rows__same_queries(api, users, history, url, who, django_assert_max_num_queries):
    client = api(users[who])
    history(3)
    few, body = _queries(client, url)
    shown = len(body.json()["results"])
    history(9)
    many, body = _queries(client, url, django_assert_max_num_queries)
    assert len(body.json()["results"]) > shown or url.endswith("environments/")
    assert many == few


@pytest.mark.parametrize("url", ["/api/v1/deployments/", "/api/v1/audit-events/"])
def test_api_cursor_list__page_sizes_and_deep_pages__same_queries(api, users, history, url,
                                                                  django_assert_max_num_queries):
    client = api(users["admin"])
    history(12)
    small, first = _queries(client, url, page_size=3)
    large, _ = _queries(client, url, django_assert_max_num_queries, page_size=12)
    deep, _ = _queries(client, first.json()["next"])
    assert small == large == deep


@pytest.mark.parametrize(("url", "who"), [
    ("/admin/releases/release/", "admin"), ("/admin/releases/release/", "approver"),
    ("/admin/releases/release/?awaiting=me", "approver"),
    ("/admin/releases/deployment/", "admin"), ("/admin/releases/deployment/", "ops"),
    ("/admin/pmrelease/auditevent/", "admin"),
])
def test_changelist__3_or_12_rows__same_queries(client, users, history, url, who, django_assert_max_num_queries):
    client.force_login(users[who])
    history(3)
    few, _ = _queries(client, url)
    history(9)
    # the admin adds its session, permissions, filters and date hierarchy
    many, response = _queries(client, url, django_assert_max_num_queries, limit=MAX_QUERIES + 10)
    assert many == few
    if "awaiting" not in url:
        assert "12 " in response.content.decode() or "12</" in response.content.decode()


def test_awaiting_my_approval__3_or_12_releases__same_queries_and_pages(api, users, envs,
                                                                       django_assert_max_num_queries):
    client = api(users["approver"])
    for _ in range(3):
        make_release(by=users["planner"], envs=[envs["staging"]])
    few, body = _queries(client, "/api/v1/releases/awaiting-my-approval/")
    assert body.json()["count"] == 3
    for _ in range(9):
        make_release(by=users["planner"], envs=[envs["staging"]])
    many, body = _queries(client, "/api/v1/releases/awaiting-my-approval/", django_assert_max_num_queries)
    assert many == few and body.json()["count"] == 12 and len(body.json()["results"]) == 12


def test_awaiting_approval__votes_decided_in_sql__same_queries(users, envs):
    for _ in range(3):
        make_release(by=users["planner"], envs=[envs["staging"]])
    selectors.awaiting_approval(users["approver"])  # what the first call caches is not its cost
    with CaptureQueriesContext(connection) as few:
        assert len(selectors.awaiting_approval(users["approver"])) == 3
    for _ in range(9):
        make_release(by=users["planner"], envs=[envs["staging"]])
    with CaptureQueriesContext(connection) as many:
        assert len(selectors.awaiting_approval(users["approver"])) == 12
    assert len(many) == len(few)


def test_deployments_api__cursor_pages__every_row_once_newest_first_no_count(api, users, history):
    history(12)
    client = api(users["admin"])
    page = client.get("/api/v1/deployments/", {"page_size": 5}).json()
    assert "count" not in page and page["previous"] is None and "cursor=" in page["next"]
    seen = [d["id"] for d in page["results"]]
    while page["next"]:
        page = client.get(page["next"]).json()
        seen += [d["id"] for d in page["results"]]
    assert len(seen) == len(set(seen)) == 12
    from releases.models import Deployment

    assert seen == list(Deployment.objects.order_by("-created_at", "-id").values_list("id", flat=True))


def test_deployments_api__bad_cursor__404_saying_so(api, users, history):
    history(2)
    response = api(users["admin"]).get("/api/v1/deployments/", {"cursor": "not-a-cursor"})
    assert response.status_code == 404 and "cursor" in response.json()["detail"].lower()


def test_schema__cursor_lists__document_cursor_and_page_links(api, users):
    schema = api(users["admin"]).get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json").json()
    for path, name in (("/api/v1/deployments/", "PaginatedDeploymentList"),
                       ("/api/v1/audit-events/", "PaginatedAuditEventList")):
        operation = schema["paths"][path]["get"]
        assert {"cursor", "page_size"} <= {p["name"] for p in operation["parameters"]}
        page = schema["components"]["schemas"][name]
        assert set(page["properties"]) == {"next", "previous", "results"}
        assert "cursor" in page["properties"]["next"]["description"]


@pytest.mark.parametrize(("table", "columns"), [
    ("releases_release", ["created_at"]),
    ("releases_release", ["scheduled_for"]),
    ("releases_deployment", ["created_at", "id"]),
    ("pmrelease_auditevent", ["actor_username", "id"]),
    ("pmrelease_auditevent", ["created_at"]),
    ("pmrelease_auditevent", ["action"]),
])
def test_indexes__list_orderings_and_filters__exist(db, table, columns):
    with connection.cursor() as cursor:
        constraints = connection.introspection.get_constraints(cursor, table)
    assert any(c["index"] and c["columns"] == columns for c in constraints.values()), constraints
