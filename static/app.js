// The slider page: keeps the picture in step with the controls, the state in the URL.
//
// The page works without this script (the form reloads the page with the new state); the script
// makes it live. Requests follow two rules:
//   - at most one request per picture is in flight, and what it shows is never older than what
//     is on screen (no out-of-order replies);
//   - while a slider is dragged, newer states are coalesced (one per animation frame) and asked
//     for as soon as the reply in flight lands, so the picture keeps moving however slow the
//     server is; a jump (preset, seed, random, typed value) aborts the older request at once
//     with its AbortController. Either way the last picture shown matches the controls.
//
// Once the first picture is on screen, the page fetches the generator's weights (local.js) and
// from then on draws each new state itself, in the animation frame of the change, on a canvas
// over the picture; the server is asked only when the controls settle (a drag ends, a key is
// released, a value is typed, a preset or seed jumps), and its picture replaces the page's. So the
// picture that stays on screen, the classifier's reading, the downloads and the URL are the
// server's; the bars say "pending" while the page's own picture is up. Without the weights (an
// old browser, a failed fetch, prefers-reduced-data or Save-Data) the page works as above.

const form = document.getElementById("controls");
const { version, downloadScale, generateUrl, gridUrl, interpolateUrl, weightsUrl } = form.dataset;
const maxSeed = Number(form.dataset.maxSeed);
const sliders = [...form.querySelectorAll('input[name="labels"]')];
const seedBox = document.getElementById("seed");
const seedBBox = document.getElementById("seed-b");
const blendSlider = document.getElementById("blend");
const HANDWRITING = ["slant", "thickness", "width"]; // the sliders' names, as the API's fields
const styleSliders = HANDWRITING.map((name) => document.getElementById(name));
const download = document.getElementById("download");
const status = document.getElementById("status");
const showSeeds = document.getElementById("show-seeds");
const framesBox = document.getElementById("frames");
const playButton = document.getElementById("play");
const morphDownload = document.getElementById("morph-download");
const endText = document.getElementById("end-text");
const readsAs = document.getElementById("reads-as");
const barList = document.getElementById("bars");
const bars = [...document.querySelectorAll("#bars meter")];

/** The controls as the server reads them: raw text, so that the server names what is wrong. */
function readState() {
  return {
    labels: sliders.map((slider) => slider.value),
    seed: seedBox.value.trim(),
    seed_b: seedBBox.value.trim(),
    blend: blendSlider.value,
    ...Object.fromEntries(styleSliders.map((slider) => [slider.name, slider.value])),
  };
}

/** The state's query string, for the address bar and for pictures alike (webapp/state.py's
 * State.query writes the same): the style seed only when the blend is above 0, a handwriting
 * slider only when it is not at 0. */
function stateQuery(state) {
  const params = new URLSearchParams({ labels: state.labels.join(","), seed: state.seed });
  if (Number(state.blend) > 0) {
    params.set("seed_b", state.seed_b);
    params.set("blend", state.blend);
  }
  for (const name of HANDWRITING) {
    if (Number(state[name]) !== 0) params.set(name, Number(state[name]));
  }
  return params;
}

/** The handwriting sliders that are not at 0, as JSON numbers. */
function styleJson(state) {
  const moved = HANDWRITING.filter((name) => Number(state[name]) !== 0);
  return Object.fromEntries(moved.map((name) => [name, Number(state[name])]));
}

/** A whole number as a JSON number; anything else as text, for the server to refuse by name. */
function integerOrText(text) {
  return /^\d{1,10}$/.test(text) ? Number(text) : text;
}

/** The state as a JSON object for POST /interpolate. */
function stateJson(state) {
  const json = { labels: state.labels.map(Number), seed: integerOrText(state.seed) };
  if (Number(state.blend) > 0) {
    json.seed_b = integerOrText(state.seed_b);
    json.blend = Number(state.blend);
  }
  return { ...json, ...styleJson(state) };
}

function pictureUrl(state, scale = 1) {
  const params = stateQuery(state);
  if (scale !== 1) params.set("scale", scale);
  params.set("v", version);
  return `${generateUrl}?${params}`;
}

async function errorText(response) {
  try {
    const body = await response.json();
    if (body && typeof body.error === "string") return body.error;
  } catch {
    // not JSON: fall through to the status line
  }
  return `${response.status} ${response.statusText || "error"}`;
}

function serverMs(response) {
  const match = /dur=([\d.]+)/.exec(response.headers.get("Server-Timing") || "");
  return match ? Number(match[1]) : null;
}

