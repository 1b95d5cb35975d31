"""Service accounts and API tokens driven through the admin as a person does it (the Django test client POSTing
the admin's forms and actions): an administrator creates a service account (no password, no admin login) and
issues it a token with scopes, expiry and environments, seeing the key exactly once; without a recent second
factor the token is refused with a message; people who are not administrators cannot reach these pages; a token
revoked in the admin answers 401 saying so."""
import datetime as dt
import re

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.contrib.messages import get_messages
from django.utils import timezone
from rest_framework.test import APIClient

from pmrelease.models import ApiToken, AuditEvent, ServiceAccount

pytestmark = pytest.mark.django_db

ACCOUNTS = "/admin/pmrelease/serviceaccount/"
TOKENS = "/admin/pmrelease/apitoken/"
KEY = re.compile(r'<code id="token-key"[^>]*>([0-9a-f]{40})</code>')


def messages_of(response):
    return [str(m) for m in get_messages(response.wsgi_request)]


@pytest.fixture
def admin_client(client, users, step_up):
    client.force_login(users["admin"])
    return step_up(client)


def create_account(client, username="ci-deployer", roles=("operations",), description="GitHub Actions"):
    groups = [str(g.pk) for g in Group.objects.filter(name__in=roles)]
    return client.post(f"{ACCOUNTS}add/", {"username": username, "roles": groups, "description": description,
                                           "_save": "Save"}, follow=True)


def issue(client, user, *, name="staging deployer", scopes=("read", "deployments:write"), environments="staging",
          expires_at=None):
    data = {"user": str(user.pk), "name": name, "scopes": list(scopes), "environment_names": environments,
            "_save": "Save"}
    if expires_at is not None:
        local = timezone.localtime(expires_at)
        data.update({"expires_at_0": local.strftime("%Y-%m-%d"), "expires_at_1": local.strftime("%H:%M:%S")})
    return client.post(f"{TOKENS}add/", data, follow=True)


def bearer(key):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
    return client


# --- an administrator: a service account, then its token ---------------------------------------------------------
def test_admin__creates_a_service_account__no_password_no_admin_login_roles_and_audited(admin_client, client,
                                                                                       users, envs):
    response = create_account(admin_client)
    assert response.status_code == 200 and response.redirect_chain[-1][0] == ACCOUNTS, response.redirect_chain
    account = ServiceAccount.objects.select_related("user").get(user__username="ci-deployer")
    user = account.user
    assert (account.description, account.created_by) == ("GitHub Actions", users["admin"])
    assert not user.has_usable_password() and not user.is_staff and not user.is_superuser
    assert list(user.groups.values_list("name", flat=True)) == ["operations"]
    assert any("ci-deployer" in m for m in messages_of(response))  # "… was added successfully"
    assert AuditEvent.objects.filter(action="serviceaccount.create", actor_username="admin",
                                     object_id=str(account.pk)).exists()
    listing = admin_client.get(ACCOUNTS).content.decode()
    assert "ci-deployer" in listing and "operations" in listing
    # it cannot sign in to the admin: no password works, and even a session of its own is sent to the login page
    admin_client.logout()
    for password in ("", "!", "pw-123456789"):
        login = client.post("/admin/login/?next=/admin/", {"username": "ci-deployer", "password": password})
        assert login.status_code == 200 and "_auth_user_id" not in client.session, password
    client.force_login(user)
    assert client.get("/admin/").status_code == 302 and client.get(TOKENS).status_code == 302


def errors_of(response, field):
    """The errors the admin's form shows beside ``field``."""
    form = response.context["adminform"].form
    return [str(e) for e in form.errors.get(field, [])]


@pytest.mark.parametrize(("username", "said"), [("ops", "an account named ops exists"),
                                                ("ci deployer!", "letters, digits and @ . + - _ only")])
def test_admin__service_account_name_taken_or_invalid__form_error_what_was_typed_kept(admin_client, users,
                                                                                      username, said):
    response = create_account(admin_client, username=username, description="kept")
    assert response.status_code == 200 and response.redirect_chain == []  # the same form, not a fresh one
    assert any(said in e for e in errors_of(response, "username")), errors_of(response, "username")
    page = response.content.decode()
    assert 'value="kept"' in page or ">kept</textarea>" in page
    assert not ServiceAccount.objects.exists()


