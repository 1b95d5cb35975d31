"""Demo data for the status page (called by ``seed_demo``; idempotent).

Fills the page the way a real one looks: component groups, components in every status, a resolved incident
with its updates (and a postmortem), unresolved incidents, maintenance in progress and upcoming, and 90 days of
status history with a dozen past incidents so the uptime bars have real shape. Publishes the static site.
"""
import datetime as dt
import random

from django.db import transaction
from django.utils import timezone

from . import publishing
from . import status as st
from .models import (
    AffectedComponent,
    Component,
    ComponentGroup,
    ComponentStatusChange,
    Incident,
    IncidentPolicy,
    IncidentUpdate,
    Maintenance,
    MaintenanceUpdate,
    Policy,
)

GROUPS = [
    ("Sending", "Outbound e-mail: relays, scheduling and delivery.", [
        ("SMTP relay", "Outbound relay for campaign and transactional mail.", True),
        ("Campaign scheduler", "Queues and releases scheduled campaigns.", True),
    ]),
    ("Receiving", "Inbound mail, replies and bounces.", [
        ("Inbound MX", "Receives replies to campaigns.", False),
        ("Bounce processing", "Classifies bounces and suppresses bad addresses.", False),
    ]),
    ("Web app", "The PenguinMails dashboard and API.", [
        ("Dashboard", "app.penguinmails.com", True),
        ("REST API", "api.penguinmails.com", True),
        ("Analytics exports", "CSV and warehouse exports of campaign analytics.", False),
    ]),
    ("Infrastructure", "Shared services.", [
        ("Database", None, True),
        ("Object storage", "Attachments, templates and exports.", False),
    ]),
]

PAST = [  # (days ago, hour, duration minutes, component, status, impact, name)
    (83, 9, 95, "SMTP relay", st.PARTIAL, "major", "Delayed delivery to Microsoft domains"),
    (71, 14, 40, "Dashboard", st.DEGRADED, "minor", "Slow dashboard loading"),
    (64, 2, 300, "Bounce processing", st.MAJOR, "critical", "Bounce processing stopped"),
    (52, 18, 25, "REST API", st.MAJOR, "major", "API returning 502 errors"),
    (45, 11, 130, "Campaign scheduler", st.DEGRADED, "minor", "Scheduled campaigns sent late"),
    (37, 23, 70, "Inbound MX", st.PARTIAL, "major", "Replies delayed"),
    (29, 7, 45, "Database", st.DEGRADED, "minor", "Elevated query latency"),
    (21, 16, 210, "Analytics exports", st.PARTIAL, "minor", "Warehouse exports failing for some accounts"),
    (12, 10, 35, "SMTP relay", st.MAJOR, "critical", "Outbound relay unavailable"),
    (6, 20, 80, "Dashboard", st.PARTIAL, "major", "Login failures for SSO users"),
]


def _change(component, old, new, at, incident=None, maintenance=None):
    ComponentStatusChange.objects.create(component=component, old_status=old, new_status=new, at=at,
                                         incident=incident, maintenance=maintenance)


