"""The maintenance buttons as a person clicks them in headless Chromium (forms must not nest)."""
import datetime as dt

import pytest
from django.contrib.auth import get_user_model
from django.utils import timezone

from monitoring.statuspage.maintenance import maintenance_create
from tests.browser_support import chromium, needs_chromium

pytestmark = [
    pytest.mark.integration,
    pytest.mark.django_db(transaction=True),
    needs_chromium,
]


@pytest.fixture
def maintenance_id(users, components):
    for user in get_user_model().objects.all():
        user.set_password("pw-123456789")
        user.save()
    start = timezone.now() + dt.timedelta(hours=2)
    return maintenance_create(data={
        "name": "Queue upgrade", "body": "Upgrading the queue.", "scheduled_for": start,
        "scheduled_until": start + dt.timedelta(hours=1), "components": [components["Database"]]},
        by=users["ops"]).pk


def test_maintenance_start_button__clicked__maintenance_in_progress(maintenance_id, live_server):
    with chromium() as browser:
        page = browser.new_page()
        page.goto(f"{live_server.url}/admin/login/")
        page.fill("#id_username", "ops")
        page.fill("#id_password", "pw-123456789")
        page.click("input[type=submit]")
        page.goto(f"{live_server.url}/admin/monitoring/maintenance/{maintenance_id}/change/")
        page.fill("form:has(button:text('Start')) input[name=body]", "Starting early.")
        page.click("button:text('Start')")
        page.goto(f"{live_server.url}/admin/monitoring/maintenance/{maintenance_id}/change/")
        heading = page.locator("#maint-actions-title").inner_text()
    assert heading == "In progress"
