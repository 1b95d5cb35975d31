"""Incidents through their services: drafts, the FSM and its updates, overlapping holds, the incident policy and
the deployment engine's entry point."""
import pytest

from monitoring.models import Component, ComponentStatusChange, Incident, IncidentPolicy
from monitoring.statuspage import incidents
from monitoring.statuspage import status as st
from pmrelease import errors
from pmrelease.models import AuditEvent

pytestmark = pytest.mark.django_db


def _status(component):
    return Component.objects.get(pk=component.pk).status


def _open(ops, components, **kw):
    return incidents.incident_create(name="API errors", body="Investigating errors.", by=ops, impact="major",
                                     components={components["REST API"]: st.PARTIAL}, **kw)


def test_incident_create__published__components_move_first_update_records_changes(ops, components):
    incident = _open(ops, components)
    assert incident.status == "investigating" and incident.is_published
    assert _status(components["REST API"]) == st.PARTIAL
    update = incident.updates.get()
    assert update.status == "investigating" and update.body == "Investigating errors."
    assert update.affected_components == [{"code": str(components["REST API"].pk), "name": "REST API",
                                           "old_status": st.OPERATIONAL, "new_status": st.PARTIAL}]
    assert ComponentStatusChange.objects.filter(component=components["REST API"], new_status=st.PARTIAL,
                                                incident=incident).exists()
    assert AuditEvent.objects.filter(action="incident.create", object_id=str(incident.pk)).exists()


def test_incident_lifecycle__each_transition__adds_update_with_time_and_component_changes(ops, components):
    incident = _open(ops, components)
    incidents.incident_transition(incident=incident, name="identify", by=ops, body="Bad deploy found.",
                                  component_statuses={components["REST API"].pk: st.MAJOR})
    assert incident.status == "identified" and incident.identified_at is not None
    assert _status(components["REST API"]) == st.MAJOR
    incidents.incident_transition(incident=incident, name="monitor", by=ops, body="Rolled back; watching.",
                                  component_statuses={components["REST API"].pk: st.DEGRADED})
    assert incident.status == "monitoring" and incident.monitoring_at is not None
    incidents.incident_transition(incident=incident, name="resolve", by=ops, body="All good.")
    assert incident.status == "resolved" and incident.resolved_at is not None
    assert _status(components["REST API"]) == st.OPERATIONAL
    incidents.incident_transition(incident=incident, name="publish_postmortem", by=ops, body="Root cause: …")
    assert incident.status == "postmortem" and incident.postmortem == "Root cause: …"
    updates = list(incident.updates.order_by("created_at", "id"))
    assert [u.status for u in updates] == ["investigating", "identified", "monitoring", "resolved", "postmortem"]
    assert [u.affected_components[0]["new_status"] if u.affected_components else None for u in updates] == [
        st.PARTIAL, st.MAJOR, st.DEGRADED, st.OPERATIONAL, None]
    assert all(u.created_at for u in updates)
    actions = set(AuditEvent.objects.filter(object_id=str(incident.pk), object_type="monitoring.incident")
                  .values_list("action", flat=True))
    assert {"incident.identify", "incident.monitor", "incident.resolve", "incident.publish_postmortem"} <= actions


ALLOWED = {"investigating": {"identify", "monitor", "resolve"}, "identified": {"monitor", "resolve"},
           "monitoring": {"resolve"}, "resolved": {"publish_postmortem"}, "postmortem": set()}
PATH = {"investigating": [], "identified": ["identify"], "monitoring": ["monitor"], "resolved": ["resolve"],
        "postmortem": ["resolve", "publish_postmortem"]}


@pytest.mark.parametrize("state", list(ALLOWED))
@pytest.mark.parametrize("name", list(incidents.INCIDENT_TRANSITIONS))
def test_incident_transition__every_state_and_transition__allowed_or_409(state, name, ops, components):
    incident = _open(ops, components)
    for step in PATH[state]:
        incidents.incident_transition(incident=incident, name=step, by=ops, body=step)
    if name in ALLOWED[state]:
        incidents.incident_transition(incident=incident, name=name, by=ops, body="go")
        assert incident.status == incidents.INCIDENT_TRANSITIONS[name]
    else:
        with pytest.raises(errors.TransitionNotAllowed):
            incidents.incident_transition(incident=incident, name=name, by=ops, body="go")
        assert Incident.objects.get(pk=incident.pk).status == state