def _past_incident(components, *, start, minutes, name, impact, component_name, status, rng):
    component = components[component_name]
    end = start + dt.timedelta(minutes=minutes)
    identified = start + dt.timedelta(minutes=max(5, minutes // 4))
    monitoring = start + dt.timedelta(minutes=max(10, minutes * 2 // 3))
    incident = Incident.objects.create(
        name=name, status="resolved", impact=impact, published_at=start, started_at=start, identified_at=identified,
        monitoring_at=monitoring, resolved_at=end, created_at=start, updated_at=end)
    AffectedComponent.objects.create(incident=incident, component=component, status=status)
    steps = [
        ("investigating", start, f"We are investigating reports: {name.lower()}.",
         [{"code": str(component.pk), "name": component.name, "old_status": st.OPERATIONAL, "new_status": status}]),
        ("identified", identified, rng.choice([
            "The cause has been identified and a fix is being rolled out.",
            "A faulty configuration change was identified and is being reverted.",
            "An upstream provider issue was identified; we are rerouting traffic."]), None),
        ("monitoring", monitoring, "A fix has been deployed. We are monitoring the results.", None),
        ("resolved", end, "This incident has been resolved.",
         [{"code": str(component.pk), "name": component.name, "old_status": status, "new_status": st.OPERATIONAL}]),
    ]
    for state, at, body, changes in steps:
        IncidentUpdate.objects.create(incident=incident, status=state, body=body, affected_components=changes or [],
                                      created_at=at, display_at=at)
    _change(component, st.OPERATIONAL, status, start, incident=incident)
    _change(component, status, st.OPERATIONAL, end, incident=incident)
    return incident


@transaction.atomic
def _seed_page(now, envs):
    rng = random.Random(90)
    origin = now - dt.timedelta(days=91)
    components = {}
    for gpos, (gname, gdesc, members) in enumerate(GROUPS, start=1):
        group = ComponentGroup.objects.create(name=gname, description=gdesc, position=gpos, created_at=origin)
        for pos, (name, desc, production) in enumerate(members, start=1):
            component = Component.objects.create(name=name, description=desc or "", group=group, position=pos,
                                                 created_at=origin, updated_at=origin,
                                                 start_date=origin.date())
            if production and envs.get("production"):
                component.environments.add(envs["production"])
            _change(component, "", st.OPERATIONAL, origin)
            components[name] = component

    # 90 days of history: resolved incidents spread over the window.
    resolved = []
    for days_ago, hour, minutes, name, status, impact, title in PAST:
        start = (now - dt.timedelta(days=days_ago)).replace(hour=hour, minute=rng.randint(0, 59), second=0,
                                                            microsecond=0)
        resolved.append(_past_incident(components, start=start, minutes=minutes, name=title, impact=impact,
                                       component_name=name, status=status, rng=rng))
    # A recent one, three days ago.
    day = (now - dt.timedelta(days=3)).replace(hour=13, minute=5, second=0, microsecond=0)
    resolved.append(_past_incident(components, start=day, minutes=150, name="Elevated API error rates",
                                   impact="major", component_name="REST API", status=st.PARTIAL, rng=rng))
    worst = resolved[2]
    Incident.objects.filter(pk=worst.pk).update(
        status="postmortem", postmortem_published_at=worst.resolved_at + dt.timedelta(days=2),
        postmortem="A disk filled up on the bounce classifier's queue host. Alerting on queue depth was missing; "
                   "it now pages on-call at 70 % disk use, and the queue spills to object storage when full.")
    IncidentUpdate.objects.create(incident=worst, status="postmortem", body="We have published a postmortem.",
                                  created_at=worst.resolved_at + dt.timedelta(days=2),
                                  display_at=worst.resolved_at + dt.timedelta(days=2))

    # Completed maintenance in the past.
    for days_ago, name, comp in ((40, "Database version upgrade", "Database"), (15, "MX host rotation", "Inbound MX")):
        start = (now - dt.timedelta(days=days_ago)).replace(hour=5, minute=0, second=0, microsecond=0)
        end = start + dt.timedelta(hours=1)
        m = Maintenance.objects.create(name=name, status="completed", body=f"{name}. Short interruptions possible.",
                                       scheduled_for=start, scheduled_until=end, started_at=start, completed_at=end,
                                       created_at=start - dt.timedelta(days=7), updated_at=end)
        m.components.add(components[comp])
        for state, at, body in (("scheduled", start - dt.timedelta(days=7), m.body),
                                ("in_progress", start, "The scheduled maintenance is in progress."),
                                ("completed", end, "The scheduled maintenance has been completed.")):
            MaintenanceUpdate.objects.create(maintenance=m, status=state, body=body, created_at=at, display_at=at)
        _change(components[comp], st.OPERATIONAL, st.MAINTENANCE, start, maintenance=m)
        _change(components[comp], st.MAINTENANCE, st.OPERATIONAL, end, maintenance=m)

    # Now: unresolved incidents holding components in every non-operational status.
    def open_incident(name, impact, status_, started, held, updates):
        incident = Incident.objects.create(name=name, status=status_, impact=impact, published_at=started,
                                           started_at=started, created_at=started, updated_at=updates[-1][1],
                                           identified_at=started + dt.timedelta(minutes=20)
                                           if status_ != "investigating" else None)
        changes = []
        for comp, comp_status in held.items():
            component = components[comp]
            AffectedComponent.objects.create(incident=incident, component=component, status=comp_status)
            _change(component, component.status, comp_status, started, incident=incident)
            changes.append({"code": str(component.pk), "name": comp, "old_status": component.status,
                            "new_status": comp_status})
            Component.objects.filter(pk=component.pk).update(status=comp_status, updated_at=started)
            component.status = comp_status
        for index, (state, at, body) in enumerate(updates):
            IncidentUpdate.objects.create(incident=incident, status=state, body=body, created_at=at, display_at=at,
                                          affected_components=changes if index == 0 else [])
        return incident

    started = now - dt.timedelta(hours=2, minutes=10)
    open_incident("Delayed campaign sends and bounce processing", "major", "identified", started,
                  {"Campaign scheduler": st.DEGRADED, "Bounce processing": st.PARTIAL},
                  [("investigating", started, "Scheduled campaigns are leaving up to 20 minutes late and bounces "
                                              "are not being classified. We are investigating."),
                   ("identified", started + dt.timedelta(minutes=35),
                    "A backlog in the shared job queue is slowing both services. We are adding workers.")])
    started = now - dt.timedelta(minutes=40)
    open_incident("Analytics exports unavailable", "critical", "investigating", started,
                  {"Analytics exports": st.MAJOR},
                  [("investigating", started, "All analytics exports are failing. Campaign sending is not "
                                              "affected. We are investigating.")])

    # Maintenance in progress and upcoming.
    start = now - dt.timedelta(minutes=30)
    m = Maintenance.objects.create(name="Object storage migration", status="in_progress", started_at=start,
                                   body="Attachments move to the new storage cluster; uploads may be slow.",
                                   scheduled_for=start, scheduled_until=now + dt.timedelta(hours=1, minutes=30),
                                   created_at=now - dt.timedelta(days=5), updated_at=start)
    m.components.add(components["Object storage"])
    MaintenanceUpdate.objects.create(maintenance=m, status="scheduled", body=m.body,
                                     created_at=now - dt.timedelta(days=5), display_at=now - dt.timedelta(days=5))
    MaintenanceUpdate.objects.create(maintenance=m, status="in_progress", created_at=start, display_at=start,
                                     body="The scheduled maintenance is in progress.",
                                     affected_components=[{"code": str(components["Object storage"].pk),
                                                           "name": "Object storage", "old_status": st.OPERATIONAL,
                                                           "new_status": st.MAINTENANCE}])
    _change(components["Object storage"], st.OPERATIONAL, st.MAINTENANCE, start, maintenance=m)
    Component.objects.filter(pk=components["Object storage"].pk).update(status=st.MAINTENANCE, updated_at=start)

    upcoming_start = (now + dt.timedelta(days=3)).replace(hour=6, minute=0, second=0, microsecond=0)
    u = Maintenance.objects.create(name="Database failover test", body="We will fail the primary database over "
                                   "to its replica. Expect up to two minutes of read-only mode in the dashboard.",
                                   scheduled_for=upcoming_start, scheduled_until=upcoming_start + dt.timedelta(hours=1),
                                   remind_before=dt.timedelta(hours=24), created_at=now, updated_at=now)
    u.components.add(components["Database"], components["Dashboard"])
    MaintenanceUpdate.objects.create(maintenance=u, status="scheduled", body=u.body, created_at=now, display_at=now)

    for name, env in envs.items():
        if env.is_production:
            IncidentPolicy.objects.get_or_create(environment=env, defaults={"policy": Policy.DRAFT})
        elif name == "staging":
            IncidentPolicy.objects.get_or_create(environment=env, defaults={"policy": Policy.NONE})


def seed(*, envs, users, stdout, **_):
    """Create the demo status page once; publish the static site every time."""
    if not Component.objects.exists():
        _seed_page(timezone.now(), envs or {})
        stdout.write("status page: components, 90 days of history, incidents and maintenance created")
    changed = publishing.publish_site()
    stdout.write(f"status page: published to {publishing.site_root()} ({changed} files changed) — /status/")