def test_admin__issues_a_token__scopes_expiry_environments__key_shown_exactly_once(admin_client, users, envs):
    create_account(admin_client)
    account = get_user_model().objects.get(username="ci-deployer")
    expires = (timezone.now() + dt.timedelta(days=30)).replace(microsecond=0)
    response = issue(admin_client, account, expires_at=expires)
    assert response.status_code == 200 and response.redirect_chain == [], response.content  # the POST's answer
    token = ApiToken.objects.get()
    assert (token.user, token.name, token.scopes, token.environments) == (
        account, "staging deployer", ["deployments:write", "read"], ["staging"])
    assert token.expires_at == expires and token.revoked_at is None
    page = response.content.decode()
    key = KEY.search(page).group(1)
    assert page.count(key) == 1 and "shown this once" in page
    assert key.startswith(token.prefix) and key not in str(list(ApiToken.objects.values()))
    assert "no-store" in response["Cache-Control"]  # the browser keeps no copy of the page
    # not carried to another page: no message, no cookie, nothing in the session
    assert not any(key in m for m in messages_of(response))
    assert all(key not in morsel.value for morsel in response.cookies.values())
    from django.contrib.sessions.models import Session

    assert all(key not in str(s.get_decoded()) for s in Session.objects.all())
    # never again: not on the list, not on the token's page, not in the trail
    for url in (TOKENS, f"{TOKENS}{token.pk}/change/", ACCOUNTS, "/admin/pmrelease/auditevent/"):
        later = admin_client.get(url)
        assert later.status_code == 200 and key not in later.content.decode(), url
    assert key not in str(list(AuditEvent.objects.values("before", "after", "reason")))
    assert AuditEvent.objects.get(action="apitoken.issue").after["user"] == "ci-deployer"
    # the key works, as the service account, within its scopes and environments
    client = bearer(key)
    assert client.get("/api/v1/environments/staging/").status_code == 200
    assert client.get("/api/v1/environments/production/").status_code in (403, 404)
    assert client.post("/api/v1/releases/", {"title": "x", "type": "patch"}, format="json").status_code == 403


@pytest.mark.parametrize(("fields", "field", "said"), [
    ({"environments": "staging, nowhere"}, "environment_names", "no environment named nowhere"),
    ({"expires_at": timezone.now() - dt.timedelta(days=1)}, "expires_at", "a date and time in the future"),
    ({"name": "   "}, "name", "a name of 1 to 100 characters"),
])
def test_admin__token_fields_the_service_refuses__form_error_beside_the_field_input_kept(admin_client, users, envs,
                                                                                         fields, field, said):
    response = issue(admin_client, users["ops"], **fields)
    assert response.status_code == 200 and response.redirect_chain == []  # not a fresh, empty form
    assert any(said in e for e in errors_of(response, field)), response.context["adminform"].form.errors
    form = response.context["adminform"].form
    assert form.data["user"] == str(users["ops"].pk) and form.data.getlist("scopes") == ["read", "deployments:write"]
    assert re.search(r'value="deployments:write"[^>]*checked', response.content.decode())
    assert not KEY.search(response.content.decode())
    assert not ApiToken.objects.exists() and not AuditEvent.objects.filter(action="apitoken.issue").exists()


def test_admin__token_for_an_inactive_account__refused_beside_the_user(admin_client, users, envs):
    users["dev"].is_active = False
    users["dev"].save()
    response = issue(admin_client, users["dev"])
    assert response.status_code == 200 and ApiToken.objects.count() == 0
    assert errors_of(response, "user") == ["dev is inactive: it cannot be given a token"]


# --- step-up ---------------------------------------------------------------------------------------------------
def test_admin__token_without_a_recent_second_factor__refused_with_a_message_and_a_link(client, users, envs):
    client.force_login(users["admin"])  # signed in, no second factor shown
    response = issue(client, users["ops"], name="no step-up")
    assert not ApiToken.objects.exists()
    said = " ".join(messages_of(response))
    assert "second factor" in said and "manage API tokens" in said, said
    assert response.redirect_chain and response.redirect_chain[0][0].startswith("/account/step-up/?next=")
    assert not KEY.search(response.content.decode())
    assert not AuditEvent.objects.filter(action="apitoken.issue").exists()


