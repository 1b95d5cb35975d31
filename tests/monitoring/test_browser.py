"""Acceptance: headless Chromium loads /status/ from a live server; banner, uptime bars, hover details, an
incident, a phone-sized viewport; saves screenshots under $VAR_DIR/screenshots."""
import os
import shutil
from pathlib import Path

import pytest
from django.conf import settings

from monitoring.statuspage import publishing
from tests.browser_support import chromium, needs_chromium

pytestmark = [
    pytest.mark.integration,
    pytest.mark.django_db(transaction=True),
    needs_chromium,
]


@pytest.fixture
def published(full_page):
    """Published before the browser starts: Playwright's sync API runs an event loop in this thread, and
    Django refuses database access while one is running."""
    publishing.publish_site()
    return full_page


@pytest.fixture
def browser():
    with chromium() as instance:
        yield instance


def _shots():
    path = Path(settings.VAR_DIR) / "screenshots"
    path.mkdir(parents=True, exist_ok=True)
    return path


def test_status_page__headless_chromium__banner_bars_hover_incident_and_screenshot(published, live_server, browser):
    page = browser.new_page(viewport={"width": 1200, "height": 2200})
    external = []
    page.on("request", lambda r: external.append(r.url) if not r.url.startswith(live_server.url) else None)
    page.goto(f"{live_server.url}/status/")
    banner = page.locator("#overall")
    assert banner.inner_text() == "Major System Outage"
    assert banner.get_attribute("data-indicator") == "critical"
    bars = page.locator(".bar")
    assert bars.count() == 5
    assert bars.first.locator(".day").count() == 90
    assert page.locator(".bar .s-major_outage").count() >= 1
    today = bars.nth(3).locator(".day").last  # Inbound MX: major outage today
    today.hover()
    tip = today.locator(".tip")
    assert tip.is_visible() and "Inbound down" in tip.inner_text() and "uptime" in tip.inner_text()
    page.keyboard.press("Tab")
    incident = page.locator("article.incident", has_text="Mail delays")
    assert incident.is_visible() and "Mail is delayed." in incident.inner_text()
    page.screenshot(path=str(_shots() / "status-page.png"), full_page=True)
    assert not external, f"external requests: {external}"
    # Keyboard: arrow keys move between days within a bar.
    today.focus()
    page.keyboard.press("ArrowLeft")
    assert page.evaluate("document.activeElement.getAttribute('tabindex')") == "0"
    # The incident's own page.
    incident.locator("h3 a").click()
    assert page.locator("h1").inner_text() == "Mail delays"
    # A phone.
    phone = browser.new_page(viewport={"width": 390, "height": 844})
    phone.goto(f"{live_server.url}/status/")
    width = phone.evaluate("document.documentElement.scrollWidth")
    assert width <= 390, "the page scrolls sideways on a phone"
    assert phone.locator(".bar").first.locator(".day:visible").count() == 30
    phone.screenshot(path=str(_shots() / "status-page-phone.png"), full_page=False)
    if os.environ.get("STATUS_SCREENSHOT_COPY"):
        shutil.copy(_shots() / "status-page.png", os.environ["STATUS_SCREENSHOT_COPY"])