/** An <img> made on first use and put into `slot` (an <img> needs a src to be valid HTML). */
function imageIn(slot, attributes) {
  let img = null;
  return (src) => {
    if (!img) {
      img = Object.assign(document.createElement("img"), attributes);
      slot.append(img);
    }
    img.src = src;
    return img;
  };
}

/** A blob answer as an object URL, the one kept until the next replaces it. */
function blobReader() {
  let objectUrl = null;
  return async (response) => {
    const previous = objectUrl;
    objectUrl = URL.createObjectURL(await response.blob());
    if (previous) URL.revokeObjectURL(previous);
    return { src: objectUrl };
  };
}

/** One picture fed by fetch: one request in flight, replies shown in order, errors shown.
 * `read` turns a reply into {src, ...}; `show` puts the src on screen; `onShown` gets the rest. */
class LiveImage {
  constructor({ show, errorBox, read = blobReader(), onShown = () => {} }) {
    this.show = show;
    this.errorBox = errorBox;
    this.read = read;
    this.onShown = onShown;
    this.controller = null;
    this.wanted = null;
  }

  /** Ask for `request` ({key, url, init}); `jump` aborts the request in flight. */
  update(request, { jump = false } = {}) {
    this.wanted = request;
    if (this.controller) {
      if (!jump) return; // shown when the reply in flight lands (see #load's finally)
      this.controller.abort();
    }
    this.#load(request);
  }

  async #load(request) {
    const controller = new AbortController();
    this.controller = controller;
    try {
      const response = await fetch(request.url, { ...request.init, signal: controller.signal });
      if (!response.ok) throw new Error(await errorText(response));
      const answer = await this.read(response);
      // A jump aborts the request in flight, but a reply already read cannot be: it must not land
      // over the newer one (nor keep that one from showing).
      if (this.controller !== controller) return;
      const img = this.show(answer.src);
      img.hidden = false;
      this.errorBox.hidden = true;
      this.errorBox.textContent = "";
      this.onShown(request, response, answer);
    } catch (error) {
      if (error.name === "AbortError" || this.controller !== controller) return;
      this.errorBox.textContent = `The server could not draw this: ${error.message}`;
      this.errorBox.hidden = false;
    } finally {
      if (this.controller === controller) {
        this.controller = null;
        if (this.wanted && this.wanted.key !== request.key) this.#load(this.wanted);
      }
    }
  }
}

/** The classifier's probabilities into the bars, and the digit it reads. */
function showReading(answer) {
  if (!answer.classifier) return; // no classifier loaded: the page says so already
  barList.classList.remove("pending");
  barList.removeAttribute("aria-busy");
  answer.classifier.forEach((probability, digit) => {
    bars[digit].value = probability;
    bars[digit].textContent = `${Math.round(100 * probability)}%`;
  });
  const best = answer.reads_as;
  readsAs.textContent = `Reads as ${best} (${Math.round(100 * answer.classifier[best])}%).`;
}

/** The bars while the page's own picture is up: the classifier reads the server's, once settled. */
function readingPending() {
  if (bars.length === 0) return; // no classifier loaded: the page says so already
  barList.classList.add("pending");
  barList.setAttribute("aria-busy", "true");
  readsAs.textContent = "Reading pending: the classifier reads the picture when the controls settle.";
}

function styleText(state) {
  const { seed, seed_b, blend } = state;
  const style = Number(blend) > 0 ? `, ${Number(blend).toFixed(3)} of the way to seed ${seed_b}` : "";
  const moved = HANDWRITING.filter((name) => Number(state[name]) !== 0);
  const handwriting = moved.map((name) => `, ${name} ${Number(state[name]).toFixed(3)}`).join("");
  return `Seed ${seed}${style}${handwriting}`;
}

const digitImage = document.getElementById("digit");
let serverShown = null; // the <img>'s picture: {key, state, answer, ms}

/** The server's picture (in the <img>) on screen, with its reading, over the page's own. */
function showServerPicture() {
  const { state, answer, ms } = serverShown;
  status.textContent = styleText(state) + (ms === null ? "" : ` · drawn in ${ms.toFixed(1)} ms`);
  showReading(answer);
  localCanvas.hidden = true;
  delete localCanvas.dataset.key;
}

const digit = new LiveImage({
  show: (src) => {
    digitImage.src = src;
    return digitImage;
  },
  errorBox: document.getElementById("error"),
  read: async (response) => {
    const answer = await response.json();
    return { ...answer, src: answer.image };
  },
  onShown: async (request, response, answer) => {
    serverShown = { key: request.key, state: request.state, answer, ms: serverMs(response) };
    digitImage.dataset.key = request.key;
    if (!localCanvas.hidden) {
      await digitImage.decode().catch(() => {}); // the canvas goes once the <img> can take its place
      // A newer picture drawn here stays on top until the server's for that state comes.
      if (localCanvas.hidden || localCanvas.dataset.key !== request.key || serverShown.key !== request.key) return;
    }
    showServerPicture();
  },
});

