"""The login page (single sign-on next to the local login) and the second-factor pages, in headless Chromium;
screenshots land in VAR_DIR/screenshots/ for a person to look at."""
import binascii
import time
from pathlib import Path

import pytest
from django.conf import settings as django_settings
from django_otp.oath import totp
from django_otp.plugins.otp_totp.models import TOTPDevice

from tests.browser_support import chromium, needs_chromium

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True), needs_chromium]

KEY = "3132333435363738393031323334353637383930"


def _code(offset=0):
    return f"{totp(binascii.unhexlify(KEY), step=30, t0=0, digits=6, drift=offset):06d}"


def test_login_page_and_second_factor__in_a_browser(users, live_server, settings):
    settings.OIDC_ISSUER = "http://127.0.0.1:9"
    settings.OIDC_RP_CLIENT_ID = "release-portal"
    settings.OIDC_PROVIDER_NAME = "PenguinMails SSO"
    admin = users["admin"]
    TOTPDevice.objects.create(user=admin, name="authenticator app", key=KEY, confirmed=False)
    shots = Path(django_settings.VAR_DIR) / "screenshots"
    shots.mkdir(parents=True, exist_ok=True)
    with chromium() as browser:
        page = browser.new_page(viewport={"width": 1000, "height": 760})
        page.goto(f"{live_server.url}/admin/login/")
        assert page.locator("#sso-login").inner_text() == "Sign in with PenguinMails SSO"
        assert page.locator("#id_username").is_visible() and page.locator("#id_password").is_visible()
        page.screenshot(path=str(shots / "login.png"))
        page.fill("#id_username", "admin")
        page.fill("#id_password", "pw-123456789")
        page.click("input[type=submit]")
        page.goto(f"{live_server.url}/account/2fa/setup/?next=/admin/")
        assert page.locator("img[alt^='QR code']").is_visible()
        page.screenshot(path=str(shots / "totp-setup.png"))
        page.fill("input[name=token]", _code())
        page.click("input[type=submit]")
        assert page.url.rstrip("/").endswith("/admin")
        time.sleep(1.1)  # django-otp refuses a code reused at once
        page.goto(f"{live_server.url}/account/step-up/?next=/admin/")
        page.fill("input[name=token]", "12345")
        page.click("input[type=submit]")
        assert "6 digits" in page.locator(".errornote").inner_text()
        page.screenshot(path=str(shots / "step-up.png"))
        page.fill("input[name=token]", _code(1))
        page.click("input[type=submit]")
        assert page.url.rstrip("/").endswith("/admin")


def test_admin__approving_for_production__asks_for_the_second_factor_then_approves(users, envs, live_server):
    from releases.models import Release
    from tests.factories import make_release

    approver = users["approver"]
    approver.set_password("pw-123456789")
    approver.save()
    TOTPDevice.objects.create(user=approver, name="authenticator app", key=KEY, confirmed=True)
    release = make_release(by=users["planner"], envs=[envs["production"]], version="7.0.0")
    shots = Path(django_settings.VAR_DIR) / "screenshots"
    shots.mkdir(parents=True, exist_ok=True)
    with chromium() as browser:
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.goto(f"{live_server.url}/admin/login/")
        page.fill("#id_username", "approver")
        page.fill("#id_password", "pw-123456789")
        page.click("input[type=submit]")
        page.goto(f"{live_server.url}/admin/releases/release/{release.pk}/change/")
        page.fill("form:has(button[value=approve]) input[name=text]", "reviewed")
        page.click("button[value=approve]")
        assert "second factor" in page.locator(".messagelist").inner_text()
        page.screenshot(path=str(shots / "approve-needs-step-up.png"))
        page.click(".messagelist a:has-text('Verify your second factor')")
        page.fill("input[name=token]", _code())
        page.click("input[type=submit]")
        assert f"/admin/releases/release/{release.pk}/change/" in page.url
        page.fill("form:has(button[value=approve]) input[name=text]", "reviewed")
        page.click("button[value=approve]")
        assert "now approved" in page.locator(".messagelist").inner_text()
    assert Release.objects.get(pk=release.pk).status == "approved"
