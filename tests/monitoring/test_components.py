"""Components, groups and their status history through the services."""
import pytest

from monitoring.models import Component, ComponentGroup
from monitoring.statuspage import status as st
from monitoring.statuspage.components import (
    component_create,
    component_delete,
    component_set_status,
    component_update,
    group_create,
    group_delete,
    group_update,
)
from pmrelease import errors
from pmrelease.models import AuditEvent

pytestmark = pytest.mark.django_db


def test_component_set_status__manual_change__history_and_audit(ops, components):
    api = components["REST API"]
    component_set_status(component=api, status=st.DEGRADED, by=ops, reason="slow")
    assert list(api.status_changes.order_by("at", "id").values_list("new_status", flat=True)) == [
        st.OPERATIONAL, st.DEGRADED]
    assert AuditEvent.objects.filter(action="component.status", object_id=str(api.pk), reason="slow").exists()
    with pytest.raises(errors.ValidationFailed):
        component_set_status(component=api, status="broken", by=ops)


def test_component_create__initial_status__history_from_operational_and_audited(ops):
    billing = component_create(data={"name": "Billing", "status": st.MAJOR}, by=ops)
    assert Component.objects.get(pk=billing.pk).status == st.MAJOR
    assert list(billing.status_changes.order_by("at", "id").values_list("old_status", "new_status")) == [
        ("", st.OPERATIONAL), (st.OPERATIONAL, st.MAJOR)]
    actions = list(AuditEvent.objects.filter(object_id=str(billing.pk), object_type="monitoring.component")
                   .order_by("id").values_list("action", "after"))
    assert actions[0][0] == "component.create" and actions[0][1]["name"] == "Billing"
    assert actions[1] == ("component.status", {"status": st.MAJOR})


def test_component_update__one_field_changed__only_that_field_audited(ops, components):
    api = components["REST API"]
    component_update(component=api, data={"description": "Public API", "position": api.position}, by=ops)
    event = AuditEvent.objects.get(action="component.update", object_id=str(api.pk))
    assert (event.before, event.after) == ({"description": ""}, {"description": "Public API"})


@pytest.mark.parametrize("data", [{"status": st.MAJOR}, {"created_at": "2020-01-01T00:00:00Z"}])
def test_component_update__status_or_read_only_field__400_naming_it(ops, components, data):
    with pytest.raises(errors.ValidationFailed) as refused:
        component_update(component=components["REST API"], data=data, by=ops)
    assert set(refused.value.field_errors) == set(data)
    assert not AuditEvent.objects.filter(action="component.update").exists()


def test_group_update_and_delete__audited__non_empty_group_refused(ops, components):
    web = components["Dashboard"].group
    group_update(group=web, data={"description": "The dashboard and API"}, by=ops)
    assert AuditEvent.objects.get(action="componentgroup.update", object_id=str(web.pk)).after == {
        "description": "The dashboard and API"}
    with pytest.raises(errors.TransitionNotAllowed):
        group_delete(group=web, by=ops)
    empty = group_create(data={"name": "Spare"}, by=ops)
    pk = empty.pk
    group_delete(group=empty, by=ops)
    assert not ComponentGroup.objects.filter(pk=pk).exists()
    assert AuditEvent.objects.get(action="componentgroup.delete", object_id=str(pk)).before["name"] == "Spare"


def test_component_delete__developer__refused_then_operator_audited(users, ops, components):
    db, pk = components["Database"], components["Database"].pk
    with pytest.raises(errors.PermissionDenied):
        component_delete(component=db, by=users["dev"])
    component_delete(component=db, by=ops)
    assert not Component.objects.filter(pk=pk).exists()
    assert AuditEvent.objects.get(action="component.delete", object_id=str(pk)).before["name"] == "Database"
