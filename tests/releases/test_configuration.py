"""Environment configuration: schema, immutable versions, diff, drift, pinning, the application API."""
import pytest
from django.db import DatabaseError, connection, transaction

from pmrelease import errors
from pmrelease.models import AuditEvent
from releases import configschema as schema
from releases import configuration
from releases.deploy import services as deployments
from releases.models import ConfigVersion, DeploymentConfigDiff, ImmutableVersion


def _doc(**sections):
    return {**schema.defaults(), **sections}


# --- schema -----------------------------------------------------------------------------------------------
def test_schema__pool_max_below_min__error_names_field_path():
    with pytest.raises(schema.ConfigInvalid) as exc:
        schema.validate({"database": {"connectionPool": {"min": 2, "max": 1}}})
    assert exc.value.errors == {"database.connectionPool.max": "must be ≥ min (2)"}


@pytest.mark.parametrize("document, path, message", [
    ({"databse": {}}, "databse", "unknown key"),
    ({"database": {"hots": "x"}}, "database.hots", "unknown key"),
    ({"database": {"port": "5432"}}, "database.port", "must be a whole number"),
    ({"database": {"port": 70000}}, "database.port", "must be ≤ 65535"),
    ({"database": {"ssl": "yes"}}, "database.ssl", "must be true or false"),
    ({"database": {"password": "hunter2hunter2"}}, "database.password", "must be a secret reference"),
    ({"monitoring": {"sampleRate": 1.5}}, "monitoring.sampleRate", "must be ≤ 1.0"),
    ({"email": {"provider": "pigeon"}}, "email.provider", "must be one of"),
    ({"features": {"x": {"enabled": True, "percentage": 101}}}, "features.x.percentage", "must be ≤ 100.0"),
    ({"features": {"bad name!": {}}}, "features.bad name!", "a name is"),
    ({"security": {"allowedOrigins": "https://a"}}, "security.allowedOrigins", "must be a list"),
    ([], "(document)", "must be an object"),
])
def test_schema__invalid_field__error_per_path(document, path, message):
    with pytest.raises(schema.ConfigInvalid) as exc:
        schema.validate(document)
    assert path in exc.value.errors
    assert message in exc.value.errors[path]


def test_schema__partial_document__defaults_filled_and_references_accepted():
    doc = schema.validate({"database": {"host": "db.prod", "password": "vault://secret/pm/db#password"},
                           "cache": {"password": "env://REDIS_PASSWORD"}})
    assert doc["database"]["host"] == "db.prod"
    assert doc["database"]["connectionPool"] == {"min": 2, "max": 10, "idleTimeoutMillis": 30000}
    assert set(doc) == set(schema.SECTIONS)
    assert schema.references(doc) == {"database.password": "vault://secret/pm/db#password",
                                      "cache.password": "env://REDIS_PASSWORD"}


# --- diff and drift (pure) ---------------------------------------------------------------------------------
def test_diff__changed_added_removed__by_path():
    a = schema.validate({"database": {"host": "a"}, "features": {"old": {"enabled": True}}})
    b = schema.validate({"database": {"host": "b"}, "features": {"new": {"enabled": False}}})
    changes = {(c.path, c.kind) for c in schema.diff(a, b)}
    assert ("database.host", "changed") in changes
    assert ("features.new.enabled", "added") in changes
    assert ("features.old.enabled", "removed") in changes
    assert not any(p.startswith("cache") for p, _ in changes)
    assert str(schema.diff(a, b)[0]) == "~ database.host: 'a' → 'b'"


def test_drift__only_must_match_keys_that_differ():
    staging = schema.validate({"database": {"host": "db.staging"}, "security": {"mfaRequired": False},
                               "features": {"send-time": {"enabled": True, "percentage": 50}}})
    production = schema.validate({"database": {"host": "db.prod"},
                                  "features": {"send-time": {"enabled": True, "percentage": 10}}})
    found = {d.path: d.values for d in schema.drift({"staging": staging, "production": production})}
    assert found == {"security.mfaRequired": {"staging": False, "production": True}}  # hosts and % may differ


# --- versions ----------------------------------------------------------------------------------------------
@pytest.fixture
def admin(users):
    return users["admin"]


