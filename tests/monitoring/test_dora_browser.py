"""The DORA page as a person sees it in headless Chromium: the SVG charts render (no script, no CDN), the
period form changes the periods."""
import datetime as dt

import pytest
from django.utils import timezone

from releases.models import Deployment, Release
from tests.browser_support import chromium, needs_chromium
from tests.factories import ReleaseFactory

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True), needs_chromium]


def test_dora_page__in_chromium__charts_drawn_and_period_switched(users, envs, live_server):
    users["admin"].set_password("pw-123456789")
    users["admin"].save()
    now = timezone.now()
    for hours_ago, status in ((30, "succeeded"), (20, "rolled_back"), (5, "succeeded")):
        at = now - dt.timedelta(hours=hours_ago)
        release = ReleaseFactory()
        Release.objects.filter(pk=release.pk).update(created_at=at - dt.timedelta(hours=2))
        Deployment.objects.create(release=release, environment=envs["production"], strategy="canary",
                                  backend="simulation", status=status, started_at=at,
                                  finished_at=at + dt.timedelta(minutes=10))
    requests = []
    with chromium() as browser:
        page = browser.new_page()
        page.on("request", lambda r: requests.append(r.url))
        page.goto(f"{live_server.url}/admin/login/")
        page.fill("#id_username", "admin")
        page.fill("#id_password", "pw-123456789")
        page.click("input[type=submit]")
        page.goto(f"{live_server.url}/admin/monitoring/dorareport/")
        production = page.locator("#env-production")
        charts = production.locator("svg.dora-chart")
        assert charts.count() == 4
        box = charts.first.bounding_box()
        assert box["width"] > 300 and box["height"] > 100  # drawn, not an empty element
        assert production.locator("rect[data-tier]").count() >= 1
        assert page.locator(".errornote, .messagelist .error").count() == 0
        page.select_option("select[name=period]", "week")
        page.fill("input[name=count]", "3")
        page.click("input[type=submit][value=Show]")
        labels = page.locator("#env-production table tbody th").all_inner_texts()
    assert len(labels) == 3 and all("-W" in label for label in labels)
    assert all(url.startswith(live_server.url) for url in requests)  # nothing from a CDN
