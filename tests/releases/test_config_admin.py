"""Configuration admin: the per-section editor (validation errors on the fields), the diff and drift views,
read-only versions, secret references through the service."""
import pytest
from django.test import Client

from pmrelease.models import AuditEvent
from releases import configuration
from releases.models import ConfigVersion, SecretReference


@pytest.fixture
def browser(users):
    def login(name):
        client = Client()
        client.force_login(users[name])
        return client

    return login


def _post_database(client, **overrides):
    data = {"host": "db.staging", "port": "5432", "database": "pm", "ssl": "on", "user": "pm",
            "password": "vault://secret/pm/db#password", "connectionPool__min": "2", "connectionPool__max": "10",
            "connectionPool__idleTimeoutMillis": "30000", "comment": "from the admin", **overrides}
    return client.post("/admin/releases/configversion/edit/staging/database/", data)


def test_editor__section_form_saves_new_version_through_service(browser, envs):
    client = browser("admin")
    page = client.get("/admin/releases/configversion/edit/staging/database/")
    assert page.status_code == 200
    html = page.content.decode()
    assert 'name="connectionPool__max"' in html and "<textarea" not in html.split("cfg-form")[1].split("</form>")[0]
    response = _post_database(client)
    assert response.status_code == 302
    version = ConfigVersion.objects.get(environment=envs["staging"])
    assert version.document["database"]["host"] == "db.staging" and version.comment == "from the admin"
    assert AuditEvent.objects.filter(action="environment.config").exists()


def test_editor__invalid_pool__error_on_the_field_and_nothing_saved(browser):
    response = _post_database(browser("admin"), connectionPool__min="5", connectionPool__max="2")
    assert response.status_code == 200
    html = response.content.decode()
    assert "must be ≥ min (5)" in html
    assert not ConfigVersion.objects.exists()


def test_editor__secret_value_in_reference_field__refused(browser):
    response = _post_database(browser("admin"), password="hunter2-plain")
    assert "must be a secret reference" in response.content.decode()
    assert not ConfigVersion.objects.exists()


def test_editor__without_admin_access__read_only_and_post_403(browser, envs):
    client = browser("dev")
    page = client.get("/admin/releases/configversion/edit/staging/database/")
    assert page.status_code == 200 and "Read-only" in page.content.decode()
    assert _post_database(client).status_code == 403
    assert not ConfigVersion.objects.exists()
    assert client.get("/admin/releases/configversion/edit/production/database/").status_code == 404  # unseen


def test_editor__features_rows(browser, envs):
    client = browser("admin")
    response = client.post("/admin/releases/configversion/edit/staging/features/", {
        "features-TOTAL_FORMS": "1", "features-INITIAL_FORMS": "0", "features-0-name": "send-time",
        "features-0-enabled": "on", "features-0-percentage": "25"})
    assert response.status_code == 302
    assert configuration.current(envs["staging"]).document["features"] == {
        "send-time": {"enabled": True, "percentage": 25.0, "conditions": []}}


def test_compare_and_drift_views(browser, envs, users):
    from changes.models import EnvironmentChangePolicy

    EnvironmentChangePolicy.objects.create(environment=envs["production"], requires_change=False)
    admin = users["admin"]
    configuration.config_save(environment=envs["staging"], document={"security": {"mfaRequired": False}}, by=admin)
    configuration.config_save(environment=envs["staging"], by=admin,
                              document={"security": {"mfaRequired": False}, "database": {"host": "db2"}})
    configuration.config_save(environment=envs["production"], document={}, by=admin)
    client = browser("admin")
    page = client.get("/admin/releases/configversion/compare/?left=staging@1&right=staging@2").content.decode()
    assert "database.host" in page and "db2" in page and "1 difference" in page
    page = client.get("/admin/releases/configversion/compare/?left=staging&right=production").content.decode()
    assert "security.mfaRequired" in page and "must match" in page
    page = client.get("/admin/releases/configversion/drift/").content.decode()
    assert "security.mfaRequired" in page and "1 key drifting" in page
    version = ConfigVersion.objects.filter(environment=envs["staging"]).first()
    assert client.get(f"/admin/releases/configversion/{version.pk}/change/").status_code == 200
    assert client.post(f"/admin/releases/configversion/{version.pk}/delete/").status_code == 403


def test_secret_reference_admin__saves_through_service(browser):
    client = browser("admin")
    response = client.post("/admin/releases/secretreference/add/", {
        "name": "smtp", "reference": "vault://secret/pm/smtp#password", "rotation_automatic": "on",
        "rotation_frequency_days": "30", "grace_period_days": "7"})
    assert response.status_code == 302
    assert SecretReference.objects.get().reference == "vault://secret/pm/smtp#password"
    assert AuditEvent.objects.filter(action="secret_reference.create").exists()
    listing = client.get("/admin/releases/secretreference/").content.decode()
    assert "unknown" in listing


def test_version_page__document_with_conditions__shown(browser, envs, users):
    version, _ = configuration.config_save(environment=envs["staging"], by=users["admin"], document={
        "features": {"beta": {"enabled": True, "conditions": [{"attribute": "plan", "values": ["pro"]}]}}})
    page = browser("admin").get(f"/admin/releases/configversion/{version.pk}/change/")
    assert page.status_code == 200
    assert "features.beta.conditions" in page.content.decode() and "&#x27;plan&#x27;" in page.content.decode()


def test_policy__set_from_editor_through_service(browser, envs):
    from releases.models import ConfigPolicy

    client = browser("admin")
    assert client.post("/admin/releases/configversion/policy/staging/",
                       {"require_pinned_match": "on"}).status_code == 302
    assert ConfigPolicy.objects.get(environment=envs["staging"]).require_pinned_match
    assert AuditEvent.objects.filter(action="environment.config_policy").exists()
    assert browser("dev").post("/admin/releases/configversion/policy/staging/", {}).status_code == 302  # refused
    assert ConfigPolicy.objects.get(environment=envs["staging"]).require_pinned_match  # unchanged
    assert browser("dev").get("/admin/releases/configversion/policy/staging/").status_code == 404
