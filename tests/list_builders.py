"""Rows for the list query-count tests (tests/test_list_queries.py): one builder per kind of row, each adding
``n`` rows with the relations their API serializer and admin ``list_display`` show (owners, environments,
components, approvals, updates, delivery attempts…), through the services where one makes the row.

A builder is ``build(ctx, n)``; ``ctx`` holds the fixture users and environments and numbers the rows so that
every call makes new ones (``ctx.next()``)."""
import datetime as dt
import itertools

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.utils import timezone

from pmrelease import tokens
from pmrelease.bootstrap import ensure_role_groups
from pmrelease.models import (
    Channel,
    DeliveryAttempt,
    ExternalIdentity,
    Notification,
    RoleGrant,
    RoleMapping,
    Subscription,
)
from pmrelease.roles import AccessLevel
from releases import access
from releases.models import (
    ApproverRole,
    ConfigVersion,
    Environment,
    EnvironmentAccess,
    SecretReference,
    TestingGate,
)


class Ctx:
    def __init__(self, users, envs):
        self.users, self.envs = users, envs
        self._numbers = itertools.count(1)

    def next(self):
        return next(self._numbers)

    @property
    def staging(self):
        return self.envs["staging"]

    def pick(self, i, *, production=False):
        """An environment by row number (the production one every few rows when asked)."""
        names = sorted(self.envs)
        if not production:
            names = [n for n in names if self.envs[n].tier != "production"]
        return self.envs[names[i % len(names)]]

    def person(self, i):
        return self.users[["dev", "dev2", "qa", "ops", "approver", "planner"][i % 6]]


def now():
    return timezone.now()


# --- releases -------------------------------------------------------------------------------------------------

def environments(ctx, n):
    """``n`` more environments, each promoting to the previous one and attached to staging, operations with full
    access and developers read-only (the per-environment one-to-one rows — policies, metrics configuration —
    need one environment per row)."""
    made = []
    for _ in range(n):
        i = ctx.next()
        previous = made[-1] if made else ctx.staging
        made.append(Environment.objects.create(
            name=f"extra-{i}", display_name=f"Extra {i}", tier="development", position=100 + i,
            promotes_to=previous, attached_to=ctx.staging, attachment="shared"))
    groups = ensure_role_groups()
    for environment in made:
        EnvironmentAccess.objects.create(environment=environment, group=groups["operations"], level=AccessLevel.FULL)
        EnvironmentAccess.objects.create(environment=environment, group=groups["developers"], level=AccessLevel.READ)
    for user in ctx.users.values():
        access.forget(user)  # what each may see was cached on the user before these existed
    return made


def secret_references(ctx, n):
    for _ in range(n):
        i = ctx.next()
        SecretReference.objects.create(
            name=f"secret-{i}", reference=f"env://SECRET_{i}", environment=ctx.pick(i, production=True),
            owner=ctx.person(i), rotation_frequency_days=30, last_rotated_at=now() - dt.timedelta(days=i))


def config_versions(ctx, n):
    for _ in range(n):
        i = ctx.next()
        ConfigVersion.objects.create(environment=ctx.pick(i), number=i, document={"LOG_LEVEL": f"info-{i}"},
                                     author=ctx.person(i), comment=f"version {i}", changes=["LOG_LEVEL"])


def testing_gates(ctx, n):
    for _ in range(n):
        i = ctx.next()
        TestingGate.objects.create(environment=ctx.pick(i), name=f"Gate {i}", slug=f"gate-{i}",
                                   tests=["unit", "e2e"], position=i)


def approver_roles(ctx, n):
    for _ in range(n):
        i = ctx.next()
        role = ApproverRole.objects.create(group=Group.objects.create(name=f"approvers-{i}"), max_risk="high",
                                           note=f"role {i}")
        role.environments.set([ctx.pick(i), ctx.pick(i + 1)])


# --- pmrelease ------------------------------------------------------------------------------------------------

def _user(i, prefix="person"):
    return get_user_model().objects.create_user(username=f"{prefix}-{i}", email=f"{prefix}-{i}@example.com",
                                                password="pw-123456789", is_staff=True)


def api_tokens(ctx, n):
    for _ in range(n):
        i = ctx.next()
        user = ctx.person(i) if i % 2 else _user(i)
        tokens.create_token(user=user, by=ctx.users["admin"], name=f"token {i}", scopes=["read"],
                            environments=[ctx.pick(i).name])


def service_accounts(ctx, n):
    for _ in range(n):
        i = ctx.next()
        account = tokens.service_account_create(username=f"ci-bot-{i}", roles=["developers"],
                                                by=ctx.users["admin"], description=f"pipeline {i}")
        tokens.create_token(user=account.user, by=ctx.users["admin"], name="ci", scopes=["releases:write"])


