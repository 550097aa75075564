"""The slider page in a real browser: Debian's Chromium driven by Playwright (`make chromium`)."""

import shutil
import threading
from pathlib import Path

import pytest
from werkzeug.serving import make_server

sync_api = pytest.importorskip(
    "playwright.sync_api", reason="playwright is not installed (requirements-dev.txt)"
)

CHROMIUM = Path("/usr/bin/chromium")
# As root in a container Chromium needs --no-sandbox; the rest keep it off the (closed) network.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not CHROMIUM.exists() or shutil.which(str(CHROMIUM)) is None,
        reason="/usr/bin/chromium is missing: `make chromium` installs Debian's package (needs root)",
    ),
]


@pytest.fixture(scope="module")
def server_url(app):
    """The test app on a free loopback port, served by a thread for the module's tests."""
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.port}"
    server.shutdown()
    thread.join()


@pytest.fixture(scope="module")
def browser():
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def page(browser):
    """A fresh page that records console errors and uncaught exceptions."""
    context = browser.new_context(viewport={"width": 1000, "height": 900})
    page = context.new_page()
    page.set_default_timeout(10_000)
    page.problems = []
    page.on("console", lambda message: message.type == "error" and page.problems.append(message.text))
    page.on("pageerror", lambda error: page.problems.append(str(error)))
    yield page
    context.close()


def digit_is_drawn(page) -> None:
    """Wait until #digit shows a loaded 28x28 picture."""
    page.wait_for_function(
        "() => { const img = document.getElementById('digit');"
        " return img.complete && img.naturalWidth === 28 && img.naturalHeight === 28; }"
    )


PICTURE_MATCHES_CONTROLS = """() => {
  const img = document.getElementById('digit');
  if (!img.dataset.key || !img.complete || img.naturalWidth !== 28) return false;
  const shown = new URL(img.dataset.key, location.href).searchParams;
  const labels = [...document.querySelectorAll('input[name=labels]')].map((s) => s.value).join(',');
  return shown.get('labels') === labels && shown.get('seed') === document.getElementById('seed').value;
}"""


URL_MATCHES_CONTROLS = """() => {
  const query = new URLSearchParams(location.search);
  const labels = [...document.querySelectorAll('input[name=labels]')].map((s) => s.value).join(',');
  return query.get('labels') === labels && query.get('seed') === document.getElementById('seed').value;
}"""


def picture_matches_controls(page) -> None:
    """Wait until the picture on screen was drawn for exactly the sliders' and seed's values."""
    page.wait_for_function(PICTURE_MATCHES_CONTROLS)


def test_dragging_a_slider_changes_the_picture_live(page, server_url):
    page.goto(f"{server_url}/?labels=0,0,0,0,0,0,0,0,0,0&seed=42")
    digit_is_drawn(page)
    before = page.locator("#digit").screenshot()

    slider = page.locator("#label-3")
    box = slider.bounding_box()
    y = box["y"] + box["height"] / 2
    page.mouse.move(box["x"] + 2, y)
    page.mouse.down()
    page.mouse.move(box["x"] + box["width"] - 2, y, steps=12)  # many input events while dragging
    page.mouse.up()

    assert float(slider.input_value()) > 0.9
    assert page.locator("#label-3-value").text_content() == f"{float(slider.input_value()):.3f}"
    # The picture on screen is the one for the sliders' final state, and it changed.
    picture_matches_controls(page)
    assert page.locator("#digit").screenshot() != before
    page.wait_for_function(URL_MATCHES_CONTROLS)  # the state is in the address bar, for sharing
    assert page.locator("#status").text_content().startswith("Seed 42")
    assert page.problems == []


def test_keyboard_presets_seed_and_errors(page, server_url):
    page.goto(server_url)
    digit_is_drawn(page)
    first = page.locator("#digit").screenshot()

    page.locator("#label-8").focus()
    page.keyboard.press("End")  # a range input moves by keyboard, too
    picture_matches_controls(page)
    assert page.locator("#label-8").input_value() == "1"
    assert page.locator("#digit").screenshot() != first

    page.get_by_role("link", name="0 and 1 at 0.5", exact=True).click()
    picture_matches_controls(page)
    assert [page.locator(f"#label-{d}").input_value() for d in range(3)] == ["0.5", "0.5", "0"]

    page.locator("#show-seeds").check()
    page.wait_for_function(
        "() => { const img = document.getElementById('seeds-grid');"
        " return !img.hidden && img.complete && img.naturalWidth === 112 && img.naturalHeight === 28; }"
    )
    assert page.problems == []

    # A seed the server refuses: its message is shown to the person.
    page.locator("#seed").fill("99999999999")
    error = page.locator("#error")
    error.wait_for(state="visible")
    assert "seed: must be an integer between 0 and 4294967295" in error.text_content()
    assert all("400" in problem for problem in page.problems)  # only the refused request's log line


def test_morph_gif_plays_and_downloads(page, server_url):
    page.goto(f"{server_url}/?labels=0,1,0,0,0,0,0,0,0,0&seed=1")
    digit_is_drawn(page)
    page.locator("#set-end").click()
    page.locator("#seed").fill("2")
    page.locator("#frames").fill("6")
    page.locator("#play").click()
    page.wait_for_function(
        "() => { const img = document.getElementById('morph');"
        " return !img.hidden && img.complete && img.naturalWidth === 112; }"
    )
    link = page.locator("#morph-download")
    assert link.is_visible() and link.get_attribute("href").startswith("blob:")
    assert page.problems == []