def test_incident_resolve__overlapping_incident_on_same_component__component_stays_held(ops, components):
    api = components["REST API"]
    first = _open(ops, components)
    second = incidents.incident_create(name="API slow", body="Slow.", by=ops, impact="minor",
                                       components={api: st.DEGRADED})
    assert _status(api) == st.PARTIAL  # the worst hold wins
    incidents.incident_transition(incident=first, name="resolve", by=ops, body="First fixed.")
    assert _status(api) == st.DEGRADED  # the second incident still holds it
    incidents.incident_transition(incident=second, name="resolve", by=ops, body="Second fixed.")
    assert _status(api) == st.OPERATIONAL


def test_incident_add_update__no_status_change__public_update_and_audit(ops, components):
    incident = _open(ops, components)
    update = incidents.incident_add_update(incident=incident, body="Still digging.", by=ops)
    assert update.status == "investigating" and incident.updates.count() == 2
    assert AuditEvent.objects.filter(action="incident.update", object_id=str(incident.pk)).exists()


def test_incident_transition__empty_body__400_and_nothing_changes(ops, components):
    incident = _open(ops, components)
    with pytest.raises(errors.ValidationFailed):
        incidents.incident_transition(incident=incident, name="resolve", by=ops, body="  ")
    assert Incident.objects.get(pk=incident.pk).status == "investigating"


def test_incident_create__developer__permission_denied(users, components):
    with pytest.raises(errors.PermissionDenied):
        incidents.incident_create(name="x", body="y", by=users["dev"])


def test_incident_draft__not_published__components_untouched_until_publish(ops, components):
    draft = _open(ops, components, publish=False)
    assert not draft.is_published and _status(components["REST API"]) == st.OPERATIONAL
    incidents.incident_publish(incident=draft, by=ops)
    assert _status(components["REST API"]) == st.PARTIAL
    assert draft.updates.get().affected_components[0]["new_status"] == st.PARTIAL
    with pytest.raises(errors.TransitionNotAllowed):
        incidents.incident_publish(incident=draft, by=ops)


# --- the deployment engine's entry point -------------------------------------------------------------------
def _link(components, env):
    for name in ("REST API", "Dashboard"):
        components[name].environments.add(env)


def test_incident_for_deployment__production_default_policy__unpublished_draft_on_linked_components(
        components, envs, users):
    _link(components, envs["production"])
    incident = incidents.incident_for_deployment(environment=envs["production"], kind="failed",
                                                 detail="Deployment #7 of 2.1.0 failed: step 'deploy' failed: 503",
                                                 by=users["ops"])
    assert incident is not None and not incident.is_published
    assert not incident.components.exists()  # proposed, not set
    ids = {str(components[n].pk) for n in ("REST API", "Dashboard")}
    assert incident.proposed_components == dict.fromkeys(ids, st.PARTIAL)
    assert _status(components["REST API"]) == st.OPERATIONAL
    assert incident.internal_notes == "Deployment #7 of 2.1.0 failed: step 'deploy' failed: 503"
    assert "2.1.0" not in incident.name + incident.updates.get().body
    event = AuditEvent.objects.get(action="incident.from_deployment", object_id=str(incident.pk))
    assert event.after["policy"] == "draft" and event.actor_username == "ops"


def test_incident_for_deployment__non_production_default__nothing(components, envs):
    assert incidents.incident_for_deployment(environment=envs["staging"], kind="rolled_back_automatically",
                                             detail="y") is None
    assert not Incident.objects.exists()


@pytest.mark.parametrize("kind,expected,impact", [("rolled_back_automatically", st.OPERATIONAL, "minor"),
                                                  ("failed", st.PARTIAL, "major")])