def channels(ctx, n):
    for _ in range(n):
        i = ctx.next()
        channel = Channel.objects.create(name=f"channel-{i}", description=f"Channel {i}", url_env=f"CHANNEL_{i}_URL")
        Subscription.objects.create(channel=channel, event="*", environment="")
        Subscription.objects.create(channel=channel, event="deployment.failed", environment=ctx.pick(i).name)


def notifications(ctx, n):
    channel = Channel.objects.get_or_create(name="ops-room", defaults={"url_env": "OPS_ROOM_URL"})[0]
    for _ in range(n):
        i = ctx.next()
        notification = Notification.objects.create(
            event="deployment.failed", environment=ctx.pick(i).name, key=f"deployment-{i}",
            channel=channel if i % 2 else Channel.objects.create(name=f"room-{i}", url_env=f"ROOM_{i}"),
            recipients=["ops@example.com"], title=f"Deployment {i} failed", body="It failed.", status="failed",
            attempts=2, last_error="timeout")
        for attempt in (1, 2):
            DeliveryAttempt.objects.create(notification=notification, delivered=False, error=f"timeout {attempt}")


def external_identities(ctx, n):
    for _ in range(n):
        i = ctx.next()
        ExternalIdentity.objects.create(user=_user(i, "sso"), source="oidc", subject=f"sub-{i}",
                                        last_sign_in_at=now())


def role_grants(ctx, n):
    for _ in range(n):
        i = ctx.next()
        RoleGrant.objects.create(user=_user(i, "granted"), role="developers",
                                 source="oidc", groups=[f"eng-{i}"])


def role_mappings(ctx, n):
    for _ in range(n):
        i = ctx.next()
        RoleMapping.objects.create(source="oidc", group_name=f"eng-{i}", role="developers")


def users(ctx, n):
    for _ in range(n):
        i = ctx.next()
        _user(i, "staff").groups.set([Group.objects.get(name="developers"), Group.objects.get(name="qa")])


def groups(ctx, n):
    from django.contrib.auth.models import Permission

    permissions = list(Permission.objects.all()[:3])
    for _ in range(n):
        Group.objects.create(name=f"team-{ctx.next()}").permissions.set(permissions)


def totp_devices(ctx, n):
    from django_otp.plugins.otp_totp.models import TOTPDevice

    for _ in range(n):
        i = ctx.next()
        TOTPDevice.objects.create(user=ctx.person(i) if i % 2 else _user(i, "otp"), name=f"phone {i}",
                                  confirmed=True)


def access_attempts(ctx, n):
    from axes.models import AccessAttempt, AccessFailureLog, AccessLog

    for _ in range(n):
        i = ctx.next()
        common = {"ip_address": f"10.0.0.{i % 250}", "user_agent": "pytest", "username": f"someone-{i}",
                  "path_info": "/admin/login/"}
        AccessAttempt.objects.create(failures_since_start=i, get_data="", post_data="", http_accept="*/*",
                                     **common)
        AccessFailureLog.objects.create(locked_out=bool(i % 2), http_accept="*/*", **common)
        AccessLog.objects.create(http_accept="*/*", **common)


# --- changes --------------------------------------------------------------------------------------------------

PLANS = {"implementation_plan": "Roll out with a canary", "rollback_plan": "Roll back to the previous version",
         "testing_plan": "Staging gates and smoke tests"}


def change_requests(ctx, n):
    """Change requests by different people on one or two environments, linked to a release, submitted and
    approved in turn (so their approvals, requirement and conflicts have something to show)."""
    from changes import services
    from tests.factories import make_release

    for _ in range(n):
        i = ctx.next()
        where = [ctx.pick(i), ctx.pick(i + 1)] if i % 2 else [ctx.pick(i)]
        release = make_release(by=ctx.users["planner"], envs=[ctx.staging], version=f"9.{i}.0")
        change = services.change_create(
            data={"title": f"Change {i}", "impact": "low", "likelihood": "low", **PLANS, "environments": where,
                  "planned_start": now() + dt.timedelta(hours=i), "duration": 60},
            by=ctx.users["planner"], links=[release])
        if i % 3:
            services.change_submit(change=change, by=ctx.users["planner"])
        if i % 3 == 2:
            services.change_approve(change=change, by=ctx.users["approver"], comment="fine")


def change_templates(ctx, n):
    from changes import services

    for _ in range(n):
        i = ctx.next()
        template = services.template_save(data={"name": f"Template {i}", "description": "Routine", **PLANS,
                                                "environments": [ctx.pick(i), ctx.pick(i + 1)]},
                                          by=ctx.users["admin"])
        if i % 2:
            services.template_approve(template=template, by=ctx.users["admin"])


