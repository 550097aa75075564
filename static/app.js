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
const version = form.dataset.version;
const downloadScale = form.dataset.downloadScale;
const maxSeed = Number(form.dataset.maxSeed);
const sliders = [...form.querySelectorAll('input[name="labels"]')];
const seedBox = document.getElementById("seed");
const seedBBox = document.getElementById("seed-b");
const blendSlider = document.getElementById("blend");
const download = document.getElementById("download");
const status = document.getElementById("status");
const showSeeds = document.getElementById("show-seeds");
const seedsGrid = document.getElementById("seeds-grid");
const framesBox = document.getElementById("frames");
const playButton = document.getElementById("play");
const morphImage = document.getElementById("morph");
const morphDownload = document.getElementById("morph-download");
const endThumb = document.getElementById("end-thumb");
const endText = document.getElementById("end-text");

/** The controls as the server reads them: raw text, so that the server names what is wrong. */
function readState() {
  return {
    labels: sliders.map((slider) => slider.value),
    seed: seedBox.value.trim(),
    seed_b: seedBBox.value.trim(),
    blend: blendSlider.value,
  };
}

/** Query parameters of one picture (the style seed only matters when the blend is above 0). */
function pictureParams(state) {
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
  const params = pictureParams(state);
  if (scale !== 1) params.set("scale", scale);
  params.set("v", version);
  return `/generate?${params}`;
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

/** One picture fed by fetch: one request in flight, replies shown in order, errors shown. */
class LiveImage {
  constructor(img, errorBox, onShown = () => {}) {
    this.img = img;
    this.errorBox = errorBox;
    this.onShown = onShown;
    this.controller = null;
    this.wanted = null;
    this.objectUrl = null;
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
      const blob = await response.blob();
      const previous = this.objectUrl;
      this.objectUrl = URL.createObjectURL(blob);
      this.img.src = this.objectUrl;
      this.img.hidden = false;
      if (previous) URL.revokeObjectURL(previous);
      this.errorBox.hidden = true;
      this.errorBox.textContent = "";
      this.onShown(request, response, this.objectUrl);
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

const digit = new LiveImage(
  document.getElementById("digit"),
  document.getElementById("error"),
  (request, response) => {
    const ms = serverMs(response);
    const { seed, seed_b, blend } = request.state;
    const style = Number(blend) > 0 ? `, ${Number(blend).toFixed(3)} of the way to seed ${seed_b}` : "";
    status.textContent = `Seed ${seed}${style}` + (ms === null ? "" : ` · drawn in ${ms.toFixed(1)} ms`);
    document.getElementById("digit").dataset.key = request.key;
  },
);

const grid = new LiveImage(seedsGrid, document.getElementById("seeds-error"));
const morph = new LiveImage(morphImage, document.getElementById("morph-error"), (request, response, url) => {
  morphDownload.href = url;
  morphDownload.hidden = false;
});

function gridRequest(state) {
  const seed = integerOrText(state.seed);
  const seeds = [0, 1, 2, 3].map((i) => (typeof seed === "number" ? (seed + i) % (maxSeed + 1) : seed));
  const body = JSON.stringify({ labels: [state.labels.map(Number)], seeds });
  return {
    key: body,
    url: "/grid",
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
  urlTimer = setTimeout(() => {
    const state = readState();
    const page = new URLSearchParams({
      labels: state.labels.join(","),
      seed: state.seed,
      seed_b: state.seed_b,
      blend: state.blend,
    });
    history.replaceState(null, "", `?${page}`);
  }, 150);
}

function render(jump) {
  const state = readState();
  for (const slider of [...sliders, blendSlider]) showValue(slider);
  writeUrlSoon();
  const url = pictureUrl(state);
  digit.update({ key: url, url, state }, { jump });
  download.href = pictureUrl(state, Number(downloadScale));
  download.download = `digit-${state.seed}.png`;
  if (showSeeds.checked) grid.update(gridRequest(state), { jump });
}

function randomSeed() {
  return crypto.getRandomValues(new Uint32Array(1))[0];
}

// Dragging: coalesce. Everything else is a jump.
for (const slider of [...sliders, blendSlider]) {
  slider.addEventListener("input", () => {
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
    seedsGrid.hidden = true;
  }
});

let endState = null;
document.getElementById("set-end").addEventListener("click", () => {
  endState = readState();
  endThumb.src = pictureUrl(endState, 2);
  endThumb.hidden = false;
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
      url: "/interpolate",
      init: { method: "POST", body, headers: { "Content-Type": "application/json", Accept: "image/gif" } },
    },
    { jump: true },
  );
});
