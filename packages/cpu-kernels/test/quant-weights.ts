// Quantized weights with random codes and parameters, their dense float64 values, and the
// float64 reference product, shared by the quantized-matmul tests.
import { tensor, type DType } from '@blora/tensor';
import { randomValues, seededRandom } from '@blora/tensor/testing';
import type { FourBitOpAttrs, IntOpAttrs } from '@blora/quant';

/** `n` seeded integers in [0, count). */
export function randomInts(n: number, seed: number, count: number): Uint8Array {
  const rnd = seededRandom(seed);
  return Uint8Array.from({ length: n }, () => Math.floor(rnd() * count));
}

/** The 4-bit code of element i: high nibble of byte i / 2 for even i, low nibble for odd i. */
export function nibble(bytes: Uint8Array, i: number): number {
  const byte = bytes[Math.floor(i / 2)]!;
  return i % 2 === 0 ? Math.floor(byte / 16) : byte % 16;
}

/** A 4-bit absmax weight with random codes, block scales and (unless given) table. */
export function fourBitWeight(outF: number, inF: number, blocksize: number, seed: number, table?: ArrayLike<number>) {
  const n = outF * inF;
  const packed = randomInts(Math.ceil(n / 2), seed, 256);
  const absmax = Float32Array.from(randomValues(Math.ceil(n / blocksize), seed + 1, 0.25, 2));
  const codeTable = Float32Array.from(table ?? randomValues(16, seed + 2));
  const dense = new Float64Array(n);
  const codes = Uint8Array.from({ length: n }, (_, i) => nibble(packed, i));
  for (let i = 0; i < n; i++) dense[i] = Math.fround(codeTable[codes[i]!]! * absmax[Math.floor(i / blocksize)]!);
  const tensors = {
    packed: tensor(packed, { dtype: 'uint8' }),
    absmax: tensor(absmax, { dtype: 'float32' }),
    table: tensor(codeTable, { dtype: 'float32' }),
  };
  const raw = { codes, absmax: absmax.slice(), table: codeTable.slice() };
  return { ...tensors, dense, raw, attrs: { outFeatures: outF, inFeatures: inF, blocksize } satisfies FourBitOpAttrs };
}

/**
 * An integer-block weight with random codes; scales and offsets are multiples of 2^-10 and
 * 2^-8 small enough to be exact in float16, so the reference can use them as they are.
 */
export function intWeight(bits: 4 | 8, outF: number, inF: number, blockRows: number, blockCols: number, paramDType: DType, seed: number) {
  const n = outF * inF;
  const q = randomInts(n, seed, 2 ** bits);
  const blocks = (outF / blockRows) * (inF / blockCols);
  const scales = Array.from(randomInts(blocks, seed + 1, 64), (m) => (m + 1) / 1024);
  const offsets = Array.from(randomInts(blocks, seed + 2, 256), (m) => (m - 128) / 256);
  const codes = bits === 8 ? q : new Uint8Array(Math.ceil(n / 2));
  if (bits === 4) for (let i = 0; i < n; i++) codes[i >> 1]! |= i % 2 === 0 ? q[i]! << 4 : q[i]!;
  const gridCols = inF / blockCols;
  const dense = new Float64Array(n);
  // α·q + β without the float32 rounding of the decoded weight (exact in float64).
  const exact = new Float64Array(n);
  for (let r = 0; r < outF; r++) {
    for (let c = 0; c < inF; c++) {
      const b = Math.floor(r / blockRows) * gridCols + Math.floor(c / blockCols);
      exact[r * inF + c] = scales[b]! * q[r * inF + c]! + offsets[b]!;
      dense[r * inF + c] = Math.fround(exact[r * inF + c]!);
    }
  }
  const tensors = {
    codes: tensor(codes, { dtype: 'uint8' }),
    scales: tensor(scales, { dtype: paramDType }),
    offsets: tensor(offsets, { dtype: paramDType }),
  };
  return { ...tensors, dense, exact, attrs: { outFeatures: outF, inFeatures: inF, blockRows, blockCols } satisfies IntOpAttrs };
}

/** y = x W^T (or x W when `transposed`) in float64; x holds `rows` rows. */
export function reference(x: ArrayLike<number>, rows: number, dense: Float64Array, outF: number, inF: number, transposed: boolean): Float64Array {
  const k = transposed ? outF : inF;
  const n = transposed ? inF : outF;
  const y = new Float64Array(rows * n);
  for (let i = 0; i < rows; i++) {
    for (let j = 0; j < n; j++) {
      let s = 0;
      for (let p = 0; p < k; p++) s += x[i * k + p]! * (transposed ? dense[p * inF + j]! : dense[j * inF + p]!);
      y[i * n + j] = s;
    }
  }
  return y;
}
