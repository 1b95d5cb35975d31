"""Headless Chromium (Debian's package) for the browser tests, driven by Playwright."""
import contextlib
import os

import pytest

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking"]

# Skipped only on a bare machine without Chromium; in CI (CI set) a missing Chromium is a failure.
needs_chromium = pytest.mark.skipif(not os.path.exists(CHROMIUM) and not os.environ.get("CI"),
                                    reason="no Chromium at /usr/bin/chromium (required when CI is set)")


@contextlib.contextmanager
def chromium():
    """A launched browser. Create test data before entering: Playwright's sync API runs an event loop in
    this thread, and Django then refuses database queries."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM if os.path.exists(CHROMIUM) else None, args=ARGS)
        try:
            yield browser
        finally:
            browser.close()
