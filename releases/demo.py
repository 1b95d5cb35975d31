"""The releases app's part of the demo organisation: environments with their access matrix, deployment
targets and gates, the demo users, and releases in several states with a deployment history.

Idempotent: run it as often as you like; what exists is left as it is. Releases are made through the
same services people use, and deployed by the real engine, so the audit trail shows a real history.
"""
import datetime as dt
from contextlib import nullcontext

import time_machine
from django.contrib.auth import get_user_model
from django.utils import timezone

from pmrelease.bootstrap import ensure_role_groups

from . import services
from .bootstrap import ensure_access_matrix, ensure_default_triggers
from .deploy import engine, gates, watch
from .deploy import services as deploy_services
from .models import DeploymentTarget, Environment, Release

DEMO_PASSWORD = "penguin-demo"

ENVIRONMENTS = [
    # name, display, tier, position, purpose, infrastructure, data source, retention, backup
    ("local", "Local Dev", "development", 0, "Developer workstations (localhost)",
     {"vps": "developer laptop", "database": "local NileDB container", "storage": "Local file system",
      "networking": "localhost only"}, "Synthetic data", "none", "none"),
    ("development", "Development", "development", 1, "Feature development and testing",
     {"vps": "2 vCPUs, 4GB RAM", "database": "NileDB dev instance", "storage": "Local file system",
      "networking": "Internal only"}, "Synthetic/anonymized data", "30 days", "Daily snapshots"),
    ("qa", "QA/Testing", "testing", 2, "QA and exploratory testing",
     {"vps": "4 vCPUs, 8GB RAM", "database": "NileDB qa instance", "storage": "Cloud storage",
      "networking": "Internal only"}, "Production-like data (anonymized)", "30 days", "Daily snapshots"),
    ("staging", "Staging", "staging", 3, "Pre-production validation",
     {"vps": "4 vCPUs, 8GB RAM", "database": "NileDB staging instance", "storage": "Cloud storage with CDN",
      "networking": "Restricted external access"}, "Production-like data (anonymized)", "90 days",
     "Hourly snapshots"),
    ("production", "Production", "production", 4, "Live user-facing system",
     {"vps": "8-16 vCPUs, 32-64GB RAM (auto-scaling)", "database": "NileDB production cluster",
      "storage": "Geo-redundant cloud storage", "networking": "Global CDN with WAF"}, "Live user data",
     "Per data classification policy", "Continuous replication"),
    ("dr", "Disaster Recovery", "production", 5, "Disaster recovery mirror of production",
     {"vps": "8-16 vCPUs, 32-64GB RAM (cold standby)", "database": "NileDB production replica",
      "storage": "Geo-redundant cloud storage", "networking": "Global CDN with WAF"}, "Replicated live data",
     "Per data classification policy", "Continuous replication"),
]
LINKS = {  # name: (promotes_to, attached_to, attachment)
    "local": (None, "development", "workstation"),
    "development": ("staging", None, ""),
    "qa": (None, "staging", "testing"),
    "staging": ("production", None, ""),
    "production": (None, None, ""),
    "dr": (None, "production", "mirror"),
}
USERS = [  # username, first name, role groups, is_superuser
    ("admin", "Ada Admin", [], True),
    ("dev", "Dana Developer", ["developers"], False),
    ("qa", "Quinn QA", ["qa"], False),
    ("product", "Pat Product", ["product"], False),
    ("support", "Sam Support", ["support"], False),
    ("ops", "Olga Operations", ["operations"], False),
    ("security", "Sid Security", ["security"], False),
    ("approver", "Avery Approver", ["approvers"], False),
    ("approver2", "Blake Approver", ["approvers"], False),
    ("ops2", "Otto Operations", ["operations"], False),
]


