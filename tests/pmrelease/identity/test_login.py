"""Login hygiene and the second factor: TOTP enrolment and verification, lockout after N failures (audited), the
break-glass account when local login is off and the IdP is down, no password for SSO people."""
import time

import pytest
from django.contrib.auth import get_user_model
from django_otp.oath import totp
from django_otp.plugins.otp_totp.models import TOTPDevice

from pmrelease.identity import oidc, stepup
from pmrelease.models import AuditEvent, ExternalIdentity

pytestmark = pytest.mark.django_db


def _code(device, offset=0):
    return f"{totp(device.bin_key, step=device.step, t0=device.t0, digits=device.digits, drift=offset):06d}"


def _login(client, username, password="pw-123456789"):
    return client.post("/admin/login/?next=/admin/", {"username": username, "password": password},
                       REMOTE_ADDR="10.0.0.7")


def test_totp__enrolment_then_verification__session_stepped_up(client, users):
    admin = users["admin"]
    client.force_login(admin)
    page = client.get("/account/2fa/setup/?next=/admin/")
    assert page.status_code == 200 and b"data:image/svg+xml" in page.content
    device = TOTPDevice.objects.get(user=admin, confirmed=False)
    wrong = client.post("/account/2fa/setup/", {"token": "000000" if _code(device) != "000000" else "111111"})
    assert wrong.status_code == 200 and b"not right" in wrong.content
    device.refresh_from_db()
    device.throttle_reset()  # django-otp slows down guessing after a failure; the test need not wait
    assert client.post("/account/2fa/setup/", {"token": _code(device), "next": "/admin/"}).status_code == 302
    device.refresh_from_db()
    assert device.confirmed
    assert stepup.SESSION_KEY in client.session
    assert AuditEvent.objects.filter(action="identity.totp.enrol", object_id=str(admin.pk)).exists()

    # a later step-up: the prompt, a wrong code refused (400, audited), the right one accepted
    session = client.session
    session[stepup.SESSION_KEY] = time.time() - 10_000
    session.save()
    assert client.get("/account/step-up/?next=/admin/").status_code == 200
    assert client.post("/account/step-up/", {"token": "12345"}).status_code == 400  # not 6 digits
    assert client.post("/account/step-up/", {"token": "000000" if _code(device, 1) != "000000" else "111111"}
                       ).status_code == 400
    assert AuditEvent.objects.filter(action="identity.step_up_failure").exists()
    device.refresh_from_db()
    device.throttle_reset()
    assert client.post("/account/step-up/", {"token": _code(device, 1), "next": "/admin/"}).status_code == 302
    assert time.time() - client.session[stepup.SESSION_KEY] < 5


def test_step_up__no_device__sent_to_enrolment(client, users):
    client.force_login(users["ops"])
    response = client.get("/account/step-up/?next=/admin/")
    assert response.status_code == 302 and response["Location"].startswith("/account/2fa/setup/")


def test_lockout__after_n_failures__locked_and_audited(client, users, settings):
    settings.AXES_FAILURE_LIMIT = 3
    for _ in range(3):
        assert _login(client, "ops", "wrong-password").status_code in (200, 429)
    locked = _login(client, "ops")  # the right password, too late
    assert locked.status_code == 429
    failures = AuditEvent.objects.filter(action="auth.failure", object_repr="ops")
    assert failures.count() >= 3 and failures.first().after["address"] == "10.0.0.7"
    lockouts = AuditEvent.objects.filter(action="auth.lockout")
    assert lockouts.exists()
    assert all(e.after == {"username": "ops", "address": "10.0.0.7"} for e in lockouts)
    assert not AuditEvent.objects.filter(action="auth.login", object_repr="ops").exists()


def test_sign_in_and_out__audited(client, users):
    assert _login(client, "ops").status_code == 302
    assert AuditEvent.objects.get(action="auth.login").after["source"] == "local"
    client.post("/admin/logout/")
    assert AuditEvent.objects.filter(action="auth.logout", object_repr="ops").exists()


