"""The audit trail: append-only, hash-chained, written for every action."""
import pytest
from django.db import DatabaseError, connection, transaction

from pmrelease import audit, errors
from pmrelease.models import AppendOnlyError, AuditEvent
from releases import services
from releases.deploy import engine
from releases.deploy import services as deployments
from releases.models import DeploymentTarget
from tests.factories import make_release

pytestmark = pytest.mark.django_db


def test_audit_event__save_existing__refused():
    event = audit.record(action="test.action", object_type="x", object_id="1")
    event.reason = "rewritten"
    with pytest.raises(AppendOnlyError):
        event.save()


def test_audit_event__delete__refused():
    event = audit.record(action="test.action", object_type="x", object_id="1")
    with pytest.raises(AppendOnlyError):
        event.delete()
    with pytest.raises(AppendOnlyError):
        AuditEvent.objects.all().delete()
    with pytest.raises(AppendOnlyError):
        AuditEvent.objects.filter(pk=event.pk).update(reason="x")
    assert AuditEvent.objects.filter(pk=event.pk, reason="").exists()


def test_audit_event__raw_sql_update__refused_by_database_trigger():
    event = audit.record(action="test.action", object_type="x", object_id="1")
    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("UPDATE pmrelease_auditevent SET reason = 'forged' WHERE id = %s", [event.pk])
    assert AuditEvent.objects.get(pk=event.pk).reason == ""


@pytest.mark.skipif(connection.vendor != "postgresql", reason="row DELETE trigger is PostgreSQL-only")
def test_audit_event__raw_sql_delete__refused_on_postgresql():
    event = audit.record(action="test.action", object_type="x", object_id="1")
    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("DELETE FROM pmrelease_auditevent WHERE id = %s", [event.pk])
    assert AuditEvent.objects.filter(pk=event.pk).exists()


def test_verify_chain__untouched__ok():
    for i in range(5):
        audit.record(action="test.action", object_type="x", object_id=str(i), before={"a": i}, after={"a": i + 1},
                     reason=f"r{i}")
    report = audit.verify()
    assert report.ok and report.checked == 5 and report.breaks == []


def test_verify_chain__forged_row_inserted__detected():
    audit.record(action="test.action", object_type="x", object_id="1")
    good = audit.record(action="test.action", object_type="x", object_id="2")
    with connection.cursor() as cursor:  # a forger with database access appends a row without the chain
        cursor.execute(
            "INSERT INTO pmrelease_auditevent (created_at, actor_username, action, object_type, object_id, "
            "object_repr, reason, request_id, prev_hash, hash, scheme) VALUES (%s, 'mallory', 'release.approve', "
            "'releases.release', '9', '', '', '', %s, %s, 2)",
            [good.created_at, good.hash, "f" * 64])
    audit.record(action="test.action", object_type="x", object_id="3")
    report = audit.verify()
    assert not report.ok and report.checked == 4
    forged = AuditEvent.objects.get(actor_username="mallory")
    assert [b.event_id for b in report.breaks] == [forged.pk]


def test_audit__every_release_action__recorded_with_actor_and_reason(users, envs):
    DeploymentTarget.objects.create(environment=envs["development"], backend="simulation")
    release = make_release(by=users["dev"], envs=[envs["development"]])
    services.release_update(release=release, data={"title": "Renamed"}, by=users["dev"])
    services.release_reject(release=release, by=users["approver"], reason="needs tests")
    services.release_approve(release=release, by=users["approver2"], comment="fine now")
    dep = deployments.deployment_create(release=release, environment=envs["development"], by=users["ops"],
                                        dispatch=False)
    engine.run_inline(dep.pk)
    rows = list(AuditEvent.objects.for_object(release).order_by("id").values_list("action", "actor_username", "reason"))
    assert rows == [
        ("release.create", "dev", ""),
        ("release.update", "dev", ""),
        ("release.reject", "approver", "needs tests"),
        ("release.approval", "approver2", "fine now"),
        ("release.approve", "approver2", "quorum met (1 of 1)"),
        ("release.deploy", "ops", f"deployment #{dep.pk} to development started"),
        ("release.complete", "system", "deployed: runs in development"),
    ]
    transition = AuditEvent.objects.get(action="release.complete")
    assert transition.before == {"status": "deploying"} and transition.after == {"status": "deployed"}
    assert audit.verify().ok


def test_audit__failed_operation__leaves_no_row(users, envs):
    release = make_release(by=users["planner"], envs=[envs["production"]])
    services.release_approve(release=release, by=users["approver"])
    count = AuditEvent.objects.count()
    with pytest.raises(errors.PermissionDenied):  # developers have no production access
        deployments.deployment_create(release=release, environment=envs["production"], by=users["dev"])
    assert AuditEvent.objects.count() == count


def test_request_id__from_header__stored_on_event(client, users, envs):
    release = make_release(by=users["dev"], envs=[envs["staging"]])
    client.force_login(users["approver"])
    response = client.post(f"/api/v1/releases/{release.pk}/approve/", {}, HTTP_X_REQUEST_ID="req-42",
                           content_type="application/json")
    assert response["X-Request-ID"] == "req-42"
    assert AuditEvent.objects.filter(action="release.approve").get().request_id == "req-42"
