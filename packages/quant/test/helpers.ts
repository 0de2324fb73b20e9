// Independent references for the tests: plain loops in float64, no library code (refWeight only
// reads the stored parts of a weight and decodes them with these loops).
import { randomNormalValues, seededRandom } from '@blora/tensor/testing';
import { FourBitLinear, type IntBlockLinear, type QuantizedLinear } from '../src/index.js';

export const f32 = Math.fround;

/** Student-t values with `nu` degrees of freedom (heavy tails), seeded. */
export function studentTValues(n: number, seed: number, nu = 3): Float64Array {
  const z = randomNormalValues(n, seed);
  const chi = randomNormalValues(n * nu, seed + 1000);
  const out = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    let s = 0;
    for (let k = 0; k < nu; k++) s += chi[i * nu + k]! ** 2;
    out[i] = z[i]! / Math.sqrt(s / nu);
  }
  return out;
}

/** Normal values with standard deviation `sigma`, rounded to float32. */
export function normalFloat32(n: number, seed: number, sigma = 0.02): Float64Array {
  return randomNormalValues(n, seed).map((v) => f32(v * sigma));
}

/** Uniform integers in [0, count). */
export function randomInts(n: number, seed: number, count: number): number[] {
  const rnd = seededRandom(seed);
  return Array.from({ length: n }, () => Math.floor(rnd() * count));
}

/** The 4-bit code of element i: high nibble for even i, low nibble for odd i. */
export function refNibble(packed: ArrayLike<number>, i: number): number {
  const byte = packed[Math.floor(i / 2)]!;
  return i % 2 === 0 ? Math.floor(byte / 16) : byte % 16;
}

/** Dense [out * in] weight of a 4-bit absmax format: table[code] * absmax in float32. */
export function refDecodeFourBit(packed: ArrayLike<number>, absmax: ArrayLike<number>, table: ArrayLike<number>, blocksize: number, n: number): Float64Array {
  const w = new Float64Array(n);
  for (let i = 0; i < n; i++) w[i] = f32(table[refNibble(packed, i)]! * absmax[Math.floor(i / blocksize)]!);
  return w;
}

/** Dense weight of an integer-block format: α·q + β in float32. */
export function refDecodeInt(
  codes: ArrayLike<number>, bits: 4 | 8, scales: ArrayLike<number>, offsets: ArrayLike<number>,
  out: number, inF: number, blockRows: number, blockCols: number,
): Float64Array {
  const w = new Float64Array(out * inF);
  const gridCols = inF / blockCols;
  for (let r = 0; r < out; r++) {
    for (let c = 0; c < inF; c++) {
      const i = r * inF + c;
      const q = bits === 4 ? refNibble(codes, i) : codes[i]!;
      const b = Math.floor(r / blockRows) * gridCols + Math.floor(c / blockCols);
      w[i] = f32(scales[b]! * q + offsets[b]!);
    }
  }
  return w;
}

/** y[m, o] = Σ_i x[m, i] w[o, i] in float64. */
export function refMatmul(x: ArrayLike<number>, w: ArrayLike<number>, rows: number, out: number, inF: number): Float64Array {
  const y = new Float64Array(rows * out);
  for (let m = 0; m < rows; m++) {
    for (let o = 0; o < out; o++) {
      let s = 0;
      for (let i = 0; i < inF; i++) s += x[m * inF + i]! * w[o * inF + i]!;
      y[m * out + o] = s;
    }
  }
  return y;
}

/** dx[m, i] = Σ_o dy[m, o] w[o, i] in float64. */
export function refMatmulT(dy: ArrayLike<number>, w: ArrayLike<number>, rows: number, out: number, inF: number): Float64Array {
  const dx = new Float64Array(rows * inF);
  for (let m = 0; m < rows; m++) {
    for (let i = 0; i < inF; i++) {
      let s = 0;
      for (let o = 0; o < out; o++) s += dy[m * out + o]! * w[o * inF + i]!;
      dx[m * inF + i] = s;
    }
  }
  return dx;
}

/** Largest |a - b|. */
export function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}

/** The next float32 above `x` (toward +Infinity). */
export function nextUpFloat32(x: number): number {
  if (x === 0) return 1.401298464324817e-45;
  const b = new Float32Array([x]);
  new Int32Array(b.buffer)[0]! += x > 0 ? 1 : -1;
  return b[0]!;
}

/** The dense weight of `q` rebuilt from its stored parts with the plain-loop decoders above. */
export function refWeight(q: QuantizedLinear): Float64Array {
  if (q instanceof FourBitLinear) {
    const absmax = q.scales();
    const w = refDecodeFourBit(q.packed.toTypedArray() as Uint8Array, absmax.toFloat64Array(), q.table.toFloat64Array(), q.blocksize, q.numel);
    absmax.dispose();
    return w;
  }
  const i = q as IntBlockLinear;
  return refDecodeInt(i.codes.toTypedArray() as Uint8Array, i.bits, i.scaleTensor.toFloat64Array(), i.offsetTensor.toFloat64Array(),
    i.outFeatures, i.inFeatures, i.blockRows, i.blockCols);
}
