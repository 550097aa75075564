"""What the browser tests share: Debian's Chromium driven by Playwright (`make chromium`)."""

import shutil

import pytest

from bench.browser import CHROMIUM, CHROMIUM_ARGS

needs_chromium = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not CHROMIUM.exists() or shutil.which(str(CHROMIUM)) is None,
        reason="/usr/bin/chromium is missing: `make chromium` installs Debian's package (needs root)",
    ),
]


@pytest.fixture(scope="module")
def browser():
    """Chromium for a module's tests; playwright itself is only needed where one asks for it."""
    reason = "playwright is not installed (requirements-dev.txt)"
    sync_api = pytest.importorskip("playwright.sync_api", reason=reason)
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield browser
        browser.close()


def new_page(browser, **context_options):
    """A fresh page that records console errors and uncaught exceptions."""
    context = browser.new_context(**context_options)
    page = context.new_page()
    page.set_default_timeout(10_000)
    page.problems = []
    page.on("console", lambda message: message.type == "error" and page.problems.append(message.text))
    page.on("pageerror", lambda error: page.problems.append(str(error)))
    return page
