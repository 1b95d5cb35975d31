"""The admin's landing page in headless Chromium as a release manager (approver) and as operations: the
deployment board is there, with its links, and no outside asset is loaded."""
import os

import pytest
from django.contrib.auth import get_user_model

from releases.deploy import engine
from releases.deploy import services as deployments
from tests.browser_support import chromium, needs_chromium

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True), needs_chromium]


@pytest.fixture
def scenario(users, envs, sim_targets, approved_release):
    for user in get_user_model().objects.all():
        user.set_password("pw-123456789")
        user.save()
    old = approved_release(version="1.0.0")
    engine.run_inline(deployments.deployment_create(release=old, environment=envs["development"], by=users["ops"],
                                                    dispatch=False).pk)
    new = approved_release(version="1.1.0")
    running = deployments.deployment_create(release=new, environment=envs["development"], by=users["ops"],
                                            dispatch=False, strategy="canary", parameters={"pause": None})
    return {"running": running.pk}


@pytest.mark.parametrize("username", ["approver", "ops"])
def test_board__as_person__environments_columns_releases_rows_links(scenario, live_server, username, tmp_path):
    outside = []
    with chromium() as browser:
        page = browser.new_page(viewport={"width": 1400, "height": 900})
        page.on("request", lambda r: outside.append(r.url) if not r.url.startswith(live_server.url) else None)
        page.goto(f"{live_server.url}/admin/login/")
        page.fill("#id_username", username)
        page.fill("#id_password", "pw-123456789")
        page.click("input[type=submit]")
        board = page.locator("#deployment-board")
        board.wait_for()
        columns = board.locator("th.env-column").evaluate_all("els => els.map(e => e.dataset.environment)")
        assert [c for c in columns if c in ("development", "qa", "staging", "production")] == [
            "development", "qa", "staging", "production"]
        assert board.locator("tbody tr").evaluate_all("els => els.map(e => e.dataset.release)") == ["1.1.0", "1.0.0"]
        cell = board.locator("tr[data-release='1.1.0'] td[data-environment=development] a")
        assert cell.inner_text() == "Running"
        shot = os.environ.get("BOARD_SCREENSHOTS") or str(tmp_path)
        page.screenshot(path=f"{shot}/board-{username}.png", full_page=True)
        cell.click()
        page.wait_for_url(f"**/admin/releases/deployment/{scenario['running']}/change/")
    assert outside == []
