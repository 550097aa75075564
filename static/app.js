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

const form = document.getElementById("controls");
const { version, downloadScale, generateUrl, gridUrl, interpolateUrl } = form.dataset;
const maxSeed = Number(form.dataset.maxSeed);
const sliders = [...form.querySelectorAll('input[name="labels"]')];
const seedBox = document.getElementById("seed");
const seedBBox = document.getElementById("seed-b");
const blendSlider = document.getElementById("blend");
const download = document.getElementById("download");
const status = document.getElementById("status");
const showSeeds = document.getElementById("show-seeds");
const framesBox = document.getElementById("frames");
const playButton = document.getElementById("play");
const morphDownload = document.getElementById("morph-download");
const endText = document.getElementById("end-text");
const readsAs = document.getElementById("reads-as");
const bars = [...document.querySelectorAll("#bars meter")];

/** The controls as the server reads them: raw text, so that the server names what is wrong. */
function readState() {
  return {
    labels: sliders.map((slider) => slider.value),
    seed: seedBox.value.trim(),
    seed_b: seedBBox.value.trim(),
    blend: blendSlider.value,
  };
}

/** The state's query string, for the address bar and for pictures alike (webapp/state.py's
 * State.query writes the same): the style seed only when the blend is above 0. */
function stateQuery(state) {
  const params = new URLSearchParams({ labels: state.labels.join(","), seed: state.seed });
  if (Number(state.blend) > 0) {
    params.set("seed_b", state.seed_b);
    params.set("blend", state.blend);
  }
  return params;
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
  return json;
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
      const img = this.show(answer.src);
      img.hidden = false;
      this.errorBox.hidden = true;
      this.errorBox.textContent = "";
      this.onShown(request, response, answer);
    } catch (error) {
      if (error.name === "AbortError") return;
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
  answer.classifier.forEach((probability, digit) => {
    bars[digit].value = probability;
    bars[digit].textContent = `${Math.round(100 * probability)}%`;
  });
  const best = answer.reads_as;
  readsAs.textContent = `Reads as ${best} (${Math.round(100 * answer.classifier[best])}%).`;
}

const digitImage = document.getElementById("digit");
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
  onShown: (request, response, answer) => {
    const ms = serverMs(response);
    const { seed, seed_b, blend } = request.state;
    const style = Number(blend) > 0 ? `, ${Number(blend).toFixed(3)} of the way to seed ${seed_b}` : "";
    status.textContent = `Seed ${seed}${style}` + (ms === null ? "" : ` · drawn in ${ms.toFixed(1)} ms`);
    showReading(answer);
    digitImage.dataset.key = request.key;
  },
});

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
  const body = JSON.stringify({ labels: [state.labels.map(Number)], seeds });
  return {
    key: body,
    url: gridUrl,
    init: { method: "POST", body, headers: { "Content-Type": "application/json", Accept: "image/png" } },
  };
}

let frameRequested = false;
let jumpPending = false;

/** Bring the pictures, the download link and the URL up to date, once per animation frame. */
function schedule({ jump = false } = {}) {
  jumpPending ||= jump;
  if (frameRequested) return;
  frameRequested = true;
  requestAnimationFrame(() => {
    frameRequested = false;
    const jumpNow = jumpPending;
    jumpPending = false;
    render(jumpNow);
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

function render(jump) {
  const state = readState();
  for (const slider of [...sliders, blendSlider]) showValue(slider);
  writeUrlSoon();
  const url = pictureUrl(state);
  const init = { headers: { Accept: "application/json" } }; // the picture with what the classifier reads
  digit.update({ key: url, url, init, state }, { jump });
  download.href = pictureUrl(state, Number(downloadScale));
  download.download = `digit-${state.seed}.png`;
  if (showSeeds.checked) grid.update(gridRequest(state), { jump });
}

function randomSeed() {
  return crypto.getRandomValues(new Uint32Array(1))[0];
}

// Keys move a slider in steps a person can count (dragging keeps the 0.001 step).
const KEY_STEPS = { ArrowRight: 0.01, ArrowUp: 0.01, ArrowLeft: -0.01, ArrowDown: -0.01, PageUp: 0.1, PageDown: -0.1 };

function keyedValue(event, value) {
  if (event.key === "Home") return 0;
  if (event.key === "End") return 1;
  if (!(event.key in KEY_STEPS)) return null;
  const step = KEY_STEPS[event.key] * (event.shiftKey && event.key.startsWith("Arrow") ? 10 : 1);
  return Math.min(1, Math.max(0, Math.round((value + step) * 1000) / 1000));
}

// Dragging and keys: coalesce. Everything else is a jump.
for (const slider of [...sliders, blendSlider]) {
  slider.addEventListener("input", () => {
    showValue(slider);
    schedule();
  });
  slider.addEventListener("keydown", (event) => {
    const value = keyedValue(event, Number(slider.value));
    if (value === null || event.altKey || event.ctrlKey || event.metaKey) return;
    event.preventDefault();
    slider.value = value;
    showValue(slider);
    schedule();
  });
}
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
    schedule({ jump: true });
  });
}
form.addEventListener("submit", (event) => {
  event.preventDefault();
  schedule({ jump: true });
});
document.getElementById("draw").hidden = true;

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