// The page's own pictures: a canvas over the <img>, shown only while it is newer than the server's.
const localCanvas = Object.assign(document.createElement("canvas"), { id: "digit-local", width: 28, height: 28 });
localCanvas.hidden = true;
localCanvas.setAttribute("aria-hidden", "true"); // the <img> beneath says what the picture is
digitImage.after(localCanvas);
let localDrawing = null;

/** Fetch the generator for drawing in the page, unless the person asked to save data. */
function loadLocalDrawing() {
  const saveData = matchMedia("(prefers-reduced-data: reduce)").matches || navigator.connection?.saveData;
  if (!weightsUrl || saveData) return;
  import("./local.js")
    .then(({ LocalDrawing }) => LocalDrawing.load(weightsUrl, maxSeed))
    .then(
      (drawing) => {
        localDrawing = drawing;
        form.dataset.drawing = "local"; // for whoever looks: the page now draws while dragging
      },
      () => {}, // no weights (old browser, network): the server draws every picture, as before
    );
}

/** Draw `state` in the page; false when it cannot (the server will, and say what is wrong). */
function drawLocally(key, state) {
  if (serverShown?.key === key && digit.controller === null) {
    // Back to the server's own picture of this very state (no older reply can land over it).
    showServerPicture();
    return true;
  }
  const started = performance.now();
  const picture = localDrawing.draw(state);
  if (!picture) return false;
  localCanvas.getContext("2d").putImageData(picture, 0, 0);
  localCanvas.dataset.key = key;
  localCanvas.hidden = false;
  status.textContent = `${styleText(state)} · drawn in this page in ${(performance.now() - started).toFixed(1)} ms`;
  readingPending();
  return true;
}

const seedsGrid = imageIn(document.getElementById("seeds-slot"), {
  id: "seeds-grid",
  width: 448,
  height: 112,
  alt: "The current labels drawn with four seeds",
});
const grid = new LiveImage({ show: seedsGrid, errorBox: document.getElementById("seeds-error") });
const morph = new LiveImage({
  show: imageIn(document.getElementById("morph-slot"), {
    id: "morph",
    width: 224,
    height: 224,
    alt: "Animation from the current state to the saved one",
  }),
  errorBox: document.getElementById("morph-error"),
  onShown: (request, response, answer) => {
    morphDownload.href = answer.src;
    morphDownload.download = "morph.gif";
    morphDownload.hidden = false;
  },
});
const endThumb = imageIn(document.getElementById("end-slot"), {
  id: "end-thumb",
  width: 56,
  height: 56,
  alt: "The saved end state",
});

function gridRequest(state) {
  const seed = integerOrText(state.seed);
  const seeds = [0, 1, 2, 3].map((i) => (typeof seed === "number" ? (seed + i) % (maxSeed + 1) : seed));
  const body = JSON.stringify({ labels: [state.labels.map(Number)], seeds, ...styleJson(state) });
  return {
    key: body,
    url: gridUrl,
    init: { method: "POST", body, headers: { "Content-Type": "application/json", Accept: "image/png" } },
  };
}

let frameRequested = false;
let jumpPending = false;
let settlePending = false;

/** Bring the pictures, the download link and the URL up to date, once per animation frame.
 * `settle`: the controls came to rest (a jump always does), so the server is asked. */
function schedule({ jump = false, settle = false } = {}) {
  jumpPending ||= jump;
  settlePending ||= jump || settle;
  if (frameRequested) return;
  frameRequested = true;
  requestAnimationFrame(() => {
    frameRequested = false;
    const [jumpNow, settleNow] = [jumpPending, settlePending];
    jumpPending = settlePending = false;
    render(jumpNow, settleNow);
  });
}

function showValue(slider) {
  document.getElementById(`${slider.id}-value`).value = Number(slider.value).toFixed(3);
}

let urlTimer = null;

/** The state into the address bar, a moment after the last change: browsers throttle (and then
 * refuse) history updates made on every animation frame. */
function writeUrlSoon() {
  clearTimeout(urlTimer);
  urlTimer = setTimeout(() => history.replaceState(null, "", `?${stateQuery(readState())}`), 150);
}

