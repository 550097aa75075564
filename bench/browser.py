"""The slider page in headless Chromium: pictures per second while dragging, first picture, bytes.

    make chromium                          # Debian's Chromium, once (needs root)
    python -m bench.browser                # both modes, 3 visits each with a 3 s drag
    python -m bench.browser --repeats 5 --seconds 5

Serves the shipped weights on loopback (a threaded development server: the pictures and the
weights route are the app's own) and measures the page in its two modes: drawn in the page while
dragging (the default once the weights are in), and server only (what a browser without the
weights gets; emulated with prefers-reduced-data). Per mode: the first picture's time after the
navigation starts, when the page can draw itself, the bytes of a first and of a repeat visit
(resource timing's transferSize: on a repeat visit cached answers cost nothing), and during a
scripted drag of one slider from 0 to 1 at one input event per animation frame, the pictures that
reach the screen per second and the requests to /generate. Chromium shares the cores with the
server, as the machine block says; other work on the machine lowers the pictures per second.
"""

import argparse
import json
import shutil
import statistics
import threading
from contextlib import contextmanager
from pathlib import Path

from werkzeug.serving import make_server

from bench.machine import machine_info

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = Path("/usr/bin/chromium")
# As root in a container Chromium needs --no-sandbox; the next three keep it off the (closed)
# network; prefers-reduced-data is a media feature Chromium only knows behind its flag.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--enable-blink-features=PrefersReducedData",
]

# Moves #<slider> from 0 to 1 over `seconds`, one input event per animation frame, then ends the
# drag (change) if `release`. At each frame it notes the picture on top (the page's canvas, or the server's
# <img>) and counts the frames at which a new one reached the screen.
SCRIPTED_DRAG = """async ([id, seconds, release]) => {
  const slider = document.getElementById(id);
  const canvas = document.getElementById('digit-local');
  const img = document.getElementById('digit');
  const onTop = () => (!canvas.hidden ? 'local ' + canvas.dataset.key : 'server ' + img.dataset.key);
  const asked = () =>
    performance.getEntriesByType('resource').filter((e) => e.name.includes('/generate?')).length;
  let last = onTop(), pictures = 0, localPictures = 0, frames = 0;
  const requestsBefore = asked();
  const start = performance.now();
  await new Promise((done) => {
    const step = (now) => {
      const shown = onTop();
      if (shown !== last) {
        pictures++;
        if (shown.startsWith('local')) localPictures++;
        last = shown;
      }
      frames++;
      if (now - start >= seconds * 1000) return done();
      slider.value = Math.min(1, (now - start) / (seconds * 1000)).toFixed(3);
      slider.dispatchEvent(new Event('input', { bubbles: true }));
      requestAnimationFrame(step);
    };
    requestAnimationFrame(step);
  });
  const elapsed = (performance.now() - start) / 1000;
  const requests = asked();
  if (release) slider.dispatchEvent(new Event('change', { bubbles: true }));
  return { seconds: elapsed, frames, pictures, localPictures, picturesPerSecond: pictures / elapsed,
           framesPerSecond: frames / elapsed, generateRequests: requests - requestsBefore };
}"""

VISIT = """() => {
  const resources = performance.getEntriesByType('resource');
  const entries = [performance.getEntriesByType('navigation')[0], ...resources];
  const digit = resources.find((e) => e.name.includes('/generate?'));
  const weights = resources.find((e) => e.name.includes('.weights'));
  return { bytes: entries.reduce((sum, e) => sum + e.transferSize, 0),
           first_picture_s: digit.responseEnd / 1000,
           drawing_here_s: weights ? weights.responseEnd / 1000 : null,
           weights_bytes: weights ? weights.transferSize : 0 };
}"""


@contextmanager
def serving(app):
    """The app on a free loopback port, served by a thread: yields its URL."""
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.port}"
    finally:
        server.shutdown()
        thread.join()


def save_data(page) -> None:
    """The page believes the person asked to save data (prefers-reduced-data: reduce)."""
    cdp = page.context.new_cdp_session(page)
    feature = {"name": "prefers-reduced-data", "value": "reduce"}
    cdp.send("Emulation.setEmulatedMedia", {"features": [feature]})


def wait_until_settled(page, local: bool) -> None:
    """The first picture is in and, in the local mode, the page can draw pictures itself."""
    page.wait_for_function("() => { const img = document.getElementById('digit'); return img.complete; }")
    if local:
        page.wait_for_function("() => document.getElementById('controls').dataset.drawing === 'local'")
    page.wait_for_load_state("networkidle")


def scripted_drag(page, slider: str = "label-3", seconds: float = 3.0, release: bool = True) -> dict:
    return page.evaluate(SCRIPTED_DRAG, [slider, seconds, release])


def visit(browser, url: str, local: bool, seed: int, seconds: float) -> dict:
    """One visitor: a first visit (a seed no one asked for yet), a drag, a repeat visit."""
    context = browser.new_context(viewport={"width": 1000, "height": 900})
    page = context.new_page()
    if not local:
        save_data(page)
    page.goto(f"{url}/?labels=0,0,0,0,0,0,0,0,0,0&seed={seed}")
    wait_until_settled(page, local)
    first = page.evaluate(VISIT)
    drag = scripted_drag(page, seconds=seconds)
    page.wait_for_load_state("networkidle")
    page.reload()
    wait_until_settled(page, local)
    repeat = page.evaluate(VISIT)
    context.close()
    return {"first": first, "drag": drag, "repeat": repeat}


def summary(visits: list[dict]) -> dict:
    """Medians over the visits (and the slowest drag)."""

    def median(values):
        return round(statistics.median(values), 3)

    rates = [v["drag"]["picturesPerSecond"] for v in visits]
    drawing = [v["first"]["drawing_here_s"] for v in visits if v["first"]["drawing_here_s"]]
    return {
        "first_visit_bytes": median(v["first"]["bytes"] for v in visits),
        "weights_bytes": median(v["first"]["weights_bytes"] for v in visits),
        "repeat_visit_bytes": median(v["repeat"]["bytes"] for v in visits),
        "first_picture_s": median(v["first"]["first_picture_s"] for v in visits),
        "drawing_here_after_s": median(drawing) if drawing else None,
        "pictures_per_second": {"median": round(statistics.median(rates), 1), "min": round(min(rates), 1)},
        "frames_per_second": round(statistics.median(v["drag"]["framesPerSecond"] for v in visits), 1),
        "generate_requests_per_drag": [v["drag"]["generateRequests"] for v in visits],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3, help="visits (and drags) per mode (default 3)")
    parser.add_argument("--seconds", type=float, default=3.0, help="length of each drag (default 3)")
    args = parser.parse_args()
    if shutil.which(str(CHROMIUM)) is None:
        parser.exit(2, f"bench.browser: error: {CHROMIUM} is missing: run `make chromium`\n")
    from playwright.sync_api import sync_playwright

    from webapp import create_app

    app = create_app({"GENERATOR_DIR": str(ROOT / "weights")})
    result = {"machine": machine_info(), "drag_seconds": args.seconds, "repeats": args.repeats}
    with serving(app) as url, sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        result["chromium"] = browser.version
        modes = {"drawn_in_the_page": True, "server_only": False}
        visits = {mode: [] for mode in modes}
        for repeat in range(args.repeats):  # the modes take turns, so that neither gets the quieter spell
            for offset, (mode, local) in enumerate(modes.items()):
                seed = 1000 + 2 * repeat + offset
                visits[mode].append(visit(browser, url, local, seed, args.seconds))
        result.update({mode: summary(mode_visits) for mode, mode_visits in visits.items()})
        browser.close()
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