def _plan(*, prerequisites_done=True, risk=("medium", "low")):
    today = timezone.localdate()
    return {
        "prerequisites": [
            {"type": "database", "description": "Analytics tables migration rehearsed on staging",
             "status": "completed" if prerequisites_done else "pending", "owner": "DBA team",
             "deadline": today + dt.timedelta(days=3)},
            {"type": "compliance", "description": "Data-processing impact assessment signed off",
             "status": "completed", "owner": "Security", "deadline": today + dt.timedelta(days=5)},
        ],
        "risk_assessment": {"impact": risk[0], "likelihood": risk[1],
                            "mitigation": "Canary to 10% first\nFeature flags default off",
                            "contingency": "Roll back to the previous image\nDisable new flags"},
        "rollback_plan": {"prerequisites": "Previous image still in the registry",
                          "validation": "Error rate back under 1%\nSmoke tests green",
                          "communication": "Post in #releases and update the status page"},
        "rollback_strategies": [{"type": "code", "method": "immediate", "estimated_duration": 10, "risk": "low"}],
        "rollback_steps": [
            {"order": 1, "description": "Disable the release's feature flags", "command": "",
             "verification": "Flags report off in all regions", "timeout": 120, "on_failure": "continue"},
            {"order": 2, "description": "Restore the previous application image",
             "command": "kubectl rollout undo deployment/app", "verification": "Rollout status complete",
             "timeout": 600, "on_failure": "manual_intervention"},
        ],
        "communication_plan": {"internal": "Slack #releases", "customer": "Changelog and in-app notice",
                               "stakeholders": "Weekly release summary", "incident": "Status page"},
        "testing_requirements": [{"name": "E2E Tests", "suites": "user-journey-tests, critical-path-tests",
                                  "required": True}],
    }


# The deployment history is made by running the real engine on the simulation backend:
# each entry is (environment, strategy, extra parameters, gate names that fail).
OK = [("development", None, {}, ()), ("staging", None, {}, ()), ("production", None, {}, ())]
RELEASES = [
    # version, type, title, changes, final state, days from now, deployments
    ("2.0.0", "major", "Campaign workspace", [
        ("feature", "Advanced campaign scheduling with time zones"),
        ("feature", "Real-time collaboration on campaign drafts"),
        ("migration", "Database migration required for analytics tables"),
    ], "approved", -40, OK),
    ("2.1.0", "minor", "Analytics dashboard", [
        ("feature", "Enhanced analytics dashboard with custom reports"),
        ("fix", "Fixed email template rendering in Outlook"),
        ("fix", "Resolved contact import CSV parsing issues"),
        ("improvement", "Improved database query performance by 40%"),
        ("security", "Patched OpenSSL vulnerability (CVE-2025-XXXX)"),
        ("migration", "New environment variables for enhanced security"),
    ], "approved", -12, [*OK, ("dr", None, {}, ())]),
    ("2.1.1", "patch", "Timezone fixes", [
        ("fix", "Corrected timezone handling in campaign reports"),
    ], "approved", -5, [OK[0], OK[1], ("production", "canary", {"simulate": {"fail_health_check_at_weight": 50}}, ())]),
    ("2.1.2", "patch", "Attachment scanning", [
        ("security", "Scan attachments for malware before sending"),
    ], "approved", -3, [OK[0], ("staging", None, {}, ("Security Tests",))]),
    ("2.1.3", "patch", "Faster campaign sends", [
        ("improvement", "Batch SMTP connections for large campaigns"),
    ], "approved", -1, [OK[0], OK[1], ("production", None, {"simulate": {"error_rate_after_success": {
        "after_seconds": 60, "rate": 0.25}}}, ())]),  # a regression its bake time catches
    ("2.2.0", "minor", "Webhook signatures", [
        ("feature", "Updated webhook signatures for third-party integrations"),
        ("security", "Enhanced password policy enforcement"),
        ("improvement", "Enhanced API rate limiting and security"),
    ], "approved", 3, []),
    ("2.2.1", "patch", "Session hardening", [
        ("security", "Improved session management security"),
        ("fix", "Fixed unsubscribe link encoding"),
    ], "planned", 7, []),
    ("2.3.0", "minor", "Template editor", [
        ("feature", "Drag-and-drop template editor"),
        ("migration", "Template storage moves to object storage"),
    ], "planned_blocked", 20, []),
]
# Simulation targets: the strategy each environment deploys with by default.
# Configuration of the environments before production (production's changes under change management, in the
# editor): staging already runs the send-time optimiser that development has off — the drift list shows it.
CONFIGURATION = {
    "development": ({"database": {"host": "db.dev.internal", "password": "vault://secret/development/db#password",
                                  "connectionPool": {"min": 1, "max": 5}},
                     "cache": {"host": "redis.dev.internal"},
                     "email": {"smtpHost": "mailpit.dev.internal", "apiKey": "env://DEV_SMTP_API_KEY"},
                     "monitoring": {"logLevel": "debug"},
                     "features": {"send-time-optimizer": {"enabled": False}}},
                    "Development defaults"),
    "staging": ({"database": {"host": "db.staging.internal", "password": "vault://secret/staging/db#password",
                              "connectionPool": {"min": 2, "max": 20}},
                 "cache": {"host": "redis.staging.internal", "password": "vault://secret/staging/redis#password"},
                 "storage": {"bucket": "penguinmails-staging", "cdnUrl": "https://cdn.staging.penguinmails.com",
                             "secretAccessKey": "vault://secret/staging/storage#secret_access_key"},
                 "email": {"provider": "ses", "apiKey": "vault://secret/staging/ses#api_key"},
                 "monitoring": {"metricsUrl": "https://prometheus.staging.internal", "sampleRate": 0.5},
                 "security": {"allowedOrigins": ["https://app.staging.penguinmails.com"]},
                 "features": {"send-time-optimizer": {"enabled": True, "percentage": 50}}},
                "Staging as validated for 2.1.3"),
}
SECRET_REFERENCES = [
    ("staging-db", "vault://secret/staging/db#password", "staging", "ops", 30, "Staging database password"),
    ("staging-ses", "vault://secret/staging/ses#api_key", "staging", "ops", 90, "Amazon SES sending key"),
    ("dev-smtp", "env://DEV_SMTP_API_KEY", "development", "dev", 30, "Mailpit API key of development"),
]