@pytest.fixture
def no_change_needed(envs):
    """Production's configuration without change management (the gate has its own tests)."""
    from changes.models import EnvironmentChangePolicy

    EnvironmentChangePolicy.objects.create(environment=envs["production"], requires_change=False)


def test_config_save__each_save_new_version_with_diff_and_audit(envs, admin):
    env = envs["staging"]
    v1, created = configuration.config_save(environment=env, document={}, by=admin, comment="first")
    assert created and v1.number == 1
    v2, _ = configuration.config_save(environment=env, document={"database": {"host": "db2"}}, by=admin)
    assert v2.number == 2
    assert v2.changes == [{"path": "database.host", "kind": "changed", "before": "localhost", "after": "db2"}]
    same, created = configuration.config_save(environment=env, document={"database": {"host": "db2"}}, by=admin)
    assert (same.pk, created) == (v2.pk, False)
    event = AuditEvent.objects.filter(action="environment.config").order_by("-id").first()
    assert event.after["version"] == 2 and event.actor_username == "admin"


def test_config_save__invalid__400_field_errors_and_nothing_saved(envs, admin):
    with pytest.raises(errors.ValidationFailed) as exc:
        configuration.config_save(environment=envs["staging"], by=admin,
                                  document={"database": {"connectionPool": {"min": 2, "max": 1}}})
    assert exc.value.field_errors == {"database.connectionPool.max": ["must be ≥ min (2)"]}
    assert not ConfigVersion.objects.exists()


def test_config_save__without_admin_access__refused(envs, users):
    with pytest.raises(errors.PermissionDenied):
        configuration.config_save(environment=envs["production"], document={}, by=users["dev"])


def test_config_version__immutable_at_model_level(envs, admin):
    version, _ = configuration.config_save(environment=envs["staging"], document={}, by=admin)
    version.comment = "rewritten"
    with pytest.raises(ImmutableVersion):
        version.save()
    with pytest.raises(ImmutableVersion):
        version.delete()
    with pytest.raises(ImmutableVersion):
        ConfigVersion.objects.filter(pk=version.pk).update(comment="x")
    with pytest.raises(ImmutableVersion):
        ConfigVersion.objects.filter(pk=version.pk).delete()


def test_config_version__immutable_at_database_level(envs, admin):
    version, _ = configuration.config_save(environment=envs["staging"], document={}, by=admin)
    table = ConfigVersion._meta.db_table
    refused = DatabaseError  # SQLite: IntegrityError from RAISE(ABORT); PostgreSQL: the trigger's exception
    with pytest.raises(refused), transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(f"UPDATE {table} SET comment = 'forged' WHERE id = %s", [version.pk])
    if connection.vendor == "postgresql":
        with pytest.raises(refused), transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(f"DELETE FROM {table} WHERE id = %s", [version.pk])
    assert ConfigVersion.objects.get(pk=version.pk).comment == ""


def test_compare__versions_and_environments(envs, admin, users, no_change_needed):
    v1, _ = configuration.config_save(environment=envs["staging"], document={}, by=admin)
    v2, _ = configuration.config_save(environment=envs["staging"], by=admin,
                                      document={"security": {"mfaRequired": False}})
    configuration.config_save(environment=envs["production"], document={"database": {"host": "db.prod"}}, by=admin)
    assert configuration.compare(v1, v2) == [{"path": "security.mfaRequired", "kind": "changed", "before": True,
                                              "after": False, "must_match": True}]
    between = configuration.compare_environments(envs["staging"], envs["production"], by=users["ops"])
    assert {c["path"] for c in between} == {"database.host", "security.mfaRequired"}
    assert configuration.drift(by=admin) == [{"path": "security.mfaRequired",
                                              "values": {"staging": False, "production": True}}]


# --- pinning and what a deployment meets ---------------------------------------------------------------------
def test_deployment__records_config_diff_against_pinned(envs, admin, users, sim_targets, approved_release):
    tested, _ = configuration.config_save(environment=envs["staging"], by=admin,
                                          document={"features": {"send-time": {"enabled": True}}})
    configuration.config_save(environment=envs["development"], by=admin,
                              document={"features": {"send-time": {"enabled": False}}})
    release = approved_release()
    configuration.release_pin(release=release, version=tested, by=users["qa"])
    dep = deployments.deployment_create(release=release, environment=envs["development"], by=users["ops"],
                                        dispatch=False)
    recorded = DeploymentConfigDiff.objects.get(deployment=dep)
    assert recorded.pinned == tested
    assert [c["path"] for c in recorded.must_match] == ["features.send-time.enabled"]
    assert AuditEvent.objects.filter(action="release.config_pin", object_id=str(release.pk)).exists()


