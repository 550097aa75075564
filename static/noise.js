// The server's noise for a seed, computed in the page bit for bit (model/sampling.py's NOISE_RULE):
// numpy.random.default_rng(seed).uniform(-1, 1, z_size).astype(float32), that is NumPy's
// SeedSequence, its PCG64 (XSL-RR) generator and its 53-bit doubles; the style blend (slerp); and the
// handwriting sliders' move (model/handwriting.py's styled_noise).

const MASK64 = (1n << 64n) - 1n;
const MASK128 = (1n << 128n) - 1n;
const PCG_MULTIPLIER = (2549297995355413924n << 64n) | 4865540595714422341n;

// SeedSequence's hash constants (numpy/random/bit_generator.pyx).
const INIT_A = 0x43b0d7e5;
const MULT_A = 0x931e8875;
const INIT_B = 0x8b51f9dd;
const MULT_B = 0x58f38ded;
const MIX_MULT_L = 0xca01f9dd;
const MIX_MULT_R = 0x4973f715;
const POOL_SIZE = 4;

/** SeedSequence(seed).generate_state(4, uint64) for a seed in [0, 2**32): PCG64's seed words. */
function seedWords(seed) {
  let hashConst = INIT_A;
  const hashmix = (value) => {
    value = (value ^ hashConst) >>> 0;
    hashConst = Math.imul(hashConst, MULT_A) >>> 0;
    value = Math.imul(value, hashConst) >>> 0;
    return (value ^ (value >>> 16)) >>> 0;
  };
  const mix = (x, y) => {
    const result = (Math.imul(MIX_MULT_L, x) - Math.imul(MIX_MULT_R, y)) >>> 0;
    return (result ^ (result >>> 16)) >>> 0;
  };
  const pool = [hashmix(seed >>> 0)]; // a seed below 2**32 is one 32-bit word of entropy
  for (let i = 1; i < POOL_SIZE; i++) pool.push(hashmix(0));
  for (let src = 0; src < POOL_SIZE; src++) {
    for (let dst = 0; dst < POOL_SIZE; dst++) {
      if (src !== dst) pool[dst] = mix(pool[dst], hashmix(pool[src]));
    }
  }
  let stateConst = INIT_B;
  const words = [];
  for (let i = 0; i < 8; i++) {
    let value = (pool[i % POOL_SIZE] ^ stateConst) >>> 0;
    stateConst = Math.imul(stateConst, MULT_B) >>> 0;
    value = Math.imul(value, stateConst) >>> 0;
    words.push(BigInt((value ^ (value >>> 16)) >>> 0));
  }
  // Pairs of little-endian 32-bit words make the four 64-bit words.
  return [0, 2, 4, 6].map((i) => words[i] | (words[i + 1] << 32n));
}

/** PCG64's 64-bit outputs for NumPy's seeding of `seed`, one per call. */
function pcg64(seed) {
  const [s0, s1, i0, i1] = seedWords(seed);
  const inc = ((((i0 << 64n) | i1) << 1n) | 1n) & MASK128;
  let state = 0n;
  const step = () => {
    state = (state * PCG_MULTIPLIER + inc) & MASK128;
  };
  step();
  state = (state + ((s0 << 64n) | s1)) & MASK128;
  step();
  return () => {
    step();
    const xored = ((state >> 64n) ^ state) & MASK64;
    const rotation = state >> 122n;
    return ((xored >> rotation) | (xored << ((64n - rotation) & 63n))) & MASK64;
  };
}

/** The noise for one seed: NumPy's uniform(-1, 1) doubles, each rounded to float32. */
export function seedNoise(seed, zSize) {
  const next = pcg64(seed);
  const noise = new Float32Array(zSize);
  for (let i = 0; i < zSize; i++) {
    noise[i] = -1 + 2 * (Number(next() >> 11n) / 9007199254740992);
  }
  return noise;
}

function dot(a, b) {
  let sum = 0;
  for (let i = 0; i < a.length; i++) sum += a[i] * b[i];
  return sum;
}

/** Spherical interpolation from a (t = 0) to b (t = 1) in float64, as model/sampling.py's slerp. */
export function slerp(a, b, t) {
  if (t === 0 || t === 1) return Float32Array.from(t === 0 ? a : b);
  const cos = dot(a, b) / (Math.sqrt(dot(a, a)) * Math.sqrt(dot(b, b)));
  const omega = Math.acos(Math.min(1, Math.max(-1, cos)));
  const sine = Math.sin(omega);
  const mixed = new Float32Array(a.length);
  for (let i = 0; i < a.length; i++) {
    mixed[i] =
      sine < 1e-6 ? (1 - t) * a[i] + t * b[i] : (Math.sin((1 - t) * omega) * a[i] + Math.sin(t * omega) * b[i]) / sine;
  }
  return mixed;
}

/** The noise moved by the handwriting sliders `style` along `directions` (3 rows of z_size), as
 * model/handwriting.py's styled_noise: z + s1 a1 + s2 a2 + s3 a3 in float64, added in that order,
 * rounded to float32; the noise itself when every slider is at 0. */
export function styledNoise(noise, style, directions) {
  if (style.every((value) => value === 0)) return noise;
  const moved = new Float32Array(noise.length);
  for (let i = 0; i < noise.length; i++) {
    let sum = noise[i];
    for (let k = 0; k < style.length; k++) sum = sum + style[k] * directions[k * noise.length + i];
    moved[i] = sum;
  }
  return moved;
}