TARGETS = {
    "local": ("big-bang", {}),
    "development": ("rolling-update", {}),
    "qa": ("rolling-update", {}),
    "staging": ("blue-green", {"scale_down_delay": 30}),
    "production": ("canary", {"steps": [10, 50, 100], "pause": 20}),
    "dr": ("big-bang", {}),
}


def seed(*, stdout):
    """Seed this app's part; returns what the other apps' demo modules build on (``envs``, ``users``)."""
    groups = ensure_role_groups()
    envs = _environments()
    ensure_access_matrix(envs.values(), groups)
    for env in envs.values():
        ensure_default_triggers(env)
    _deployment_config(envs)
    users = _users(groups)
    _configuration(envs, users)
    history = _releases(envs, users)
    stdout.write(f"Releases: {len(envs)} environments, {len(users)} users, {len(history)} releases to deploy. Log "
                 f"in as admin, ops, approver, dev, qa, … with password '{DEMO_PASSWORD}'.")
    return {"envs": envs, "users": users, "release_history": history}


def _environments():
    envs = {}
    for name, display, tier, position, purpose, infra, source, retention, backup in ENVIRONMENTS:
        env, _ = Environment.objects.get_or_create(name=name, defaults={
            "display_name": display, "tier": tier, "position": position, "purpose": purpose,
            "infrastructure": infra, "data_source": source, "data_retention": retention, "data_backup": backup,
        })
        envs[name] = env
    for name, (promotes_to, attached_to, attachment) in LINKS.items():
        env = envs[name]
        if env.promotes_to_id is None and env.attached_to_id is None:
            env.promotes_to = envs.get(promotes_to)
            env.attached_to = envs.get(attached_to)
            env.attachment = attachment
            env.save(update_fields=["promotes_to", "attached_to", "attachment"])
    return envs


# The demo's simulated CI (SimulationBackend ``ci``): every gate a deployment waits for gets its result through the
# real gate service a few seconds later; staging's first E2E run fails, to show a 'warn' gate's override.
SIMULATED_CI = {"after_seconds": 5, "fail": {}}
SIMULATED_CI_FAILURES = {"staging": {"e2e-tests": 1}}


def _deployment_config(envs):
    for name, (strategy, params) in TARGETS.items():
        ci = {**SIMULATED_CI, "fail": SIMULATED_CI_FAILURES.get(name, {})}
        DeploymentTarget.objects.get_or_create(environment=envs[name], defaults={
            "backend": "simulation", "default_strategy": strategy, "default_parameters": params,
            "config": {"simulation": {"ci": ci}}})
    for position, (name, env, tests, required, timeout, on_failure) in enumerate(gates.SEED_TESTING_GATES):
        gates.ensure_gate(envs[env], name=name, tests=tests, required=required, timeout=timeout,
                                on_failure=on_failure, position=position)


def _configuration(envs, users):
    from . import configuration, secrets
    from .models import SecretReference

    for name, (document, comment) in CONFIGURATION.items():
        configuration.config_save(environment=envs[name], document=document, by=users["admin"], comment=comment)
    for name, reference, env, owner, days, description in SECRET_REFERENCES:
        if not SecretReference.objects.filter(name=name).exists():
            secrets.reference_save(by=users["admin"], data={
                "name": name, "reference": reference, "environment": envs[env], "owner": users[owner],
                "description": description, "rotation_frequency_days": days,
                "last_rotated_at": timezone.now() - dt.timedelta(days=34)})


