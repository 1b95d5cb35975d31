"""Single sign-on through a real OpenID provider (oidc-provider-mock in its own process), in headless Chromium:
the authorization code flow with PKCE, roles from the groups claim, a role lost when the group is removed, a person
the IdP refuses gets no session; no password is ever stored for them."""
import pytest
from django.contrib.auth import get_user_model

from pmrelease.identity import oidc
from pmrelease.models import AuditEvent, ExternalIdentity, RoleMapping
from tests.browser_support import chromium, needs_chromium

from .idp import oidc_provider, set_user

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True), needs_chromium]


@pytest.fixture
def idp(settings, groups):
    with oidc_provider() as url:
        settings.OIDC_ISSUER = url
        settings.OIDC_RP_CLIENT_ID = "release-portal"
        settings.OIDC_RP_CLIENT_SECRET = "portal-secret"
        settings.OIDC_PROVIDER_NAME = "PenguinMails SSO"
        oidc._discovery.clear()
        RoleMapping.objects.create(source="oidc", group_name="portal-approvers", role="approvers")
        RoleMapping.objects.create(source="oidc", group_name="portal-ops", role="operations")
        yield url
    oidc._discovery.clear()


def _sign_in(base, sub, *, deny=False, screenshot=None):
    """Sign in through the IdP's form in Chromium; returns the URL and the page text where it ends."""
    with chromium() as browser:
        page = browser.new_page(viewport={"width": 1100, "height": 800})
        page.goto(f"{base}/admin/login/")
        if screenshot:
            page.screenshot(path=screenshot)
        page.click("#sso-login")
        page.wait_for_selector("input[name=sub]")
        assert "code_challenge=" in page.url and "code_challenge_method=S256" in page.url  # PKCE
        if deny:
            page.click("button[value=deny]")
        else:
            page.fill("input[name=sub]", sub)
            page.click("form:has(input[name=sub]) button[type=submit]")
        page.wait_for_load_state("networkidle")
        return page.url, page.inner_text("body")


def test_sign_in__groups_map_to_roles__role_lost_when_group_removed__refused_by_idp(idp, live_server, tmp_path):
    set_user(idp, "alice-sub", {"preferred_username": "alice", "email": "alice@penguinmails.test",
                                "given_name": "Alice", "groups": ["portal-approvers", "portal-ops", "everyone"],
                                "amr": ["pwd", "mfa"]})
    url, text = _sign_in(live_server.url, "alice-sub", screenshot=str(tmp_path / "login.png"))
    assert url.rstrip("/").endswith("/admin"), (url, text)
    alice = get_user_model().objects.get(username="alice")
    assert set(alice.groups.values_list("name", flat=True)) == {"approvers", "operations"}
    assert not alice.has_usable_password()  # never a password for an SSO person
    assert ExternalIdentity.objects.get(user=alice).subject == "alice-sub"
    gained = AuditEvent.objects.filter(action="identity.role.gained", object_id=str(alice.pk))
    assert {e.after["role"] for e in gained} == {"approvers", "operations"}
    login = AuditEvent.objects.get(action="auth.login", object_id=str(alice.pk))
    assert login.after["source"] == "oidc"
    assert login.after["second_factor"] == "idp:pwd,mfa"  # the IdP's amr counts as a step-up

    # the IdP removes her from portal-ops: the next sign-in takes the role away, audited with its source
    set_user(idp, "alice-sub", {"preferred_username": "alice", "email": "alice@penguinmails.test",
                                "groups": ["portal-approvers"]})
    url, _ = _sign_in(live_server.url, "alice-sub")
    assert url.rstrip("/").endswith("/admin")
    assert AuditEvent.objects.filter(action="auth.login", object_id=str(alice.pk)).first().after[
        "second_factor"] is None  # no amr this time: no step-up
    assert set(alice.groups.values_list("name", flat=True)) == {"approvers"}
    lost = AuditEvent.objects.get(action="identity.role.lost", object_id=str(alice.pk))
    assert lost.before == {"role": "operations", "source": "oidc"}

    # disabled at the IdP: it refuses the authorization; no session is started, the failure is audited
    url, text = _sign_in(live_server.url, "alice-sub", deny=True)
    assert "/admin/login/" in url and "Single sign-on failed" in text and "access_denied" in text
    assert AuditEvent.objects.filter(action="auth.failure", after__source="oidc").exists()
    assert get_user_model().objects.filter(username="alice").count() == 1


def test_sign_in__local_account_with_the_same_name__not_taken_over(idp, live_server, make_user):
    make_user("bob", "developers")
    set_user(idp, "bob-sub", {"preferred_username": "bob", "email": "bob@penguinmails.test", "groups": []})
    url, text = _sign_in(live_server.url, "bob-sub")
    assert "/admin/login/" in url and "Single sign-on failed" in text
    assert not ExternalIdentity.objects.exists()