# --- who may reach these pages ----------------------------------------------------------------------------------
@pytest.mark.parametrize("who", ["ops", "approver", "dev"])
def test_admin__not_an_administrator__cannot_create_accounts_or_issue_tokens(client, users, envs, step_up, who):
    client.force_login(users[who])
    step_up(client)
    for url in (f"{ACCOUNTS}add/", f"{TOKENS}add/"):
        assert client.get(url).status_code == 403, url
    assert create_account(client, username="sneaky").status_code == 403
    assert issue(client, users[who]).status_code == 403
    assert not ServiceAccount.objects.exists() and not ApiToken.objects.exists()


@pytest.mark.parametrize("who", ["ops", "approver", "dev"])
def test_admin__not_an_administrator__does_not_see_the_tokens_or_accounts(client, users, envs, step_up, who):
    from pmrelease import tokens

    account = tokens.service_account_create(username="ci-deployer", roles=["operations"], by=users["admin"])
    tokens.issue_token(user=account.user, by=users["admin"], name="ci", scopes=["read"])
    token = ApiToken.objects.get()
    client.force_login(users[who])
    step_up(client)
    for url in (ACCOUNTS, TOKENS, f"{ACCOUNTS}{account.pk}/change/", f"{TOKENS}{token.pk}/change/"):
        assert client.get(url).status_code == 403, url
    revoke = client.post(TOKENS, {"action": "revoke", "_selected_action": [str(token.pk)]})
    assert revoke.status_code == 403
    token.refresh_from_db()
    assert token.revoked_at is None
    home = client.get("/admin/").content.decode()
    assert ACCOUNTS not in home and TOKENS not in home


# --- revoking ----------------------------------------------------------------------------------------------------
def test_admin__revoke_action__the_token_answers_401_saying_revoked_and_when(admin_client, users, envs):
    create_account(admin_client)
    account = get_user_model().objects.get(username="ci-deployer")
    key = KEY.search(issue(admin_client, account).content.decode()).group(1)
    assert bearer(key).get("/api/v1/releases/").status_code == 200
    token = ApiToken.objects.get()
    response = admin_client.post(TOKENS, {"action": "revoke", "_selected_action": [str(token.pk)]}, follow=True)
    assert "1 token(s) revoked" in messages_of(response)
    token.refresh_from_db()
    assert token.revoked_at is not None and token.revoked_by == "admin"
    answer = bearer(key).get("/api/v1/releases/")
    assert answer.status_code == 401
    assert "revoked" in answer.json()["detail"] and token.prefix in answer.json()["detail"]
    assert f"{token.revoked_at:%Y-%m-%d %H:%M}" in answer.json()["detail"]
    assert AuditEvent.objects.filter(action="apitoken.revoke", actor_username="admin").exists()
    again = admin_client.post(TOKENS, {"action": "revoke", "_selected_action": [str(token.pk)]}, follow=True)
    assert "0 token(s) revoked" in messages_of(again)  # already revoked: nothing done, nothing broken


def test_admin__tokens_and_service_accounts__revoked_never_deleted(admin_client, users, envs):
    """Deleting would erase a token or an account's service status without an audit row: the admin offers no
    delete, neither the action nor the page."""
    create_account(admin_client)
    account = ServiceAccount.objects.get()
    issue(admin_client, account.user)
    token = ApiToken.objects.get()
    for changelist, obj in ((TOKENS, token), (ACCOUNTS, account)):
        listing = admin_client.get(changelist).content.decode()
        assert "delete_selected" not in listing, changelist
        response = admin_client.post(changelist, {"action": "delete_selected", "_selected_action": [str(obj.pk)],
                                                  "post": "yes"}, follow=True)
        assert response.status_code == 200
        assert admin_client.get(f"{changelist}{obj.pk}/delete/").status_code == 403
        assert admin_client.post(f"{changelist}{obj.pk}/delete/", {"post": "yes"}).status_code == 403
        assert "/delete/" not in admin_client.get(f"{changelist}{obj.pk}/change/").content.decode()
    assert ApiToken.objects.filter(pk=token.pk).exists() and ServiceAccount.objects.filter(pk=account.pk).exists()
