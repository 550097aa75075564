// The generator's forward pass in the page: model/inference.py's FoldedGenerator.
//
// The weights come from the server (webapp/browser_weights.py) as the very float32 numbers the
// server computes with, and both compute in float64 (JavaScript's own numbers): sums taken in
// another order than the server's differ by about 1e-16 of their size, which carries a pixel over a
// grey level's edge essentially never (docs/operations.md has the figures).

/** The weights file's arrays by name, plus its header (z_size, ch, n_classes, split). */
export function parseWeights(buffer) {
  const headerLength = new DataView(buffer).getUint32(0, true);
  const header = JSON.parse(new TextDecoder().decode(new Uint8Array(buffer, 4, headerLength)));
  if (header.format !== "folded-generator-float32") throw new Error(`unknown weights format ${header.format}`);
  const arrays = {};
  let offset = 4 + headerLength;
  for (const { name, shape } of header.arrays) {
    const size = shape.reduce((a, b) => a * b, 1);
    arrays[name] = new Float32Array(buffer, offset, size);
    offset += 4 * size;
  }
  if (offset !== buffer.byteLength) throw new Error("the weights file is truncated or too long");
  return { ...header, arrays };
}

/** The generator of webapp/browser_weights.py's file: (noise, labels) -> 28x28 uint8 pixels. */
export class LocalGenerator {
  constructor(buffer) {
    const { z_size: zSize, ch, n_classes: nClasses, split, arrays } = parseWeights(buffer);
    Object.assign(this, { zSize, ch, nClasses, split, ...arrays });
    this.fcSize = this.fc_b.length; // ch * 7 * 7
    this.dc1Channels = this.dc1_b.length; // ch / 2
    this.noiseKey = null;
    this.noisePart = new Float64Array(this.fcSize);
    this.hidden0 = new Float64Array(this.fcSize); // (7 * 7, ch): one pixel's channels side by side
    this.hidden1 = new Float64Array(14 * 14 * this.dc1Channels); // (14 * 14, ch / 2), likewise
  }

  /** The noise's share of the first product, kept while only the labels change (a slider drag). */
  #noisePart(noise, noiseKey) {
    if (noiseKey !== null && noiseKey === this.noiseKey) return this.noisePart;
    const { fcSize, fc_w: weights, noisePart } = this;
    noisePart.fill(0);
    for (let i = 0; i < this.zSize; i++) {
      const z = noise[i];
      const row = i * fcSize;
      for (let j = 0; j < fcSize; j++) noisePart[j] += z * weights[row + j];
    }
    this.noiseKey = noiseKey;
    return noisePart;
  }

  /** The label-conditioned gains and biases of both layers (gain0 | bias0 | gain1 | bias1). */
  #labelAffine(labels) {
    const weights = this.label_affine;
    const size = weights.length / this.nClasses;
    const sums = new Float64Array(size);
    for (let k = 0; k < this.nClasses; k++) {
      const label = labels[k];
      if (label === 0) continue;
      const row = k * size;
      for (let j = 0; j < size; j++) sums[j] += label * weights[row + j];
    }
    return sums;
  }

  /** The picture for `noise` (Float32Array of z_size) and `labels` (Float32Array of n_classes),
   * as 28 * 28 grey levels into `pixels` (a Uint8ClampedArray). `noiseKey` names the noise, so
   * that its share of the first layer is computed once while only the labels move. */
  draw(noise, labels, pixels, noiseKey = null) {
    const { fcSize, ch, zSize, fc_w: fcW, fc_b: fcB } = this;
    const noisePart = this.#noisePart(noise, noiseKey);
    const affine = this.#labelAffine(labels);
    const [gain0, bias0, gain1] = this.split;
    const hidden0 = this.hidden0;
    for (let j = 0; j < fcSize; j++) {
      let sum = noisePart[j];
      for (let k = 0; k < this.nClasses; k++) sum += labels[k] * fcW[(zSize + k) * fcSize + j];
      const h = (sum + fcB[j]) * (affine[j] + 1) + affine[gain0 + j];
      hidden0[(j % 49) * ch + ((j / 49) | 0)] = h > 0 ? h : 0; // ReLU; (ch, 7, 7) -> (7 * 7, ch)
    }
    const gains1 = affine.subarray(bias0, gain1);
    const biases1 = affine.subarray(gain1);
    deconvolve(hidden0, 7, ch, this.dc1_taps, this.dc1_b, this.hidden1, (oc, h) => {
      h = h * (gains1[oc] + 1) + biases1[oc];
      return h > 0 ? h : 0;
    });
    deconvolve(this.hidden1, 14, this.dc1Channels, this.dc2_taps, this.dc2_b, pixels, (oc, h) => {
      // Chainer's sigmoid, tanh(x / 2) / 2 + 1 / 2, then model/images.py's rint(v * 255).
      return (Math.tanh(h * 0.5) * 0.5 + 0.5) * 255; // a Uint8ClampedArray rounds half to even, as rint
    });
    return pixels;
  }
}