def _users(groups):
    User = get_user_model()
    users = {}
    for username, full_name, roles, superuser in USERS:
        first, last = full_name.split(" ", 1)
        user, created = User.objects.get_or_create(username=username, defaults={
            "first_name": first, "last_name": last, "email": f"{username}@penguinmails.local",
            "is_staff": True, "is_superuser": superuser,
        })
        if created:
            user.set_password(DEMO_PASSWORD)
            user.save()
            user.groups.set([groups[r] for r in roles])
        users[username] = user
    return users


def _releases(envs, users):
    """Plan and approve the demo releases (new ones only). Returns their deployment histories, for
    ``deploy_history`` — which the changes app's demo runs, since production needs approved changes."""
    history = []
    targets = [envs["development"], envs["staging"], envs["production"], envs["dr"]]
    for version, rtype, title, changes, final, days, deployments in RELEASES:
        if Release.objects.filter(version=version).exists():
            continue
        when = timezone.now() + dt.timedelta(days=days)
        # Past releases are planned and approved with the clock set to their own dates, so the history (and the
        # cadence calendar) has a real shape.
        past = days < 0
        clock = time_machine.travel(when - dt.timedelta(days=len(deployments) + 1), tick=True) if past else nullcontext()
        with clock:
            release = _release(users, targets, version, rtype, title, changes, final, when, deployments)
        if deployments and final == "approved":
            history.append((release, when, deployments))
    return history


def _release(users, targets, version, rtype, title, changes, final, when, deployments):
    """Plan and approve one demo release through the services."""
    plan = _plan(prerequisites_done=final != "planned_blocked")
    plan["note_items"] = [{"kind": k, "summary": s, "position": i} for i, (k, s) in enumerate(changes)]
    release = services.release_create(
        by=users["ops"], plan=plan,
        data={"version": version, "type": rtype, "title": title,
              "environments": targets if any(h[0] == "dr" for h in deployments) else targets[:3],
              "description": f"{title}: see the release notes.", "scheduled_for": when,
              "scheduled_until": when + dt.timedelta(hours=2),
              "quorum": 2 if final == "planned" else 1},
    )
    if final == "planned":
        services.release_approve(release=release, by=users["approver"], comment="Looks good to me")
    if final == "approved":
        services.release_approve(release=release, by=users["approver"], comment="Plan reviewed, go ahead")
    return release


def deploy_history(item, envs, users, *, before_deploy=None):
    """Deploy one demo release through the real engine at its own dates: one environment a day, production on
    the release's date. ``before_deploy(release, environment, at)`` runs first (the changes app's demo records
    the change an environment requires)."""
    release, when, deployments = item
    for index, (env_name, strategy, params, failing_gates) in enumerate(deployments):
        at = when - dt.timedelta(days=len(deployments) - 1 - index)
        with time_machine.travel(at, tick=True):
            if before_deploy is not None:
                before_deploy(release, envs[env_name], at)
            _deploy(release, envs[env_name], users, strategy, params, failing_gates)
        if Release.objects.get(pk=release.pk).status in ("rolled_back", "failed"):
            break


def _deploy(release, env, users, strategy, params, failing_gates):
    """Run one deployment through the real engine, in this process, CI reporting its gates."""
    dep = deploy_services.deployment_create(release=release, environment=env, by=users["ops"], strategy=strategy,
                                        parameters={"pause": 0, "scale_down_delay": 0, **params}, dispatch=False)
    for gate in env.testing_gates.all():
        failed = 2 if gate.name in failing_gates else 0
        deploy_services.gate_report(deployment=dep, gate=gate, by=users["ops"], passed=240 - failed, failed=failed,
                                url=f"https://ci.penguinmails.local/runs/{release.version}/{gate.slug}",
                                dispatch=False)
    dep = engine.run_inline(dep.pk)
    if dep.status == "succeeded" and env.bake_seconds:
        _bake(dep)


def _bake(dep):
    """Let the trigger watch tick through the deployment's bake time (the clock moved on by time-machine),
    as beat would: healthy deployments get a quiet history; a simulated regression breaches, is sustained, and
    the deployment rolls back."""
    start = dep.finished_at
    tick = 30
    for offset in range(tick, dep.environment.bake_seconds + tick, tick):
        with time_machine.travel(start + dt.timedelta(seconds=offset), tick=False):
            report = watch.tick(dispatch=False)
        if report["actions"]:
            with time_machine.travel(start + dt.timedelta(seconds=offset + 5), tick=True):
                engine.run_inline(dep.pk)
            return