def test_deployment__policy_requires_pinned_match__refused_naming_keys(envs, admin, users, sim_targets,
                                                                       approved_release):
    tested, _ = configuration.config_save(environment=envs["staging"], by=admin,
                                          document={"security": {"tlsMinVersion": "1.3"}})
    configuration.config_save(environment=envs["development"], document={}, by=admin)
    configuration.policy_set(environment=envs["development"], require_pinned_match=True, by=admin)
    release = approved_release()
    with pytest.raises(errors.TransitionNotAllowed) as exc:
        deployments.deployment_create(release=release, environment=envs["development"], by=users["ops"],
                                      dispatch=False)
    assert any("pins none" in r for r in exc.value.reasons)
    configuration.release_pin(release=release, version=tested, by=users["qa"])
    with pytest.raises(errors.TransitionNotAllowed) as exc:
        deployments.deployment_create(release=release, environment=envs["development"], by=users["ops"],
                                      dispatch=False)
    assert any("security.tlsMinVersion" in r for r in exc.value.reasons)
    configuration.config_save(environment=envs["development"], document={"security": {"tlsMinVersion": "1.3"}},
                              by=admin)
    dep = deployments.deployment_create(release=release, environment=envs["development"], by=users["ops"],
                                        dispatch=False)
    assert dep.config_diff.must_match == []


# --- the application API ---------------------------------------------------------------------------------------
@pytest.fixture
def keys(envs):
    from flags.services import api_key_create

    return {name: api_key_create(environment=envs[name], kind=kind)[1]
            for name, kind in (("staging", "client"), ("production", "client"))} | {
        "staging-frontend": api_key_create(environment=envs["staging"], kind="frontend")[1]}


def test_config_api__key_of_environment__document_etag_304_and_versions(envs, admin, keys, api):
    configuration.config_save(environment=envs["staging"], by=admin,
                              document={"database": {"password": "vault://secret/pm/db#password"}})
    configuration.config_save(environment=envs["staging"], document={"database": {"host": "db2",
                              "password": "vault://secret/pm/db#password"}}, by=admin)
    client = api()
    response = client.get("/api/v1/environments/staging/config", HTTP_AUTHORIZATION=f"Bearer {keys['staging']}")
    assert response.status_code == 200
    body = response.json()
    assert body["version"] == 2 and body["config"]["database"]["host"] == "db2"
    assert body["config"]["database"]["password"] == "vault://secret/pm/db#password"  # a reference, not a value
    assert response["ETag"] == '"staging-v2"'
    again = client.get("/api/v1/environments/staging/config", HTTP_X_API_KEY=keys["staging"],
                       HTTP_IF_NONE_MATCH='"staging-v2"')
    assert again.status_code == 304
    old = client.get("/api/v1/environments/staging/config?version=1", HTTP_X_API_KEY=keys["staging"])
    assert old.json()["version"] == 1 and old.json()["config"]["database"]["host"] == "localhost"
    assert client.get("/api/v1/environments/staging/config?version=9",
                      HTTP_X_API_KEY=keys["staging"]).status_code == 404
    assert client.get("/api/v1/environments/staging/config?version=x",
                      HTTP_X_API_KEY=keys["staging"]).status_code == 400


def test_config_api__other_environment_or_kind_or_no_key__refused(envs, admin, keys, api, no_change_needed):
    configuration.config_save(environment=envs["production"], document={}, by=admin)
    client = api()
    assert client.get("/api/v1/environments/production/config",
                      HTTP_AUTHORIZATION=f"Bearer {keys['staging']}").status_code == 403
    assert client.get("/api/v1/environments/staging/config",
                      HTTP_AUTHORIZATION=f"Bearer {keys['staging-frontend']}").status_code == 403
    assert client.get("/api/v1/environments/production/config").status_code == 401
    assert client.get("/api/v1/environments/production/config",
                      HTTP_AUTHORIZATION="Bearer pmf.production.client.nope").status_code == 401
    assert client.get("/api/v1/environments/staging/config",
                      HTTP_AUTHORIZATION=f"Bearer {keys['staging']}").status_code == 404  # none saved yet


