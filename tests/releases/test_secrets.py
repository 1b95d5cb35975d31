"""Secret references: rotation arithmetic, Vault KV v2 metadata over real HTTP (OpenBao dev server), role-based
audited resolution, beat's owner notices, the API."""
from datetime import UTC, datetime, timedelta

import hvac
import pytest
from django.core import mail

from pmrelease import errors
from pmrelease.models import AuditEvent, Notification
from releases import rotation, secrets
from releases.models import SecretReference
from tests.vault_support import ROOT_TOKEN, needs_bao

T0 = datetime(2026, 1, 1, tzinfo=UTC)


# --- arithmetic --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("days_since, state", [
    (0, "ok"), (22.9, "ok"), (23, "due"), (29.9, "due"), (30, "in_grace"), (36.9, "in_grace"), (37, "overdue"),
    (400, "overdue"),
])
def test_rotation__seed_policy_30d_grace_7d__state(days_since, state):
    found = rotation.rotation(last_rotated=T0, frequency_days=30, grace_days=7, now=T0 + timedelta(days=days_since))
    assert found.state == state
    assert found.due_at == T0 + timedelta(days=30) and found.grace_ends_at == T0 + timedelta(days=37)


def test_rotation__never_rotated__unknown_and_bad_policy_refused():
    assert rotation.rotation(last_rotated=None, frequency_days=30, grace_days=7, now=T0).state == "unknown"
    with pytest.raises(ValueError):
        rotation.rotation(last_rotated=T0, frequency_days=0, grace_days=7, now=T0)
    assert rotation.parse_duration_days("30d") == 30 and rotation.parse_duration_days("2w") == 14
    with pytest.raises(ValueError, match="30d"):
        rotation.parse_duration_days("thirty")


# --- references ----------------------------------------------------------------------------------------------
def test_reference_save__bad_reference__400_naming_the_form(users):
    with pytest.raises(errors.ValidationFailed) as exc:
        secrets.reference_save(data={"name": "db", "reference": "hunter2"}, by=users["admin"])
    assert "vault://" in exc.value.field_errors["reference"][0]
    with pytest.raises(errors.ValidationFailed):
        secrets.reference_save(data={"name": "db", "reference": "vault://nomount#key"}, by=users["admin"])


def test_reference_save__needs_admin_access_to_its_environment(users, envs):
    with pytest.raises(errors.PermissionDenied):
        secrets.reference_save(data={"name": "db", "reference": "env://DB_PASSWORD",
                                     "environment": envs["production"]}, by=users["dev"])
    ref = secrets.reference_save(data={"name": "db", "reference": "env://DB_PASSWORD",
                                       "environment": envs["production"]}, by=users["admin"])
    assert ref.rotation_frequency_days == 30 and ref.grace_period_days == 7 and ref.rotation_automatic
    assert AuditEvent.objects.filter(action="secret_reference.create").exists()


def test_resolve__env_reference__role_based_and_audited_without_the_value(users, monkeypatch):
    monkeypatch.setenv("PMR_TEST_SECRET", "s3cr3t-value-123")
    assert secrets.resolve("env://PMR_TEST_SECRET", by=users["security"], purpose="check") == "s3cr3t-value-123"
    assert secrets.resolve("env://PMR_TEST_SECRET", purpose="deployment #1") == "s3cr3t-value-123"  # the worker
    with pytest.raises(errors.PermissionDenied):
        secrets.resolve("env://PMR_TEST_SECRET", by=users["dev"], purpose="curious")
    actions = list(AuditEvent.objects.filter(object_type="secret").order_by("id").values_list("action", flat=True))
    assert actions == ["secret.resolve", "secret.resolve", "secret.resolve_refused"]
    assert not AuditEvent.objects.filter(after__icontains="s3cr3t").exists()
    assert secrets.redact("connected with s3cr3t-value-123 ok", ["s3cr3t-value-123"]) == "connected with •••• ok"


