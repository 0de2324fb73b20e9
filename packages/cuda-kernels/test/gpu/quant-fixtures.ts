// Fixtures of the GPU tests of the quantized-weight ops (quant.test.ts, quant-tiles.test.ts): seeded
// NF4 and INT4 / INT8 weights with a plain-loop decode, their tensors on a device, and a product
// checked against a float64 reference and the CPU kernels.
import { tensor, type DType, type Tensor } from '@blora/tensor';
import { assertClose, type Tolerance } from '@blora/tensor/testing';
import { NF4_CODE, type FourBitOpAttrs, type IntOpAttrs } from '@blora/quant';
import { expect } from 'vitest';
import { makeTensor, roundTo, sizeOf, valuesFor, type Layout } from './helpers.js';

/** The 16-bit activation dtypes of the tensor-core kernels. */
export const HALF_DTYPES: readonly DType[] = ['bfloat16', 'float16'];

/** Seeded bytes. */
export function bytes(n: number, seed: number): number[] {
  return Array.from(valuesFor('float64', n, seed, 0, 256), Math.floor);
}

/** A weight in both formats' host representation, plus its decoded values (plain loops, float32 steps). */
export interface FourBitWeight {
  attrs: FourBitOpAttrs;
  packed: number[];
  absmax: Float64Array;
  table: Float64Array;
  dense: Float64Array;
}

export function fourBitWeight(outFeatures: number, inFeatures: number, blocksize: number, seed: number): FourBitWeight {
  const n = outFeatures * inFeatures;
  const packed = bytes(Math.ceil(n / 2), seed);
  const absmax = roundTo(valuesFor('float32', Math.ceil(n / blocksize), seed + 1, 0.25, 1.5), 'float32');
  const table = Float64Array.from(NF4_CODE);
  const dense = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    const byte = packed[i >> 1]!;
    dense[i] = Math.fround(table[i & 1 ? byte & 15 : byte >> 4]! * absmax[Math.floor(i / blocksize)]!);
  }
  return { attrs: { outFeatures, inFeatures, blocksize }, packed, absmax, table, dense };
}

export interface IntWeight {
  bits: 4 | 8;
  attrs: IntOpAttrs;
  codes: number[];
  scaleDType: DType;
  scales: Float64Array;
  offsets: Float64Array;
  dense: Float64Array;
}

export function intWeight(bits: 4 | 8, outFeatures: number, inFeatures: number, blockRows: number, blockCols: number, scaleDType: DType, seed: number): IntWeight {
  const n = outFeatures * inFeatures;
  const blocks = (outFeatures / blockRows) * (inFeatures / blockCols);
  const codes = bytes(bits === 4 ? Math.ceil(n / 2) : n, seed);
  const scales = roundTo(valuesFor('float32', blocks, seed + 1, 0.001, 0.05), scaleDType);
  const offsets = roundTo(valuesFor('float32', blocks, seed + 2, -0.4, 0.1), scaleDType);
  const dense = new Float64Array(n);
  for (let r = 0; r < outFeatures; r++) {
    for (let c = 0; c < inFeatures; c++) {
      const i = r * inFeatures + c;
      const q = bits === 8 ? codes[i]! : i & 1 ? codes[i >> 1]! & 15 : codes[i >> 1]! >> 4;
      const b = Math.floor(r / blockRows) * (inFeatures / blockCols) + Math.floor(c / blockCols);
      dense[i] = Math.fround(scales[b]! * q + offsets[b]!);
    }
  }
  return { bits, attrs: { outFeatures, inFeatures, blockRows, blockCols }, codes, scaleDType, scales, offsets, dense };
}

/** The weight's tensors on `device`. */
export function fourBitTensors(w: FourBitWeight, device: string): Tensor[] {
  return [tensor(w.packed, { dtype: 'uint8', device }), tensor(w.absmax, { device }), tensor(w.table, { device })];
}

export function intTensors(w: IntWeight, device: string): Tensor[] {
  return [tensor(w.codes, { dtype: 'uint8', device }), tensor(w.scales, { dtype: w.scaleDType, device }), tensor(w.offsets, { dtype: w.scaleDType, device })];
}

/** y = x Wᵀ (or dx = dy W when `transposed`) in float64 for x [rows, k]. */
export function productRef(x: Float64Array, dense: Float64Array, outFeatures: number, inFeatures: number, transposed: boolean): Float64Array {
  const k = transposed ? outFeatures : inFeatures;
  const n = transposed ? inFeatures : outFeatures;
  const rows = x.length / k;
  const y = new Float64Array(rows * n);
  for (let m = 0; m < rows; m++) {
    for (let j = 0; j < n; j++) {
      let s = 0;
      for (let c = 0; c < k; c++) s += x[m * k + c]! * (transposed ? dense[c * inFeatures + j]! : dense[j * inFeatures + c]!);
      y[m * n + j] = s;
    }
  }
  return y;
}

/** Rounding of a product of depth k: the GEMM of 16-bit activations also rounds the weight to their dtype. */
export function productTolerance(dtype: DType, k: number): Tolerance {
  switch (dtype) {
    case 'float64': return { rtol: 1e-12, atol: 1e-12 * k };
    case 'float32': return { rtol: 1e-5, atol: 2e-6 * k };
    case 'float16': return { rtol: 4e-3, atol: 6e-3 * Math.sqrt(k) };
    default: return { rtol: 3e-2, atol: 4e-2 * Math.sqrt(k) };
  }
}

export type Product = (x: Tensor, weight: Tensor[], transposed: boolean) => Tensor;

/** Checks x [...lead, k] on cuda against the float64 product and the CPU kernel. */
export function checkProduct(lead: number[], k: number, n: number, dtype: DType, layout: Layout, dense: Float64Array,
  outFeatures: number, inFeatures: number, transposed: boolean, weightOn: (device: string) => Tensor[], product: Product): void {
  const shape = [...lead, k];
  const xv = roundTo(valuesFor(dtype, sizeOf(shape), k + n + lead.length), dtype);
  const expected = productRef(xv, dense, outFeatures, inFeatures, transposed);
  const results = ['cuda', 'cpu'].map((device) => {
    const x = makeTensor(xv, shape, dtype, device, layout);
    const weight = weightOn(device);
    const y = product(x, weight, transposed);
    expect(y.device).toBe(device);
    expect(y.shape).toEqual([...lead, n]);
    const values = y.toFloat64Array();
    for (const t of [x, y, ...weight]) t.dispose();
    return values;
  });
  const tol = productTolerance(dtype, k);
  assertClose(results[0]!, expected, tol);
  assertClose(results[0]!, results[1]!, tol);
}

/** Activation row counts: GEMV (1, 5, 16) and GEMM (17, 40), plus a 3-D batch. */
