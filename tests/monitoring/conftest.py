"""Fixtures of the status page tests: an isolated publish directory and a page in every status."""
import datetime as dt

import pytest
from django.utils import timezone

from monitoring.statuspage import incidents
from monitoring.statuspage import status as st
from monitoring.statuspage.components import component_create, group_create
from monitoring.statuspage.maintenance import maintenance_create, maintenance_transition


@pytest.fixture(autouse=True)
def _local_webhooks(settings):
    """The tests' webhook receivers listen on 127.0.0.1 (test_webhook_url__* check the refusal)."""
    settings.STATUS_WEBHOOK_ALLOW_PRIVATE = True


@pytest.fixture(autouse=True)
def publish_dir(settings, tmp_path):
    settings.STATUS_PUBLISH_DIR = tmp_path / "status-site"
    settings.STATUS_PUBLIC_URL = "http://testserver/status"
    return settings.STATUS_PUBLISH_DIR


@pytest.fixture
def ops(users):
    return users["ops"]


@pytest.fixture
def components(ops):
    """Two groups, five components."""
    api = group_create(data={"name": "Web app", "position": 1}, by=ops)
    mail = group_create(data={"name": "Mail", "position": 2}, by=ops)
    made = {}
    for name, group, pos in (("Dashboard", api, 1), ("REST API", api, 2), ("SMTP relay", mail, 1),
                             ("Inbound MX", mail, 2), ("Database", None, 3)):
        made[name] = component_create(data={"name": name, "group": group, "position": pos}, by=ops)
    return made


@pytest.fixture
def full_page(components, ops, envs):
    """Components in every status, an unresolved incident, a resolved one, maintenance active and upcoming."""
    c = components
    resolved = incidents.incident_create(name="Slow dashboard", body="Looking into it.", by=ops, impact="minor",
                                         components={c["Dashboard"]: st.DEGRADED})
    incidents.incident_transition(incident=resolved, name="resolve", by=ops, body="Fixed.")
    open_ = incidents.incident_create(name="Mail delays", body="Mail is delayed.", by=ops, impact="major",
                                      components={c["SMTP relay"]: st.PARTIAL, c["REST API"]: st.DEGRADED})
    incidents.incident_create(name="Inbound down", body="Inbound MX down.", by=ops, impact="critical",
                              components={c["Inbound MX"]: st.MAJOR})
    now = timezone.now()
    active = maintenance_create(data={
        "name": "DB upgrade", "body": "Upgrading.", "scheduled_for": now - dt.timedelta(minutes=5),
        "scheduled_until": now + dt.timedelta(hours=1), "components": [c["Database"]]}, by=ops)
    maintenance_transition(maintenance=active, name="start", by=ops)
    upcoming = maintenance_create(data={
        "name": "Failover test", "body": "Failover.", "scheduled_for": now + dt.timedelta(days=2),
        "scheduled_until": now + dt.timedelta(days=2, hours=1), "components": [c["Dashboard"]]}, by=ops)
    return {"resolved": resolved, "open": open_, "active": active, "upcoming": upcoming}


@pytest.fixture(autouse=True)
def no_stray_tasks(request, monkeypatch):
    """Keep the status page's on-commit tasks off the shared broker (other apps' real-worker tests would pick
    them up); only test_integration runs them on a real worker."""
    if request.module.__name__.endswith("test_integration"):
        return
    from monitoring import tasks

    for task in (tasks.publish_status_site, tasks.notify_subscribers, tasks.send_confirmation, tasks.deliver):
        monkeypatch.setattr(task, "delay", lambda *args, **kwargs: None)