def test_check_rotation__owner_told_once_per_state(users, settings):
    settings.VAULT_ADDR = ""
    ref = secrets.reference_save(data={"name": "smtp", "reference": "env://SMTP_PASSWORD"}, by=users["admin"])
    SecretReference.objects.filter(pk=ref.pk).update(owner=users["ops"], last_rotated_at=T0)
    counts = secrets.check_rotation(now=T0 + timedelta(days=31))
    assert counts == {"in_grace": 1}
    secrets.check_rotation(now=T0 + timedelta(days=32))
    notices = Notification.objects.filter(event="secret.rotation")
    assert notices.count() == 1 and notices.get().recipients == ["ops@example.com"]
    assert "in its grace period" in notices.get().title
    secrets.check_rotation(now=T0 + timedelta(days=40))
    assert Notification.objects.filter(event="secret.rotation").count() == 2
    report = secrets.rotation_report(now=T0 + timedelta(days=40))
    assert [r.name for r, _ in report["overdue"]] == ["smtp"]
    del mail.outbox[:]


# --- Vault KV v2 over real HTTP ----------------------------------------------------------------------------------
@needs_bao
def test_vault__kv2_metadata_and_value__read_with_hvac(bao_server, users, settings):
    settings.VAULT_ADDR, settings.VAULT_TOKEN = bao_server, ROOT_TOKEN
    client = hvac.Client(url=bao_server, token=ROOT_TOKEN)
    client.secrets.kv.v2.create_or_update_secret(path="pm/db-meta", secret={"password": "first-value-1"},
                                                 mount_point="secret")
    client.secrets.kv.v2.create_or_update_secret(path="pm/db-meta", secret={"password": "second-value-2"},
                                                 mount_point="secret")
    client.secrets.kv.v2.update_metadata(path="pm/db-meta", mount_point="secret",
                                         custom_metadata={"owner": "ops", "rotation": "30d"})
    meta = secrets.vault_metadata("vault://secret/pm/db-meta#password")
    assert meta["version"] == 2 and meta["custom_metadata"] == {"owner": "ops", "rotation": "30d"}
    assert abs((datetime.now(UTC) - meta["created_time"]).total_seconds()) < 120

    ref = secrets.reference_save(data={"name": "db", "reference": "vault://secret/pm/db-meta#password"},
                                 by=users["admin"])
    ref = secrets.refresh(ref)
    assert (ref.backend_version, ref.last_rotated_at, ref.check_error) == (2, meta["created_time"], "")
    assert secrets.rotation_of(ref).state == "ok"
    assert AuditEvent.objects.filter(action="secret_reference.rotated", object_id=str(ref.pk)).exists()
    assert secrets.resolve(ref.reference, by=users["ops"], purpose="test") == "second-value-2"
    with pytest.raises(secrets.SecretUnavailable, match="no key"):
        secrets.resolve("vault://secret/pm/db-meta#nope", by=users["ops"], purpose="test")


@needs_bao
def test_vault__missing_secret_or_bad_token__recorded_as_check_error(bao_server, users, settings):
    settings.VAULT_ADDR, settings.VAULT_TOKEN = bao_server, "not-a-token"
    ref = secrets.reference_save(data={"name": "gone", "reference": "vault://secret/pm/none#k"}, by=users["admin"])
    ref = secrets.refresh(ref)
    assert ref.check_error.startswith("Vault refused or failed") and ref.last_rotated_at is None


# --- API -------------------------------------------------------------------------------------------------------
def test_secret_reference_api__create_list_rotation(users, api, envs):
    client = api(users["admin"])
    made = client.post("/api/v1/secret-references/", {"name": "db", "reference": "vault://secret/pm/db#password",
                                                       "environment": "production"}, format="json")
    assert made.status_code == 201, made.json()
    assert made.json()["owner"] == "admin" and made.json()["rotation"]["state"] == "unknown"
    bad = client.post("/api/v1/secret-references/", {"name": "x", "reference": "plain"}, format="json")
    assert bad.status_code == 400 and "reference" in bad.json()
    assert client.get("/api/v1/secret-references/rotation/").json()["unknown"] == ["db"]
    assert api(users["dev"]).post("/api/v1/secret-references/", {"name": "y", "reference": "env://Y",
                                                                 "environment": "production"},
                                  format="json").status_code == 403
