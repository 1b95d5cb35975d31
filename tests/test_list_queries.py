"""Every list costs the same with 3 rows as with 12 (issue 18): each REST list under /api/v1/ and each admin
change list, with rows carrying the relations their serializer or ``list_display`` shows (tests/list_builders.py),
is asked for once with 3 rows and once with 12 and must run the same number of queries, at most a stated bound
(``django_assert_max_num_queries``). The releases, deployments, environments and audit lists are in
tests/releases/test_lists.py.

Environment-scoped lists are asked for by a superuser and by someone who sees only some environments (another
path: the environment filter)."""
import pytest

from tests import list_builders as build
from tests.releases.test_lists import _queries
from tests.scale_support import build_deployments, build_releases, reporters

API_MAX = 20  # what a list with its prefetches, the user's roles and access needs
ADMIN_MAX = 30  # the admin adds its session, permissions, filters, counts and date hierarchy


@pytest.fixture(autouse=True)
def _no_status_tasks(monkeypatch):
    """The status page's tasks stay off the broker (as in tests/monitoring)."""
    from monitoring import tasks

    for task in (tasks.publish_status_site, tasks.notify_subscribers, tasks.send_confirmation, tasks.deliver):
        monkeypatch.setattr(task, "delay", lambda *args, **kwargs: None)


@pytest.fixture
def ctx(users, envs):
    return build.Ctx(users, envs)


def dora_history(ctx, n):
    releases = build_releases(n, by=ctx.users["planner"], approver=ctx.users["approver"],
                              environments=ctx.envs.values(), start=ctx.next() * 100)
    build_deployments(releases, environments=ctx.envs.values(), by=ctx.users["ops"], users=reporters(3))


def _rows(body):
    return len(body["results"] if isinstance(body, dict) else body)


# (url, builder, who): who sees the most (admin) and, where the list is filtered by environment access, a
# developer (who sees the non-production environments only)
API_LISTS = [
    ("/api/v1/secret-references/", build.secret_references, "admin"),
    ("/api/v1/secret-references/", build.secret_references, "dev"),
    ("/api/v1/tokens/", build.api_tokens, "admin"),
    ("/api/v1/channels/", build.channels, "admin"),
    ("/api/v1/notifications/", build.notifications, "admin"),
    ("/api/v1/changes/", build.change_requests, "admin"),
    ("/api/v1/changes/", build.change_requests, "dev"),
    ("/api/v1/changes/awaiting-my-decision/", build.change_requests, "approver2"),
    ("/api/v1/change-windows/", build.change_windows, "admin"),
    ("/api/v1/change-windows/", build.change_windows, "dev"),
    ("/api/v1/change-freezes/", build.change_freezes, "admin"),
    ("/api/v1/change-templates/", build.change_templates, "admin"),
    ("/api/v1/flags/", build.flags, "admin"),
    ("/api/v1/flags/", build.flags, "dev"),
    ("/api/v1/flags/segments/", build.segments, "admin"),
    ("/api/v1/flags/changes/", build.flag_changes, "admin"),
    ("/api/v1/flags/changes/", build.flag_changes, "dev"),
    ("/api/v1/components/", build.components, "admin"),
    ("/api/v1/component-groups/", build.component_groups, "admin"),
    ("/api/v1/incidents/", build.incidents, "admin"),
    ("/api/v1/maintenances/", build.maintenances, "admin"),
    ("/api/v1/incident-policies/", build.incident_policies, "admin"),
    ("/api/v1/status-subscribers/", build.subscribers, "admin"),
    ("/api/v1/slos/", build.slos, "admin"),
    ("/api/v1/slos/", build.slos, "dev"),
    ("/api/v1/alert-rules/", build.alert_rules, "admin"),
    ("/api/v1/alert-rules/", build.alert_rules, "dev"),
]


def _id(row):
    return f"{row[0].strip('/').removeprefix('api/v1/').removeprefix('admin/')}-{row[2]}"


def _params(rows):
    return [row if hasattr(row, "marks") else pytest.param(*row, id=_id(row)) for row in rows]


@pytest.mark.parametrize(("url", "builder", "who"), _params(API_LISTS))
def test_api_list__3_or_12_rows__same_queries(api, users, ctx, url, builder, who, django_assert_max_num_queries):
    client = api(users[who])
    builder(ctx, 3)
    few, response = _queries(client, url)
    shown = _rows(response.json())
    builder(ctx, 9)
    many, response = _queries(client, url, django_assert_max_num_queries, limit=API_MAX)
    assert _rows(response.json()) > shown > 0
    assert many == few


def _alert_rule_events(ctx, n):
    """A rule with ``n`` more state changes; the URL of its history."""
    from monitoring.alerting.models import AlertEvent, AlertRule

    build.alert_rules(ctx, 1)
    rule = AlertRule.objects.filter(name__startswith="rule-").latest("id")
    AlertEvent.objects.bulk_create([AlertEvent(rule=rule, change="firing", from_state="pending", to_state="firing",
                                               detail=f"event {k}") for k in range(n)])
    return f"/api/v1/alert-rules/{rule.pk}/events/"


