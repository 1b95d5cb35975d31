"""The configuration editor, the diff and the drift list in headless Chromium (screenshots kept in
SCREENSHOT_DIR when it is set)."""
import os
from pathlib import Path

import pytest
from django.contrib.auth import get_user_model

from releases import configuration
from tests.browser_support import chromium, needs_chromium

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True), needs_chromium]


@pytest.fixture
def scenario(users, envs):
    from changes.models import EnvironmentChangePolicy

    EnvironmentChangePolicy.objects.create(environment=envs["production"], requires_change=False)
    for user in get_user_model().objects.all():
        user.set_password("pw-123456789")
        user.save()
    admin = users["admin"]
    configuration.config_save(environment=envs["staging"], by=admin, comment="first", document={
        "database": {"host": "db.staging.internal", "password": "vault://secret/staging/db#password"},
        "features": {"send-time-optimizer": {"enabled": True, "percentage": 50}}})
    configuration.config_save(environment=envs["staging"], by=admin, comment="MFA off for the load test", document={
        "database": {"host": "db.staging.internal", "password": "vault://secret/staging/db#password"},
        "security": {"mfaRequired": False},
        "features": {"send-time-optimizer": {"enabled": True, "percentage": 50}}})
    configuration.config_save(environment=envs["production"], by=admin, document={
        "database": {"host": "db.prod.internal", "password": "vault://secret/production/db#password",
                     "connectionPool": {"min": 5, "max": 50}}})


@pytest.fixture
def page(scenario, live_server, tmp_path):
    with chromium() as browser:
        page = browser.new_page(viewport={"width": 1280, "height": 1100})
        page.base = live_server.url
        page.shots = Path(os.environ.get("SCREENSHOT_DIR") or tmp_path)
        page.shots.mkdir(parents=True, exist_ok=True)
        page.goto(f"{page.base}/admin/login/")
        page.fill("#id_username", "admin")
        page.fill("#id_password", "pw-123456789")
        page.click("input[type=submit]")
        yield page


def test_editor__invalid_pool_in_browser__error_shown_on_field(page):
    page.goto(f"{page.base}/admin/releases/configversion/edit/staging/database/")
    page.fill("#id_connectionPool__min", "8")
    page.fill("#id_connectionPool__max", "4")
    page.fill("#id_comment", "shrink the pool")
    page.click("input[type=submit][value='Save as a new version']")
    page.wait_for_load_state()
    page.screenshot(path=str(page.shots / "config-editor-error.png"), full_page=True)
    row = page.locator("tr.errors", has_text="connectionPool.max")
    assert row.count() == 1 and "must be ≥ min (8)" in row.inner_text()
    page.fill("#id_connectionPool__min", "2")
    page.click("input[type=submit][value='Save as a new version']")
    page.wait_for_load_state()
    assert "configuration version 3 saved" in page.content()


def test_compare_and_drift__in_browser(page):
    page.goto(f"{page.base}/admin/releases/configversion/compare/?left=staging&right=production")
    page.screenshot(path=str(page.shots / "config-compare.png"), full_page=True)
    body = page.locator("table.diff").inner_text()
    assert "database.host" in body and "db.prod.internal" in body and "security.mfaRequired" in body
    page.goto(f"{page.base}/admin/releases/configversion/drift/")
    page.screenshot(path=str(page.shots / "config-drift.png"), full_page=True)
    text = page.locator("#content").inner_text()
    assert "security.mfaRequired" in text and "features.send-time-optimizer.enabled" in text