def test_config_api__staff_versions_compare_drift_and_pin(envs, users, api, approved_release, no_change_needed):
    client = api(users["admin"])
    bad = client.post("/api/v1/environments/staging/config/versions/", {"document": {
        "database": {"connectionPool": {"min": 2, "max": 1}}}}, format="json")
    assert bad.status_code == 400
    assert bad.json()["database.connectionPool.max"] == ["must be ≥ min (2)"]
    made = client.post("/api/v1/environments/staging/config/versions/",
                       {"document": {"security": {"mfaRequired": False}}, "comment": "try"}, format="json")
    assert made.status_code == 201 and made.json()["number"] == 1
    client.post("/api/v1/environments/production/config/versions/", {"document": {}}, format="json")
    compare = client.get("/api/v1/environments/staging/config/compare/?with=production").json()
    assert [c["path"] for c in compare] == ["security.mfaRequired"]
    drift = client.get("/api/v1/environments/config-drift/").json()
    assert drift == [{"path": "security.mfaRequired", "values": {"staging": False, "production": True}}]
    release = approved_release()
    pinned = client.post(f"/api/v1/releases/{release.pk}/config-pin/", {"environment": "staging"}, format="json")
    assert pinned.status_code == 200 and pinned.json()["number"] == 1
    meets = client.get(f"/api/v1/releases/{release.pk}/config-diff/?environment=production").json()
    assert meets[0]["path"] == "security.mfaRequired" and meets[0]["must_match"] is True
    dev = api(users["dev"]).post("/api/v1/environments/production/config/versions/", {"document": {}},
                                 format="json")
    assert dev.status_code in (403, 404)


# --- production configuration through change management ---------------------------------------------------------
def test_production_config__without_covering_change__409_then_saved_under_approved_change(envs, users, api):
    from changes import services as changes
    from changes.models import ChangeLink
    from tests.factories import approve_change

    admin = users["admin"]
    refused = api(admin).post("/api/v1/environments/production/config/versions/", {"document": {}}, format="json")
    assert refused.status_code == 409
    assert "requires an approved change covering its configuration" in refused.json()["reasons"][0]
    assert not ConfigVersion.objects.exists()
    change = changes.change_create(by=users["ops"], links=[envs["production"]], data={
        "title": "Raise the production pool", "environments": [envs["production"]], "implementation_plan": "save",
        "rollback_plan": "previous version", "testing_plan": "staging"})
    changes.change_submit(change=change, by=users["ops"])
    approve_change(change, users["approver"])
    version, created = configuration.config_save(environment=envs["production"], by=admin,
                                                 document={"database": {"connectionPool": {"max": 40}}})
    assert created
    assert ChangeLink.objects.filter(change=change, object_id=str(version.pk)).exists()
    assert AuditEvent.objects.filter(action="change.config_version", object_id=str(change.pk)).exists()
    staging, _ = configuration.config_save(environment=envs["staging"], document={}, by=admin)  # no change needed
    assert staging.number == 1


def test_seed_demo__configuration_versions_drift_and_rotation(settings, tmp_path, db):
    from django.core.management import call_command

    from releases import secrets
    from releases.models import SecretReference

    settings.STATUS_PUBLISH_DIR = tmp_path / "status-site"
    call_command("seed_demo", stdout=open("/dev/null", "w"))  # noqa: SIM115
    call_command("seed_demo", stdout=open("/dev/null", "w"))  # noqa: SIM115 - idempotent: no second version
    assert ConfigVersion.objects.count() == 2 and SecretReference.objects.count() == 3
    from django.contrib.auth import get_user_model

    admin = get_user_model().objects.get(username="admin")
    assert {d["path"] for d in configuration.drift(by=admin)} == {"features.send-time-optimizer.enabled"}
    report = secrets.rotation_report()
    assert sorted(r.name for r, _ in report["in_grace"]) == ["dev-smtp", "staging-db"]
