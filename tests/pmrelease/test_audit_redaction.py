"""No secret in the audit trail: secret-looking keys, bearer credentials and URL passwords in before/after
snapshots are replaced by a keyed fingerprint when the row is written; a deployment target's token never
reaches the trail, its API or its CSV."""
import json

import pytest

from pmrelease import audit
from pmrelease.models import AuditEvent
from releases import environments

pytestmark = pytest.mark.django_db

K8S_TOKEN = "eyJhbGciOiJSUzI1NiIsImtpZCI6Ik-kubernetes-bearer-token"


@pytest.mark.parametrize("name", ["token", "password", "secret", "authorization", "key", "api_key", "apiKey",
                                  "X-Auth-Token", "clientSecret", "DB_PASSWORD", "private_key", "Authorization",
                                  "credentials", "webhook_secret"])
def test_is_secret_name__secret_looking__true(name):
    assert audit.is_secret_name(name)


@pytest.mark.parametrize("name", ["title", "host", "namespace", "monkey", "version",
                                  "description", "keyboard"])
def test_is_secret_name__ordinary__false(name):
    assert not audit.is_secret_name(name)


def test_record__secrets_in_snapshots__redacted_at_write_time():
    event = audit.record(
        action="test.secrets", object_type="x", object_id="1",
        before={"config": {"host": "https://k8s.example", "token": "old-token-value"}, "password": ""},
        after={"config": {"host": "https://k8s.example", "token": "new-token-value"},
               "headers": [{"Authorization": "Basic dXNlcjpwYXNz"}], "notify": "Bearer abcdefghijklmnop",
               "dsn": "postgres://app:s3cr3t-pw@db.example/app", "env": {"DEPLOY_API_KEY": "k-123456789"}})
    stored = AuditEvent.objects.get(pk=event.pk)
    text = json.dumps([stored.before, stored.after])
    for secret in ("old-token-value", "new-token-value", "dXNlcjpwYXNz", "abcdefghijklmnop", "s3cr3t-pw",
                   "k-123456789"):
        assert secret not in text
    assert stored.after["config"]["host"] == "https://k8s.example"
    assert stored.after["dsn"].startswith("postgres://app:[redacted ") and stored.after["dsn"].endswith("@db.example/app")
    assert stored.before["password"] == ""  # an empty secret stays visible ("removed")
    # a changed secret shows as changed, the same secret as the same fingerprint
    assert stored.before["config"]["token"] != stored.after["config"]["token"]
    assert audit.fingerprint("new-token-value") == stored.after["config"]["token"]
    assert audit.verify().ok


def test_target_save__kubernetes_token__never_in_the_trail_api_or_csv(users, envs, api):
    config = {"host": "https://k8s.example:6443", "token": K8S_TOKEN, "namespace": "pm", "deployment": "app",
              "container": "app", "image": "registry.example/app:{version}"}
    environments.target_save(environment=envs["staging"], data={"backend": "kubernetes", "config": config},
                             by=users["admin"])
    environments.target_save(environment=envs["staging"],
                             data={"config": {**config, "token": K8S_TOKEN + "-rotated"}}, by=users["admin"])
    rows = AuditEvent.objects.filter(action="environment.deploymenttarget")
    assert rows.count() == 2
    assert all(K8S_TOKEN not in json.dumps([r.before, r.after]) for r in rows)
    client = api(users["admin"])
    listing = client.get("/api/v1/audit-events/", {"action": "environment.deploymenttarget"})
    assert listing.status_code == 200 and K8S_TOKEN not in listing.content.decode()
    export = client.get("/api/v1/audit-events/export/")
    assert K8S_TOKEN not in b"".join(export.streaming_content).decode()
