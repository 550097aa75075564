// Pictures drawn in the page while the controls move: the page's state -> the server's noise and
// labels -> the generator's forward pass (generator.js) -> 28x28 grey pixels for a canvas.

import { LocalGenerator } from "./generator.js";
import { seedNoise, slerp, styledNoise } from "./noise.js";

const SIDE = 28;
const SEED_TEXT = /^\d{1,10}$/;
const NOISES_KEPT = 8; // a drag moves one seed's noise, a blend two: a few are enough

const HANDWRITING = ["slant", "thickness", "width"]; // model/handwriting.py's sliders, in its order

/** The state as numbers, or null where the server would refuse it (it then says why, not us). */
export function checkedState(state, maxSeed, hasHandwriting) {
  const seed = SEED_TEXT.test(state.seed) ? Number(state.seed) : NaN;
  const blend = Number(state.blend);
  const labels = state.labels.map(Number);
  const style = HANDWRITING.map((name) => Number(state[name] ?? 0));
  if (!(seed <= maxSeed) || !(blend >= 0 && blend <= 1)) return null;
  if (labels.some((label) => !(label >= 0 && label <= 1))) return null;
  if (style.some((value) => !(value >= -1 && value <= 1) || (value !== 0 && !hasHandwriting))) return null;
  if (blend === 0) return { labels, seed, seedB: null, blend, style };
  const seedB = SEED_TEXT.test(state.seed_b) ? Number(state.seed_b) : NaN;
  return seedB <= maxSeed ? { labels, seed, seedB, blend, style } : null;
}

export class LocalDrawing {
  /** The generator's weights from `url`, or an error when they cannot be had. */
  static async load(url, maxSeed) {
    const response = await fetch(url);
    if (!response.ok) throw new Error(`${url}: ${response.status}`);
    return new LocalDrawing(new LocalGenerator(await response.arrayBuffer()), maxSeed);
  }

  constructor(generator, maxSeed) {
    this.generator = generator;
    this.maxSeed = maxSeed;
    this.noises = new Map(); // seed -> noise, the most recently used last
    this.pixels = new Uint8ClampedArray(SIDE * SIDE);
    this.image = new ImageData(SIDE, SIDE);
  }

  seedNoise(seed) {
    let noise = this.noises.get(seed);
    if (noise) {
      this.noises.delete(seed);
    } else {
      noise = seedNoise(seed, this.generator.zSize);
      if (this.noises.size >= NOISES_KEPT) this.noises.delete(this.noises.keys().next().value);
    }
    this.noises.set(seed, noise);
    return noise;
  }

  /** The noise of a checked state, as webapp/state.py's State.noise: the seed's, or its blend,
   * moved by the handwriting sliders. */
  noise({ seed, seedB, blend, style }) {
    const noise = this.seedNoise(seed);
    const blended = seedB === null ? noise : slerp(noise, this.seedNoise(seedB), blend);
    return styledNoise(blended, style, this.generator.handwriting);
  }

  /** The picture of the page's `state` as ImageData, or null when the server would refuse it. */
  draw(state) {
    const checked = checkedState(state, this.maxSeed, this.generator.handwriting !== undefined);
    if (!checked) return null;
    const noiseKey = `${checked.seed} ${checked.seedB} ${checked.blend} ${checked.style}`;
    this.generator.draw(this.noise(checked), Float32Array.from(checked.labels), this.pixels, noiseKey);
    const rgba = this.image.data;
    this.pixels.forEach((grey, i) => {
      rgba[4 * i] = rgba[4 * i + 1] = rgba[4 * i + 2] = grey;
      rgba[4 * i + 3] = 255;
    });
    return this.image;
  }
}