def test_incident_for_deployment__publish_policy__published_with_the_proposals(kind, expected, impact, components,
                                                                               envs, ops):
    _link(components, envs["production"])
    incidents.incident_policy_set(environment=envs["production"], policy="publish", by=ops)
    incident = incidents.incident_for_deployment(environment=envs["production"], kind=kind,
                                                 detail="simulated /healthz: 503 (injected failure)")
    assert incident.is_published and incident.impact == impact
    assert _status(components["REST API"]) == expected and _status(components["Dashboard"]) == expected
    assert "injected" not in incident.name + incident.updates.get().body


def test_incident_for_deployment__none_policy_on_production__nothing(components, envs, ops):
    IncidentPolicy.objects.create(environment=envs["production"], policy="none")
    assert incidents.incident_for_deployment(environment=envs["production"], kind="failed", detail="y") is None


def test_incident_policy_set__create_then_change__one_row_audited_as_set(envs, ops):
    incidents.incident_policy_set(environment=envs["staging"], policy="publish", by=ops)
    row = incidents.incident_policy_set(environment=envs["staging"], policy="none", by=ops)
    assert list(IncidentPolicy.objects.values_list("pk", "policy")) == [(row.pk, "none")]
    assert incidents.incident_policy_for(envs["staging"]) == "none"
    events = AuditEvent.objects.filter(action="incidentpolicy.set", object_id=str(row.pk)).order_by("id")
    assert [(e.before, e.after) for e in events] == [(None, {"policy": "publish"}),
                                                     ({"policy": "publish"}, {"policy": "none"})]


def _engine_draft(components, envs, kind="rolled_back_automatically"):
    _link(components, envs["production"])
    return incidents.incident_for_deployment(
        environment=envs["production"], kind=kind,
        detail="Automatic rollback of 2.2.1 on production (deployment #9): simulated /healthz: 503 (injected failure)")


def test_publish_draft__operator_confirms_other_statuses__those_set_not_the_proposals(components, envs, ops):
    incident = _engine_draft(components, envs)
    api, dashboard = components["REST API"], components["Dashboard"]
    incidents.incident_publish(incident=incident, by=ops, component_statuses={api.pk: st.DEGRADED})
    incident.refresh_from_db()
    assert incident.is_published and incident.proposed_components == {}
    assert _status(api) == st.DEGRADED and _status(dashboard) == st.OPERATIONAL
    assert list(incident.components.values_list("name", flat=True)) == ["REST API"]
    event = AuditEvent.objects.get(action="incident.publish", object_id=str(incident.pk))
    assert event.after["confirmed"] == {str(api.pk): st.DEGRADED}
    assert event.after["proposed"] == {str(api.pk): st.OPERATIONAL, str(dashboard.pk): st.OPERATIONAL}


def test_publish_draft__nothing_confirmed__proposals_not_applied(components, envs, ops):
    incident = _engine_draft(components, envs, kind="failed")
    incidents.incident_publish(incident=incident, by=ops)
    assert _status(components["REST API"]) == st.OPERATIONAL and not incident.components.exists()


def test_publish_draft__unknown_status__refused_nothing_published(components, envs, ops):
    incident = _engine_draft(components, envs)
    with pytest.raises(errors.ValidationFailed):
        incidents.incident_publish(incident=incident, by=ops, component_statuses={components["REST API"].pk: "down"})
    incident.refresh_from_db()
    assert not incident.is_published


def test_published_engine_draft__public_documents__no_internal_detail(components, envs, ops, client):
    incident = _engine_draft(components, envs)
    incidents.incident_publish(incident=incident, by=ops, component_statuses={components["REST API"].pk: st.DEGRADED})
    responses = [client.get(url) for url in (
        "/status/", "/status/feed.atom", "/status/api/v2/incidents.json", f"/status/incidents/{incident.pk}/")]
    assert [r.status_code for r in responses] == [200, 200, 200, 200]
    pages = [r.content.decode() for r in responses]
    assert all(incident.name in page for page in pages)
    for page in pages:
        assert "injected" not in page and "healthz" not in page and "2.2.1" not in page
