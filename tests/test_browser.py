"""The slider page in a real browser: Debian's Chromium driven by Playwright (`make chromium`)."""

import re

import pytest
from chromium import needs_chromium, new_page
from helpers import lively_generator, nu_errors, save, save_small_classifier

from bench.browser import save_data, serving

pytestmark = needs_chromium


@pytest.fixture(scope="module")
def app(make_app, tmp_path_factory):
    """A random generator and a small random classifier: the page with every part working."""
    folder = save(lively_generator(), tmp_path_factory.mktemp("weights"), "random weights for the tests")
    return make_app(GENERATOR_DIR=save_small_classifier(folder))


@pytest.fixture(scope="module")
def server_url(app):
    """The test app on a free loopback port, served by a thread for the module's tests."""
    with serving(app) as url:
        yield url


@pytest.fixture
def page(browser):
    page = new_page(browser, viewport={"width": 1000, "height": 900})
    yield page
    page.context.close()


def digit_is_drawn(page) -> None:
    """Wait until #digit shows a loaded 28x28 picture."""
    page.wait_for_function(
        "() => { const img = document.getElementById('digit');"
        " return img.complete && img.naturalWidth === 28 && img.naturalHeight === 28; }"
    )


PICTURE_MATCHES_CONTROLS = """() => {
  const img = document.getElementById('digit');
  if (!img.dataset.key || !img.complete || img.naturalWidth !== 28) return false;
  if (!document.getElementById('digit-local').hidden) return false; // the page's own picture is on top
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
    """Wait until the server's picture on screen was drawn for exactly the sliders' and seed's values."""
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

    page.get_by_role("link", name="Preset 0 and 1 at 0.5", exact=True).click()
    picture_matches_controls(page)
    assert [page.locator(f"#label-{d}").input_value() for d in range(3)] == ["0.5", "0.5", "0"]

    page.locator("#show-seeds").check()
    page.wait_for_function(
        "() => { const img = document.getElementById('seeds-grid'); return img && !img.hidden"
        " && img.complete && img.naturalWidth === 112 && img.naturalHeight === 28; }"
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
        " return img && !img.hidden && img.complete && img.naturalWidth === 112; }"
    )
    link = page.locator("#morph-download")
    assert link.is_visible() and link.get_attribute("href").startswith("blob:")
    assert page.problems == []


def test_keys_move_sliders_in_steps_of_a_hundredth_and_a_tenth(page, server_url):
    page.goto(f"{server_url}/?labels=0,0,0,0,0,0,0,0,0,0&seed=42")
    digit_is_drawn(page)
    slider = page.locator("#label-3")
    slider.focus()
    steps = [
        ("ArrowRight", "0.01"),
        ("Shift+ArrowRight", "0.11"),
        ("ArrowUp", "0.12"),
        ("ArrowLeft", "0.11"),
        ("Shift+ArrowLeft", "0.01"),
        ("ArrowDown", "0"),
        ("ArrowDown", "0"),  # stays at the end of the range
        ("PageUp", "0.1"),
        ("End", "1"),
        ("Shift+ArrowRight", "1"),
        ("Home", "0"),
    ]
    for key, value in steps:
        page.keyboard.press(key)
        assert slider.input_value() == value, key
    page.keyboard.press("Shift+ArrowRight")
    picture_matches_controls(page)
    assert page.locator("#label-3-value").text_content() == "0.100"
    blend = page.locator("#blend")
    blend.focus()
    page.keyboard.press("ArrowRight")
    assert blend.input_value() == "0.01" and page.locator("#blend-value").text_content() == "0.010"
    assert page.get_by_text("Shift+arrows by 0.1").is_visible()
    assert page.problems == []


def test_every_control_has_a_name_of_its_own(page, server_url):
    page.goto(server_url)
    digit_is_drawn(page)
    snapshot = page.locator("body").aria_snapshot()
    for d in range(10):
        assert f'slider "digit {d}"' in snapshot
        assert page.get_by_role("slider", name=f"digit {d}", exact=True).count() == 1
        assert page.get_by_role("link", name=f"Preset {d}", exact=True).count() == 1
        assert page.get_by_role("meter", name=f"probability of {d}", exact=True).count() == 1
    assert page.get_by_role("button", name="Random seed", exact=True).count() == 1
    assert page.get_by_role("button", name="Random style seed", exact=True).count() == 1
    names = re.findall(r'- (?:slider|link|button|meter|checkbox|spinbutton) "([^"]*)"', snapshot)
    assert len(names) == len(set(names)) >= 10 + 15 + 3 + 10, names
    # The values beside the sliders are not read out (the slider says its value), nor live regions.
    assert page.locator("output[aria-live], output:not([aria-hidden=true])").count() == 0


