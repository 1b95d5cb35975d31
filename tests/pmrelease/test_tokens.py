"""API tokens are stored as hashes: the key is returned once, works as ``Authorization: Token …``, and is in
no table, nor in the audit trail."""
import importlib
import json

import pytest
from django.apps import apps as global_apps
from django.db import connection

from pmrelease import tokens
from pmrelease.models import ApiToken, AuditEvent

pytestmark = pytest.mark.django_db


def _all_text():
    """Every table's rows as text (what a stolen database dump would show)."""
    text = []
    with connection.cursor() as cursor:
        for table in connection.introspection.table_names():
            cursor.execute(f"SELECT * FROM {connection.ops.quote_name(table)}")
            text.append(json.dumps(cursor.fetchall(), default=str))
    return "\n".join(text)


def test_obtain_token__key_once__only_its_hash_stored_and_it_authenticates(client, users, envs):
    response = client.post("/api/v1/auth/token/", {"username": "dev", "password": "pw-123456789"},
                           content_type="application/json")
    assert response.status_code == 200
    key = response.json()["token"]
    assert len(key) == 40
    assert key not in _all_text()
    token = ApiToken.objects.get(user=users["dev"])
    assert token.key_hash == tokens.hash_key(key) and token.prefix == key[:8]
    assert AuditEvent.objects.filter(action="apitoken.issue", actor_username="dev").exists()
    listed = client.get("/api/v1/releases/", HTTP_AUTHORIZATION=f"Token {key}")
    assert listed.status_code == 200
    # each call issues a new key (the old one cannot be shown again); both work
    again = client.post("/api/v1/auth/token/", {"username": "dev", "password": "pw-123456789"}).json()["token"]
    assert again != key and client.get("/api/v1/releases/", HTTP_AUTHORIZATION=f"Token {key}").status_code == 200


def test_token_auth__wrong_key__401_with_token_challenge(client, users):
    response = client.get("/api/v1/releases/", HTTP_AUTHORIZATION="Token " + "0" * 40)
    assert response.status_code == 401 and response["WWW-Authenticate"] == "Token"


def test_token_auth__inactive_user__401(client, users):
    key = tokens.issue_token(user=users["dev"], by="test")
    users["dev"].is_active = False
    users["dev"].save()
    assert client.get("/api/v1/releases/", HTTP_AUTHORIZATION=f"Token {key}").status_code == 401


def test_obtain_token__wrong_password__400(client, users):
    response = client.post("/api/v1/auth/token/", {"username": "dev", "password": "nope"})
    assert response.status_code == 400 and not ApiToken.objects.exists()


def test_migration__clear_text_authtoken_rows__moved_as_hashes_and_deleted(users):
    from rest_framework.authtoken.models import Token

    old = Token.objects.create(user=users["qa"])
    migration = importlib.import_module("pmrelease.migrations.0004_apitoken")
    migration.move_clear_tokens(global_apps, None)
    assert not Token.objects.exists()
    moved = ApiToken.objects.get(user=users["qa"])
    assert moved.key_hash == tokens.hash_key(old.key)
    assert tokens.TokenAuthentication().authenticate_credentials(old.key)[0] == users["qa"]