# the cursor lists' ?page_size= (the deployments and the audit trail: tests/releases/test_lists.py)
@pytest.mark.parametrize(("url", "builder"), [
    ("/api/v1/notifications/", build.notifications),
    (None, _alert_rule_events),
])
def test_api_cursor_list__page_sizes_and_next_page__same_queries(api, users, ctx, url, builder,
                                                                  django_assert_max_num_queries):
    client = api(users["admin"])
    url = builder(ctx, 24) or url
    small, first = _queries(client, url, page_size=3)
    large, body = _queries(client, url, django_assert_max_num_queries, limit=API_MAX, page_size=12)
    following, _ = _queries(client, first.json()["next"])
    assert len(first.json()["results"]) == 3 and len(body.json()["results"]) == 12
    assert small == large == following


ADMIN_LISTS = [
    ("/admin/releases/environment/", build.environments, "admin"),
    ("/admin/releases/environment/", build.environments, "ops"),
    ("/admin/releases/testinggate/", build.testing_gates, "admin"),
    ("/admin/releases/testinggate/", build.testing_gates, "dev"),
    ("/admin/releases/approverrole/", build.approver_roles, "admin"),
    ("/admin/releases/configversion/", build.config_versions, "admin"),
    ("/admin/releases/configversion/", build.config_versions, "dev"),
    ("/admin/releases/secretreference/", build.secret_references, "admin"),
    ("/admin/releases/secretreference/", build.secret_references, "dev"),
    ("/admin/pmrelease/apitoken/", build.api_tokens, "admin"),
    ("/admin/pmrelease/serviceaccount/", build.service_accounts, "admin"),
    ("/admin/pmrelease/channel/", build.channels, "admin"),
    ("/admin/pmrelease/notification/", build.notifications, "admin"),
    ("/admin/pmrelease/externalidentity/", build.external_identities, "admin"),
    ("/admin/pmrelease/rolegrant/", build.role_grants, "admin"),
    ("/admin/pmrelease/rolemapping/", build.role_mappings, "admin"),
    ("/admin/auth/user/", build.users, "admin"),
    ("/admin/auth/group/", build.groups, "admin"),
    ("/admin/otp_totp/totpdevice/", build.totp_devices, "admin"),
    ("/admin/axes/accessattempt/", build.access_attempts, "admin"),
    ("/admin/axes/accessfailurelog/", build.access_attempts, "admin"),
    ("/admin/axes/accesslog/", build.access_attempts, "admin"),
    ("/admin/changes/changerequest/", build.change_requests, "admin"),
    ("/admin/changes/changerequest/", build.change_requests, "dev"),
    ("/admin/changes/changerequest/awaiting-my-decision/", build.change_requests, "approver2"),
    ("/admin/changes/changewindow/", build.change_windows, "admin"),
    ("/admin/changes/changefreeze/", build.change_freezes, "admin"),
    ("/admin/changes/changetemplate/", build.change_templates, "admin"),
    ("/admin/changes/approvalrule/", build.approval_rules, "admin"),
    ("/admin/changes/environmentchangepolicy/", build.change_policies, "admin"),
    ("/admin/flags/featureflag/", build.flags, "admin"),
    ("/admin/flags/featureflag/", build.flags, "dev"),
    ("/admin/flags/segment/", build.segments, "admin"),
    ("/admin/flags/apikey/", build.api_keys, "admin"),
    ("/admin/flags/flagchangerequest/", build.flag_changes, "admin"),
    ("/admin/flags/flagmetricsbucket/", build.flag_metrics, "admin"),
    ("/admin/flags/approvalpolicy/", build.flag_approval_policies, "admin"),
    ("/admin/monitoring/component/", build.components, "admin"),
    ("/admin/monitoring/componentgroup/", build.component_groups, "admin"),
    ("/admin/monitoring/incident/", build.incidents, "admin"),
    ("/admin/monitoring/maintenance/", build.maintenances, "admin"),
    ("/admin/monitoring/incidentpolicy/", build.incident_policies, "admin"),
    ("/admin/monitoring/subscriber/", build.subscribers, "admin"),
    ("/admin/monitoring/delivery/", build.subscribers, "admin"),
    ("/admin/monitoring/servicelevelobjective/", build.slos, "admin"),
    ("/admin/monitoring/alertrule/", build.alert_rules, "admin"),
    ("/admin/monitoring/activealert/", build.alert_rules, "admin"),
    ("/admin/monitoring/alertevent/", build.alert_rules, "admin"),
    ("/admin/monitoring/metricsconfig/", build.metrics_configs, "admin"),
    ("/admin/monitoring/dorareport/", dora_history, "admin"),
]


@pytest.mark.parametrize(("url", "builder", "who"), _params(ADMIN_LISTS))
def test_changelist__3_or_12_rows__same_queries(client, users, ctx, url, builder, who,
                                                django_assert_max_num_queries):
    client.force_login(users[who])
    builder(ctx, 3)
    few, response = _queries(client, url)
    shown = _shown(response)
    builder(ctx, 9)
    many, response = _queries(client, url, django_assert_max_num_queries, limit=ADMIN_MAX)
    assert _shown(response) > shown > 0
    assert many == few


def _shown(response):
    """Rows on the change list's page (the approver's queue: its changes; the DORA page: the deployments
    counted)."""
    changelist = response.context.get("cl")
    if changelist is not None:
        return len(changelist.result_list)
    if "changes" in response.context:
        return len(response.context["changes"])
    return sum(k.deployments for row in response.context["rows"] for k in row["keys"])