READING_OF_THE_PICTURE = """async () => {
  const img = document.getElementById('digit');
  const drawnHere = !document.getElementById('digit-local').hidden;
  const pending = document.getElementById('bars').classList.contains('pending');
  const shown = [...document.querySelectorAll('#bars meter')].map((m) => m.value);
  const readsAs = document.getElementById('reads-as').textContent;
  const key = img.dataset.key;
  if (drawnHere || pending || !key) return { drawnHere, pending, readsAs, key };
  const answer = await (await fetch(key, { headers: { Accept: 'application/json' } })).json();
  return { drawnHere, pending, shown, readsAs, key, read: answer.classifier, best: answer.reads_as };
}"""


@pytest.mark.parametrize("mode", ["drawn-here", "server-only"])
def test_the_bars_follow_the_picture_while_dragging(page, server_url, mode):
    """The bars are the reading of the server's picture on screen, or say they are pending while
    the page's own picture is up (the classifier runs on the server only)."""
    if mode == "server-only":
        save_data(page)
    page.goto(f"{server_url}/?labels=0,0,0,0,0,0,0,0,0,0&seed=3")
    digit_is_drawn(page)
    if mode == "drawn-here":
        page.wait_for_function("() => document.getElementById('controls').dataset.drawing === 'local'")
    slider = page.locator("#label-6")
    box = slider.bounding_box()
    y = box["y"] + box["height"] / 2
    page.mouse.move(box["x"] + 2, y)
    page.mouse.down()
    seen = []
    for step in range(1, 9):
        page.mouse.move(box["x"] + 2 + step * (box["width"] - 4) / 8, y, steps=3)
        seen.append(page.evaluate(READING_OF_THE_PICTURE))
    page.mouse.up()
    picture_matches_controls(page)
    settled = page.evaluate(READING_OF_THE_PICTURE)
    for reading in [*seen, settled]:  # at every moment, the bars are those of the picture on screen
        assert reading["pending"] == reading["drawnHere"]
        if reading["pending"]:
            assert reading["readsAs"].startswith("Reading pending")
        elif reading["key"]:
            assert reading["shown"] == pytest.approx(reading["read"], abs=1e-6)
            assert reading["readsAs"].startswith(f"Reads as {reading['best']} (")
    assert not settled["pending"] and settled["key"]
    if mode == "drawn-here":
        assert sum(r["pending"] for r in seen) >= 6  # drawn here while dragging, the reading pending
    else:
        assert not any(r["pending"] for r in seen)
        shown = {tuple(r["shown"]) for r in [*seen, settled] if r["key"]}
        assert len(shown) > 1  # and they moved with each server picture
    assert page.problems == []


def test_on_a_phone_the_digit_and_sliders_fit_without_horizontal_scrolling(browser, server_url):
    page = new_page(
        browser, viewport={"width": 360, "height": 740}, device_scale_factor=2, is_mobile=True, has_touch=True
    )
    try:
        page.goto(f"{server_url}/?labels=0,0,0,0,0,0,0,0,0,0&seed=42")
        digit_is_drawn(page)
        assert page.evaluate("document.documentElement.scrollWidth") <= 360
        digit_box = page.locator("#digit").bounding_box()
        assert (
            digit_box["x"] >= 0 and digit_box["x"] + digit_box["width"] <= 360 and digit_box["width"] >= 150
        )
        slider = page.locator("#label-4")
        slider.scroll_into_view_if_needed()
        box = slider.bounding_box()
        assert box["x"] >= 0 and box["x"] + box["width"] <= 360 and box["width"] >= 150
        page.touchscreen.tap(box["x"] + 0.75 * box["width"], box["y"] + box["height"] / 2)
        assert 0.6 < float(slider.input_value()) < 0.9
        picture_matches_controls(page)
        # Scrolled to the sliders, the digit stays on screen above them.
        assert page.locator("#digit").bounding_box()["y"] >= -1
        assert page.evaluate("document.documentElement.scrollWidth") <= 360
        assert page.problems == []
    finally:
        page.context.close()


def test_the_page_stays_valid_html_with_every_section_shown(page, server_url, tmp_path):
    page.goto(f"{server_url}/?labels=0,1,0,0,0,0,0,0,0,0&seed=1")
    digit_is_drawn(page)
    page.locator("#show-seeds").check()
    page.locator("#set-end").click()
    page.locator("#seed").fill("2")
    page.locator("#play").click()
    page.wait_for_function(
        "() => ['seeds-grid', 'morph', 'end-thumb'].every((id) => {"
        " const img = document.getElementById(id); return img && !img.hidden && img.complete; })"
    )
    picture_matches_controls(page)
    assert nu_errors({"every-section": page.content()}, tmp_path) == []