/** A 4x4, stride 2, pad 1 transposed convolution from a side x side input to 2 side x 2 side,
 * both laid out (pixels, channels). taps is (4, 4, out channels, in channels). Each output sums
 * its (at most four) taps, adds the bias and goes through `activate`. */
function deconvolve(input, side, channels, taps, bias, output, activate) {
  const outChannels = bias.length;
  const outSide = 2 * side;
  const sums = new Float64Array(outChannels);
  const nonzero = nonzeroChannels(input, side * side, channels);
  for (let oy = 0; oy < outSide; oy++) {
    for (let ox = 0; ox < outSide; ox++) {
      sums.fill(0);
      // Output row oy takes input row iy through kernel row ky = oy + 1 - 2 iy (columns alike).
      for (let ky = (oy + 1) % 2; ky < 4; ky += 2) {
        const iy = (oy + 1 - ky) >> 1;
        if (iy < 0 || iy >= side) continue;
        for (let kx = (ox + 1) % 2; kx < 4; kx += 2) {
          const ix = (ox + 1 - kx) >> 1;
          if (ix >= 0 && ix < side) addTap(taps, (ky * 4 + kx) * outChannels * channels, nonzero, iy * side + ix, sums);
        }
      }
      const outBase = (oy * outSide + ox) * outChannels;
      for (let oc = 0; oc < outChannels; oc++) output[outBase + oc] = activate(oc, sums[oc] + bias[oc]);
    }
  }
}

/** Each input pixel's channels that are not zero (after a ReLU, about half), in order: a product
 * over those alone is the very same sum, in half the time. */
function nonzeroChannels(input, pixels, channels) {
  const index = new Int32Array(pixels * channels);
  const value = new Float64Array(pixels * channels);
  const count = new Int32Array(pixels);
  for (let p = 0; p < pixels; p++) {
    let n = p * channels;
    for (let c = 0; c < channels; c++) {
      const v = input[p * channels + c];
      if (v !== 0) {
        index[n] = c;
        value[n++] = v;
      }
    }
    count[p] = n - p * channels;
  }
  return { index, value, count, channels };
}

/** sums[oc] += the product of one tap's (out channels, channels) matrix at `w` and input pixel
 * `p`'s channels. Eight output channels go side by side (eight independent sums over the same
 * input) when there are that many: one sum at a time waits on each addition's latency, and takes
 * twice as long. */
function addTap(taps, w, { index, value, count, channels }, p, sums) {
  const start = p * channels;
  const end = start + count[p];
  let oc = 0;
  for (; oc + 8 <= sums.length; oc += 8, w += 8 * channels) {
    let s0 = 0, s1 = 0, s2 = 0, s3 = 0, s4 = 0, s5 = 0, s6 = 0, s7 = 0;
    for (let n = start; n < end; n++) {
      const v = value[n];
      const i = w + index[n];
      s0 += taps[i] * v;
      s1 += taps[i + channels] * v;
      s2 += taps[i + 2 * channels] * v;
      s3 += taps[i + 3 * channels] * v;
      s4 += taps[i + 4 * channels] * v;
      s5 += taps[i + 5 * channels] * v;
      s6 += taps[i + 6 * channels] * v;
      s7 += taps[i + 7 * channels] * v;
    }
    sums[oc] += s0;
    sums[oc + 1] += s1;
    sums[oc + 2] += s2;
    sums[oc + 3] += s3;
    sums[oc + 4] += s4;
    sums[oc + 5] += s5;
    sums[oc + 6] += s6;
    sums[oc + 7] += s7;
  }
  for (; oc < sums.length; oc++, w += channels) {
    let sum = 0;
    for (let n = start; n < end; n++) sum += taps[w + index[n]] * value[n];
    sums[oc] += sum;
  }
}
