// Matmul operands for the GEMM kernel tests: small-integer matrices (so every product and
// float32 sum is exact) stored row- or column-major, with padded leading dims or a shifted
// start, their float64 reference product, and a check that names the kernel that ran.
import { matmul, narrow, reshape, tensor, tidy, transpose, type DType, type Tensor } from '@blora/tensor';
import { seededRandom } from '@blora/tensor/testing';
import { expect } from 'vitest';
import { tensorArg } from '../../src/descriptor.js';
import { native } from '../../src/native.js';
import { roundTo } from './helpers.js';

/** `n` seeded integers in [-3, 3]. */
export function smallInts(n: number, seed: number): Float64Array {
  const rnd = seededRandom(seed);
  const out = new Float64Array(n);
  for (let i = 0; i < n; i++) out[i] = Math.floor(rnd() * 7) - 3;
  return out;
}

/** An operand: its logical row-major values and how to build the (possibly strided) tensor on a device. */
export interface Operand {
  /** Row-major values of the logical [batch, rows, cols] matrix. */
  values: Float64Array;
  make: (device: string) => Tensor;
}

/**
 * A [batch, rows, cols] operand of small integers. 'rowMajor' stores it as is; 'colMajor'
 * stores [batch, cols, rows] and transposes the view; `pad` widens the stored rows (so the
 * leading dim is not the logical extent); `offset` starts the data that many elements into
 * a flat buffer (an unaligned first element when it is not a multiple of 8).
 */
export function operand(dtype: DType, batch: number, rows: number, cols: number, layout: 'rowMajor' | 'colMajor', seed: number,
  pad = 0, offset = 0): Operand {
  const values = smallInts(batch * rows * cols, seed);
  const [outer, inner] = layout === 'rowMajor' ? [rows, cols] : [cols, rows];
  const ld = inner + pad;
  const stored = new Float64Array(offset + batch * outer * ld).fill(99);
  for (let b = 0; b < batch; b++) {
    for (let i = 0; i < rows; i++) {
      for (let j = 0; j < cols; j++) {
        const [o, n] = layout === 'rowMajor' ? [i, j] : [j, i];
        stored[offset + (b * outer + o) * ld + n] = values[(b * rows + i) * cols + j]!;
      }
    }
  }
  const make = (device: string) => tidy(() => {
    const flat = tensor(stored, { dtype, device });
    const block = reshape(narrow(flat, 0, offset, batch * outer * ld), [batch, outer, ld]);
    const view = narrow(block, 2, 0, inner);
    return layout === 'rowMajor' ? view : transpose(view, 1, 2);
  });
  return { values, make };
}

/** Float64 [batch, m, n] product of row-major values, rounded to `dtype`. */
export function referenceProduct(a: Float64Array, b: Float64Array, batch: number, m: number, k: number, n: number,
  dtype: DType): Float64Array {
  const out = new Float64Array(batch * m * n);
  for (let p = 0; p < batch; p++) {
    for (let i = 0; i < m; i++) {
      const row = out.subarray((p * m + i) * n, (p * m + i + 1) * n);
      for (let q = 0; q < k; q++) {
        const av = a[(p * m + i) * k + q]!;
        if (av === 0) continue;
        const bRow = (p * k + q) * n;
        for (let j = 0; j < n; j++) row[j] = row[j]! + av * b[bRow + j]!;
      }
    }
  }
  return roundTo(out, dtype);
}

/**
 * Multiplies on cuda, checks the kernel chosen (when `kernel` is given) and compares with
 * the exact reference, element for element.
 */
export function checkProduct(a: Operand, b: Operand, batch: number, m: number, k: number, n: number, dtype: DType,
  kernel?: string | RegExp): void {
  const [x, y] = [a.make('cuda'), b.make('cuda')];
  const out = matmul(x, y);
  try {
    const chosen = native().matmulKernel(tensorArg(x), tensorArg(y), tensorArg(out));
    if (typeof kernel === 'string') expect(chosen).toBe(kernel);
    else if (kernel !== undefined) expect(chosen).toMatch(kernel);
    const actual = out.toFloat64Array();
    const expected = referenceProduct(a.values, b.values, batch, m, k, n, dtype);
    let bad = 0;
    let first = -1;
    for (let i = 0; i < expected.length; i++) {
      if (actual[i] !== expected[i]) {
        bad++;
        if (first < 0) first = i;
      }
    }
    expect(bad, bad > 0 ? `${bad} wrong, first at ${first}: ${actual[first]} != ${expected[first]}` : '').toBe(0);
  } finally {
    out.dispose();
    x.dispose();
    y.dispose();
  }
}

/**
 * x [m, k] · Wᵀ (W [n, k], a transposed view) of seeded values in [-1, 1) rounded to `dtype`:
 * checks the kernel that runs (`kernel` matches its name) and, on every 7th row, that each
 * output is the float64 product within the dtype's rounding (plus float32 summation error).
 */
export function checkRoundedProduct(m: number, k: number, n: number, dtype: DType, seed: number, kernel: string | RegExp): void {
  const rnd = seededRandom(seed);
  const av = roundTo(Float64Array.from({ length: m * k }, () => rnd() * 2 - 1), dtype);
  const bv = roundTo(Float64Array.from({ length: n * k }, () => rnd() * 2 - 1), dtype);
  const x = tensor(av, { shape: [m, k], dtype, device: 'cuda' });
  const w = tensor(bv, { shape: [n, k], dtype, device: 'cuda' });
  const wt = transpose(w);
  const out = matmul(x, wt);
  try {
    expect(native().matmulKernel(tensorArg(x), tensorArg(wt), tensorArg(out))).toMatch(kernel);
    const actual = out.toFloat64Array();
    const eps = dtype === 'bfloat16' ? 2 ** -8 : 2 ** -11;
    for (let i = 0; i < m; i += 7) {
      for (let j = 0; j < n; j++) {
        let ref = 0;
        let scale = 0;
        for (let q = 0; q < k; q++) {
          ref += av[i * k + q]! * bv[j * k + q]!;
          scale += Math.abs(av[i * k + q]! * bv[j * k + q]!);
        }
        const err = Math.abs(actual[i * n + j]! - ref);
        if (!(err <= eps * Math.abs(ref) + 1e-6 * scale)) {
          throw new Error(`${dtype} (${i}, ${j}): ${actual[i * n + j]} vs ${ref} (error ${err})`);
        }
      }
    }
  } finally {
    for (const t of [out, x, wt, w]) t.dispose();
  }
}