def test_local_login_off__break_glass_works_while_idp_is_down(client, users, settings):
    settings.LOCAL_LOGIN_ENABLED = False
    settings.BREAK_GLASS_USERNAMES = ["admin"]
    settings.OIDC_ISSUER = "http://127.0.0.1:9"  # nothing listens: the IdP is down
    settings.OIDC_RP_CLIENT_ID = "release-portal"
    oidc._discovery.clear()
    page = client.get("/admin/login/")
    assert b"Sign in with" in page.content and b"break-glass" in page.content
    sso = client.get("/oidc/authenticate/", follow=True)
    assert b"Single sign-on is unavailable" in sso.content
    assert _login(client, "ops").status_code == 200  # a local account is refused
    assert "_auth_user_id" not in client.session
    assert _login(client, "admin").status_code == 302
    assert client.session["_auth_user_id"] == str(users["admin"].pk)


def test_sso_person__never_signs_in_with_a_password(client, users):
    person = get_user_model().objects.create_user("carol", password="pw-123456789")
    ExternalIdentity.objects.create(user=person, source="oidc", subject="carol-sub")
    assert _login(client, "carol").status_code == 200
    assert "_auth_user_id" not in client.session


def test_oidc_claims__amr_mfa__counts_as_second_factor(settings):
    assert oidc.shows_second_factor({"amr": ["pwd", "mfa"]})
    assert not oidc.shows_second_factor({"amr": ["pwd"]})
    settings.OIDC_STEP_UP_ACR = ["phr"]
    assert oidc.shows_second_factor({"acr": "phr"})


def test_sso_session__id_token_expired__asks_the_idp_again_without_prompt(client, users, settings):
    settings.OIDC_ISSUER = "http://idp.test"
    settings.OIDC_RP_CLIENT_ID = "release-portal"
    oidc._discovery["http://idp.test"] = {"issuer": "http://idp.test",
                                          "authorization_endpoint": "http://idp.test/authorize"}
    try:
        client.force_login(users["ops"], backend=oidc.BACKEND)
        session = client.session
        session["oidc_id_token_expiration"] = time.time() + 60
        session.save()
        assert client.get("/admin/").status_code == 200  # still valid: no round trip
        session = client.session
        session["oidc_id_token_expiration"] = time.time() - 1
        session.save()
        response = client.get("/admin/")
        assert response.status_code == 302
        assert response["Location"].startswith("http://idp.test/authorize?") and "prompt=none" in response["Location"]
        assert "code_challenge=" in response["Location"]
        # a local (break-glass) session is never sent to the IdP
        client.force_login(users["admin"], backend="pmrelease.identity.local.LocalBackend")
        assert client.get("/admin/").status_code == 200
    finally:
        oidc._discovery.clear()


def test_role_mappings_from_the_environment__checked_and_used(settings, users):
    from pmrelease.identity import checks as identity_checks
    from pmrelease.identity import rolemap

    settings.ROLE_MAPPINGS = [{"source": "oidc", "group": "eng-leads", "role": "approvers"},
                              {"source": "oidc", "group": "x", "role": "wizards"}]
    problems = identity_checks.identity_settings(None)
    assert [p.id for p in problems] == ["pmrelease.E102"] and "wizards" in problems[0].msg
    settings.ROLE_MAPPINGS = settings.ROLE_MAPPINGS[:1]
    assert identity_checks.identity_settings(None) == []
    gained, lost = rolemap.sync(user=users["dev"], source="oidc", groups=["Eng-Leads"])
    assert gained == ["approvers"] and lost == []
    gained, lost = rolemap.sync(user=users["dev"], source="oidc", groups=[])
    assert gained == [] and lost == ["approvers"]
    assert set(users["dev"].groups.values_list("name", flat=True)) == {"developers"}
