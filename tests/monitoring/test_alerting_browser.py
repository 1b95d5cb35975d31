"""The active alerts list and the alert history as a person sees them in headless Chromium."""
import datetime as dt
import os
import shutil

import pytest
from django.contrib.auth import get_user_model
from django.utils import timezone

from monitoring.alerting import services
from monitoring.models import AlertRule
from pmrelease.providers import MetricProvider, Sample
from tests.browser_support import chromium, needs_chromium

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True), needs_chromium]


class Answers(MetricProvider):
    """A provider answering every instant query with the samples given (the evaluation is what is shown)."""

    kind = "fixture"

    def __init__(self, samples):
        self.samples = samples

    def known_metrics(self):
        return []

    def fetch(self, requests):
        return {}

    def query(self, promql, *, at=None):
        return self.samples


@pytest.fixture
def alerts(users, envs):
    for user in get_user_model().objects.all():
        user.set_password("pw-123456789")
        user.save()
    t0 = timezone.now() - dt.timedelta(minutes=20)
    high, slow = (AlertRule.objects.get(environment=envs["production"], name=name)
                  for name in ("High Error Rate", "Slow Response Time"))
    firing = Answers([Sample({"app": "penguinmails", "status": "503"}, 0.083),
                      Sample({"app": "penguinmails", "status": "500"}, 0.061)])
    services.evaluate_rule(high, now=t0, provider=firing)
    services.evaluate_rule(slow, now=t0, provider=Answers([Sample({"app": "penguinmails"}, 2.7)]))
    services.evaluate_rule(slow, now=t0 + dt.timedelta(minutes=10), provider=Answers([]))
    return high, slow


def test_active_alerts_list__firing_rule_shown_with_what_it_returned(alerts, live_server, tmp_path):
    high, slow = alerts
    shots = []
    with chromium() as browser:
        page = browser.new_page(viewport={"width": 1400, "height": 700})
        page.goto(f"{live_server.url}/admin/login/")
        page.fill("#id_username", "admin")
        page.fill("#id_password", "pw-123456789")
        page.click("input[type=submit]")
        page.goto(f"{live_server.url}/admin/monitoring/activealert/")
        rows = page.locator("#result_list tbody tr").all_inner_texts()
        shots.append(tmp_path / "active-alerts.png")
        page.screenshot(path=str(shots[-1]), full_page=True)
        page.goto(f"{live_server.url}/admin/monitoring/alertevent/")
        history = page.locator("#result_list tbody tr").all_inner_texts()
        shots.append(tmp_path / "alert-history.png")
        page.screenshot(path=str(shots[-1]), full_page=True)
    if os.environ.get("SCREENSHOT_DIR"):  # to look at them: SCREENSHOT_DIR=/some/dir
        for shot in shots:
            shutil.copy(shot, os.environ["SCREENSHOT_DIR"])
    assert len(rows) == 1 and "High Error Rate" in rows[0] and "Firing" in rows[0]
    assert 'status="503"' in rows[0] and "0.083" in rows[0]
    assert len(history) == 3 and "\tresolved\t" in history[0] and "Slow Response Time" in history[0]
    assert "within the cooldown" in history[0] and all(shot.stat().st_size > 10_000 for shot in shots)