function render(jump, settle) {
  const state = readState();
  for (const slider of [...sliders, blendSlider, ...styleSliders]) showValue(slider);
  writeUrlSoon();
  const url = pictureUrl(state);
  download.href = pictureUrl(state, Number(downloadScale));
  download.download = `digit-${state.seed}.png`;
  const drawnHere = localDrawing !== null && drawLocally(url, state);
  if (drawnHere && !settle) return; // the server is asked when the controls settle
  jump ||= drawnHere; // a settled state replaces whatever older one is being asked for
  // Ask the server unless its own picture of this very state is back on screen (drawLocally then
  // hid the canvas): a reply for another state may still be in flight and would land over it.
  if (!(drawnHere && localCanvas.hidden)) {
    const init = { headers: { Accept: "application/json" } }; // the picture with what the classifier reads
    digit.update({ key: url, url, init, state }, { jump });
  }
  if (showSeeds.checked) grid.update(gridRequest(state), { jump });
}

function randomSeed() {
  return crypto.getRandomValues(new Uint32Array(1))[0];
}

// Keys move a slider in steps a person can count (dragging keeps the 0.001 step).
const KEY_STEPS = { ArrowRight: 0.01, ArrowUp: 0.01, ArrowLeft: -0.01, ArrowDown: -0.01, PageUp: 0.1, PageDown: -0.1 };

function keyedValue(event, slider) {
  const [low, high] = [Number(slider.min), Number(slider.max)];
  if (event.key === "Home") return low;
  if (event.key === "End") return high;
  if (!(event.key in KEY_STEPS)) return null;
  const step = KEY_STEPS[event.key] * (event.shiftKey && event.key.startsWith("Arrow") ? 10 : 1);
  return Math.min(high, Math.max(low, Math.round((Number(slider.value) + step) * 1000) / 1000));
}

// Dragging and keys: coalesce. Everything else is a jump.
for (const slider of [...sliders, blendSlider, ...styleSliders]) {
  slider.addEventListener("input", () => {
    showValue(slider);
    schedule();
  });
  slider.addEventListener("change", () => schedule({ settle: true })); // the drag ended
  slider.addEventListener("keydown", (event) => {
    const value = keyedValue(event, slider);
    if (value === null || event.altKey || event.ctrlKey || event.metaKey) return;
    event.preventDefault();
    slider.value = value;
    showValue(slider);
    schedule();
  });
  slider.addEventListener("keyup", (event) => {
    if (keyedValue(event, slider) !== null) schedule({ settle: true }); // a held key repeats until released
  });
}
// A drag that ends where it started changes nothing (no change event), yet it has ended.
document.addEventListener("pointerup", () => {
  if (!localCanvas.hidden) schedule({ settle: true });
});
for (const box of [seedBox, seedBBox]) {
  box.addEventListener("input", () => schedule({ jump: true }));
}
document.getElementById("random-seed").addEventListener("click", () => {
  seedBox.value = randomSeed();
  schedule({ jump: true });
});
document.getElementById("random-seed-b").addEventListener("click", () => {
  seedBBox.value = randomSeed();
  if (Number(blendSlider.value) === 0) blendSlider.value = 0.5;
  schedule({ jump: true });
});
for (const preset of document.querySelectorAll("a.preset")) {
  preset.addEventListener("click", (event) => {
    event.preventDefault();
    const values = preset.dataset.labels.split(",");
    sliders.forEach((slider, i) => {
      slider.value = values[i];
    });
    for (const slider of styleSliders) slider.value = 0; // as the preset's link, which names labels and seed only
    schedule({ jump: true });
  });
}
form.addEventListener("submit", (event) => {
  event.preventDefault();
  schedule({ jump: true });
});
document.getElementById("draw").hidden = true;
if (digitImage.complete) {
  loadLocalDrawing(); // the first picture came from the server, as it always has
} else {
  digitImage.addEventListener("load", loadLocalDrawing, { once: true });
}

showSeeds.addEventListener("change", () => {
  if (showSeeds.checked) {
    grid.update(gridRequest(readState()), { jump: true });
  } else {
    const shown = document.getElementById("seeds-grid");
    if (shown) shown.hidden = true;
  }
});

let endState = null;
document.getElementById("set-end").addEventListener("click", () => {
  endState = readState();
  endThumb(pictureUrl(endState, 2));
  endText.textContent = `End: seed ${endState.seed}.`;
  playButton.disabled = false;
});
playButton.addEventListener("click", () => {
  if (!endState) return;
  const body = JSON.stringify({
    from: stateJson(readState()),
    to: stateJson(endState),
    frames: integerOrText(framesBox.value.trim()),
    scale: 4,
  });
  morph.update(
    {
      key: body,
      url: interpolateUrl,
      init: { method: "POST", body, headers: { "Content-Type": "application/json", Accept: "image/gif" } },
    },
    { jump: true },
  );
});
