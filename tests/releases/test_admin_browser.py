"""The admin as a person uses it, in headless Chromium: the buttons really post where they should."""
import re

import pytest
from django.contrib.auth import get_user_model

from releases import services
from tests.browser_support import chromium, needs_chromium
from tests.factories import make_release

pytestmark = [
    pytest.mark.integration,
    pytest.mark.django_db(transaction=True),
    needs_chromium,
]


@pytest.fixture
def scenario(users, envs, sim_targets):
    """Data first: Playwright's sync API runs an event loop in this thread, and Django then refuses queries."""
    for user in get_user_model().objects.all():
        user.set_password("pw-123456789")
        user.save()
    planned = make_release(by=users["dev"], envs=[envs["development"]], version="4.0.0", type="major")
    approved = make_release(by=users["dev"], envs=[envs["development"]], version="4.1.0")
    services.release_approve(release=approved, by=users["approver"])
    return {"planned": planned.pk, "approved": approved.pk}


@pytest.fixture
def page(scenario, live_server):
    with chromium() as browser:
        page = browser.new_page(viewport={"width": 1280, "height": 1000})
        page.base = live_server.url
        yield page


def _login(page, username):
    page.context.clear_cookies()
    page.goto(f"{page.base}/admin/login/")
    page.fill("#id_username", username)
    page.fill("#id_password", "pw-123456789")
    page.click("input[type=submit]")


def test_approve_button__clicked__release_approved(page, scenario):
    _login(page, "approver")
    page.goto(f"{page.base}/admin/releases/release/{scenario['planned']}/change/")
    assert page.locator("button[value=reject]").count() == 1
    page.fill("form:has(button[value=approve]) input[name=text]", "reviewed in the browser")
    page.click("button[value=approve]")
    assert "/act/" not in page.url
    assert "release 4.0.0 is now approved" in page.locator(".messagelist").inner_text()
    assert page.locator("button[value=approve]").count() == 0


def test_deploy_form__submitted__live_deployment_page_updates_itself(page, scenario):
    _login(page, "ops")
    page.goto(f"{page.base}/admin/releases/release/{scenario['approved']}/change/")
    page.fill("#deploy-params", '{"pause": null}')
    page.click("button:text('Deploy')")
    page.wait_for_url(re.compile(r"/admin/releases/deployment/\d+/change/"))
    assert page.locator("#dep-status").inner_text() == "Running"
    assert page.locator("button[value=abort]").count() == 1
    page.fill("form:has(button[value=abort]) input[name=text]", "changed my mind")
    page.click("button[value=abort]")
    assert "Abort (roll back)" in page.locator(".messagelist").inner_text()
    assert page.locator("#dep-status").inner_text() in ("Rolling back", "Rolled back")