def change_freezes(ctx, n):
    from changes import services

    for _ in range(n):
        i = ctx.next()
        services.freeze_save(data={"reason": f"Freeze {i}", "environments": [ctx.pick(i), ctx.pick(i + 1)],
                                   "starts_at": now() + dt.timedelta(days=i),
                                   "ends_at": now() + dt.timedelta(days=i, hours=4)}, by=ctx.users["admin"])


def change_windows(ctx, n):
    from changes import services

    for _ in range(n):
        i = ctx.next()
        services.window_save(environment=ctx.pick(i), data={"name": f"Window {i}", "days": [0, 1, 2],
                                                             "start_time": dt.time(9), "end_time": dt.time(17)},
                             by=ctx.users["admin"])


def approval_rules(ctx, n):
    from changes.models import ApprovalRule

    for _ in range(n):
        i = ctx.next()
        ApprovalRule.objects.create(description=f"Rule {i}", role=Group.objects.get(name="approvers"),
                                    environment=ctx.pick(i) if i % 2 else None, quorum=1)


def change_policies(ctx, n):
    from changes.models import EnvironmentChangePolicy

    for environment in environments(ctx, n):
        EnvironmentChangePolicy.objects.update_or_create(environment=environment,
                                                         defaults={"requires_change": True})


# --- flags ----------------------------------------------------------------------------------------------------

def flags(ctx, n):
    """Flags owned by different people, some with a parent, enabled in some environments with a rollout, one
    environment of every few with a running ramp."""
    from flags import services
    from flags.models import FeatureFlag

    parent = FeatureFlag.objects.filter(key="parent-flag").first() or services.flag_create(
        key="parent-flag", by=ctx.users["admin"])
    for _ in range(n):
        i = ctx.next()
        flag = services.flag_create(key=f"flag-{i}", description=f"Flag {i}", owner=ctx.person(i),
                                    tags=["team"], by=ctx.users["admin"],
                                    **({"parent": parent} if i % 2 else {}))
        for k, environment in enumerate(ctx.envs.values()):
            state = services.state_for(flag, environment)
            if (i + k) % 2 and environment.tier != "production":
                services.flag_set_rollout(environment=environment, key=flag.key, percentage=10 * k,
                                          by=ctx.users["admin"])
            if k == i % 4 and environment.tier != "production":
                services.ramp_start(state=state, steps="5,25@60,100@60", by=ctx.users["admin"])


def flag_changes(ctx, n):
    """Proposed flag changes: in production through the service (a change request of the flag_change class
    decides each), elsewhere older ones without a change request, some decided."""
    from flags import services
    from flags.models import FlagChangeRequest

    for _ in range(n):
        i = ctx.next()
        flag = services.flag_create(key=f"changed-{i}", owner=ctx.person(i), by=ctx.users["admin"])
        environment = ctx.pick(i, production=True)
        state = services.state_for(flag, environment)
        if environment.tier == "production":
            services.flag_state_change(state=state, enabled=True, by=ctx.users["ops"], reason=f"turn on {i}")
            continue
        FlagChangeRequest.objects.create(
            state=state, base={"enabled": False}, proposed={"enabled": True}, reason=f"turn on {i}",
            requested_by=ctx.person(i), status="approved" if i % 2 else "pending",
            decided_by=ctx.users["approver"] if i % 2 else None, decided_at=now() if i % 2 else None)


def segments(ctx, n):
    from flags import services

    for _ in range(n):
        i = ctx.next()
        services.segment_save(name=f"segment-{i}", description=f"Segment {i}", by=ctx.users["admin"],
                              constraints=[{"contextName": "userId", "operator": "IN", "values": [str(i)]}])


def api_keys(ctx, n):
    from flags import services

    for _ in range(n):
        i = ctx.next()
        services.api_key_create(environment=ctx.pick(i, production=True), kind=["client", "frontend"][i % 2],
                                name=f"key {i}", by=ctx.users["admin"])


def flag_metrics(ctx, n):
    from flags.models import FlagMetricsBucket

    for _ in range(n):
        i = ctx.next()
        FlagMetricsBucket.objects.create(environment=ctx.pick(i), flag_key=f"flag-{i}",
                                         bucket_start=now().replace(minute=0, second=0, microsecond=0)
                                         - dt.timedelta(hours=i), yes=i, no=2 * i, variants={"blue": i})


def flag_approval_policies(ctx, n):
    from flags import services

    for environment in environments(ctx, n):
        services.approval_policy_set(environment=environment, require_approval=True, by=ctx.users["admin"])


# --- monitoring -----------------------------------------------------------------------------------------------

def _group(ctx):
    from monitoring.statuspage.components import group_create
    from monitoring.statuspage.models import ComponentGroup

    return ComponentGroup.objects.filter(name="Web app").first() or group_create(
        data={"name": "Web app", "position": 1}, by=ctx.users["ops"])


def components(ctx, n):
    from monitoring.statuspage.components import component_create

    made = []
    for _ in range(n):
        i = ctx.next()
        component = component_create(data={"name": f"Component {i}", "group": _group(ctx) if i % 2 else None,
                                            "position": i}, by=ctx.users["ops"])
        component.environments.set([ctx.pick(i), ctx.pick(i + 1)])
        made.append(component)
    return made


def component_groups(ctx, n):
    from monitoring.statuspage.components import component_create, group_create

    for _ in range(n):
        i = ctx.next()
        group = group_create(data={"name": f"Group {i}", "position": i}, by=ctx.users["ops"])
        for k in range(2):
            component_create(data={"name": f"Group {i} part {k}", "group": group, "position": k},
                             by=ctx.users["ops"])


def incidents(ctx, n):
    from monitoring.statuspage import incidents as service
    from monitoring.statuspage import status as st

    for component in components(ctx, n):
        i = ctx.next()
        incident = service.incident_create(name=f"Incident {i}", body="Looking into it.", by=ctx.users["ops"],
                                           impact="minor", components={component: st.DEGRADED},
                                           environment=ctx.pick(i, production=True))
        service.incident_add_update(incident=incident, body="Still looking.", by=ctx.users["ops"])


def maintenances(ctx, n):
    from monitoring.statuspage.maintenance import maintenance_create

    for component in components(ctx, n):
        i = ctx.next()
        maintenance_create(data={"name": f"Maintenance {i}", "body": "Upgrading.",
                                 "scheduled_for": now() + dt.timedelta(days=i),
                                 "scheduled_until": now() + dt.timedelta(days=i, hours=1),
                                 "components": [component]}, by=ctx.users["ops"])


def incident_policies(ctx, n):
    from monitoring.statuspage import incidents as service

    for environment in environments(ctx, n):
        service.incident_policy_set(environment=environment, policy="draft", by=ctx.users["admin"])


def subscribers(ctx, n):
    from monitoring.statuspage.models import Delivery, Subscriber

    parts = components(ctx, 2)
    for _ in range(n):
        i = ctx.next()
        subscriber = Subscriber.objects.create(kind="email", email=f"reader-{i}@example.com",
                                               confirmed_at=now())
        subscriber.components.set(parts)
        Delivery.objects.create(subscriber=subscriber, event="incident.created", subject=f"Incident {i}",
                                body="Something happened.", status="sent", attempts=1, sent_at=now())


def slos(ctx, n):
    from monitoring.reliability.models import ServiceLevelObjective

    parts = components(ctx, 2)
    for _ in range(n):
        i = ctx.next()
        ServiceLevelObjective.objects.create(
            name=f"SLO {i}", environment=ctx.pick(i, production=True), component=parts[i % 2],
            sli="uptime" if i % 2 else "deployment_success", objective=99.5, window_days=28)


def alert_rules(ctx, n):
    """Alert rules with channels, some firing, each with a few state changes."""
    from monitoring.alerting import services
    from monitoring.alerting.models import AlertEvent, AlertRule

    channel = Channel.objects.get_or_create(name="alerts-room", defaults={"url_env": "ALERTS_ROOM_URL"})[0]
    for _ in range(n):
        i = ctx.next()
        rule = services.rule_save(environment=ctx.pick(i, production=True), by=ctx.users["admin"], data={
            "name": f"rule-{i}", "condition": f"error_rate > 0.0{i % 9 + 1}", "for_seconds": 60,
            "severity": "critical" if i % 2 else "warning"})
        rule.channels.set([channel])
        AlertRule.objects.filter(pk=rule.pk).update(state="firing" if i % 2 else "pending", state_since=now(),
                                                    last_evaluated_at=now(),
                                                    last_result=[{"labels": {"instance": f"web-{i}"}, "value": 0.5}])
        for change, to in (("pending", "pending"), ("firing", "firing")):
            AlertEvent.objects.create(rule=rule, change=change, from_state="inactive", to_state=to,
                                      notified=True, detail=f"{change} {i}")


def metrics_configs(ctx, n):
    from monitoring.metrics.models import MetricsConfig

    for environment in environments(ctx, n):
        MetricsConfig.objects.update_or_create(environment=environment, defaults={
            "kind": "prometheus", "url": "http://prometheus:9090", "app": "penguinmails"})
