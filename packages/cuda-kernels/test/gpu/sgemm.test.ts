// The float32 matmul on cuda, through each of its kernels (setFloat32MatmulPath): the 3xTF32
// tensor-core kernel (the default) and the CUDA-core SGEMM. The skinny products of low-rank
// adapters (narrow 128x64 / 64x128 tiles; a long K split into slices summed in a fixed order),
// both operands as transposed views, 16-byte and scalar load paths (gaps, odd leading dims, a
// misaligned first element: the CUDA-core kernel takes those on either path), tile edges,
// batches with a broadcast operand, infinities, and run-to-run bitwise equality of a split-K
// product, against float64 loops over the same inputs; the same float32 tolerance for both.
import { execute1, expand, narrow, tensor, type Tensor } from '@blora/tensor';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cudaAvailable } from '@blora/cuda-kernels';
import { tensorArg } from '../../src/descriptor.js';
import { native } from '../../src/native.js';
import { checkOp, makeTensor, roundTo, valuesFor, type Layout } from './helpers.js';

/** Float64 [batch, m, n] product of row-major [batch, m, k] and [batch, k, n] values. */
function matmulRef(a: ArrayLike<number>, b: ArrayLike<number>, batch: number, m: number, k: number, n: number): Float64Array {
  const out = new Float64Array(batch * m * n);
  const row = new Float64Array(n);
  for (let p = 0; p < batch; p++) {
    for (let i = 0; i < m; i++) {
      row.fill(0);
      for (let q = 0; q < k; q++) {
        const av = a[p * m * k + i * k + q]!;
        const bOff = p * k * n + q * n;
        for (let j = 0; j < n; j++) row[j] += av * b[bOff + j]!;
      }
      out.set(row, p * m * n + i * n);
    }
  }
  return out;
}

/** float32 accumulation over depth k: the rounding grows with k (inputs are in [-2, 2)). */
function f32Tolerance(k: number) {
  return { rtol: 1e-5, atol: 2e-6 * Math.max(k, 1) };
}

/** float32 values in [-2, 2), exactly representable. */
function f32Values(n: number, seed: number): Float64Array {
  return roundTo(valuesFor('float32', n, seed), 'float32');
}

/** Checks [m, k] @ [k, n] in float32 with the given operand layouts. */
function checkProduct(m: number, k: number, n: number, la: Layout, lb: Layout, seed: number): void {
  const a = f32Values(m * k, seed);
  const b = f32Values(k * n, seed + 1);
  checkOp({
    op: 'matmul',
    inputs: (d) => [makeTensor(a, [m, k], 'float32', d, la), makeTensor(b, [k, n], 'float32', d, lb)],
    shape: [m, n], dtype: 'float32', expected: matmulRef(a, b, 1, m, k, n), tolerance: f32Tolerance(k),
  });
}

/** A [rows, cols] float32 tensor whose rows are `cols + 1` apart and whose first element is 1 past the storage start. */
function misaligned(values: Float64Array, rows: number, cols: number, device: string): Tensor {
  const wide = new Float64Array(rows * (cols + 1)).fill(NaN);
  for (let i = 0; i < rows; i++) wide.set(values.subarray(i * cols, (i + 1) * cols), i * (cols + 1) + 1);
  const base = tensor(wide, { shape: [rows, cols + 1], dtype: 'float32', device });
  const view = narrow(base, 1, 1, cols);
  base.dispose();
  return view;
}

const VIEW_PAIRS: [Layout, Layout][] = [
  ['contiguous', 'contiguous'], ['transposed', 'contiguous'], ['contiguous', 'transposed'], ['transposed', 'transposed'],
];

type Float32Path = 'tf32x3' | 'simt';

/** The kernel name of a float32 product of these operands under the current path. */
function kernelOf(a: Tensor, b: Tensor): string {
  const out = execute1('matmul', [a, b], [a.shape[0]!, b.shape[1]!], 'float32', {}, 'cuda');
  const name = native().matmulKernel(tensorArg(a), tensorArg(b), tensorArg(out));
  out.dispose();
  return name;
}

describe.skipIf(!cudaAvailable())('float32 matmul kernel choice on cuda', () => {
  let previous: Float32Path = 'tf32x3';
  afterAll(() => {
    native().setFloat32MatmulPath(previous);
  });

  it('takes the 3xTF32 kernel for operands it can copy in 16-byte pieces, the CUDA cores otherwise or when asked', () => {
    previous = native().setFloat32MatmulPath('tf32x3');
    const a = makeTensor(f32Values(300 * 64, 1), [300, 64], 'float32', 'cuda', 'contiguous');
    const b = makeTensor(f32Values(64 * 130, 2), [64, 130], 'float32', 'cuda', 'transposed');
    const gaps = makeTensor(f32Values(64 * 130, 3), [64, 130], 'float32', 'cuda', 'strided');
    try {
      expect(kernelOf(a, b)).toMatch(/^tf32x3-/);
      expect(kernelOf(a, gaps)).toMatch(/^sgemm-/);
      native().setFloat32MatmulPath('simt');
      expect(kernelOf(a, b)).toMatch(/^sgemm-/);
      expect(() => native().setFloat32MatmulPath('fast' as Float32Path)).toThrow(/'tf32x3' or 'simt'/);
    } finally {
      for (const t of [a, b, gaps]) t.dispose();
    }
  });
});

for (const path of ['tf32x3', 'simt'] as const) describe.skipIf(!cudaAvailable())(`float32 matmul on cuda, path ${path}`, () => {
  let previous: Float32Path = 'tf32x3';
  beforeAll(() => {
    previous = native().setFloat32MatmulPath(path);
  });
  afterAll(() => {
    native().setFloat32MatmulPath(previous);
  });

  it('multiplies the skinny adapter shapes, scaled down, with both operands as plain or transposed views', () => {
    // x·Aᵀ-like (narrow output, K split), dA-like (64 rows, long K split), dx-like (K = 64),
    // (xA)·Bᵀ-like with few tiles, and single rows / columns.
    const shapes: [number, number, number][] = [
      [257, 1000, 64], [64, 4096, 300], [1000, 64, 333], [300, 700, 70], [129, 517, 1], [1, 300, 129],
    ];
    let seed = 100;
    for (const [m, k, n] of shapes) {
      for (const [la, lb] of VIEW_PAIRS) checkProduct(m, k, n, la, lb, seed++);
    }
  });

  it('handles every tile edge: sizes just below, at and above the 128 / 64 / 8 boundaries', () => {
    const shapes: [number, number, number][] = [[127, 9, 129], [128, 8, 128], [130, 257, 65], [65, 300, 63], [3, 7, 5]];
    let seed = 200;
    for (const [m, k, n] of shapes) {
      for (const [la, lb] of VIEW_PAIRS) checkProduct(m, k, n, la, lb, seed++);
    }
  });

  it('falls back to scalar loads for gaps between elements, odd leading dims and a misaligned start', () => {
    let seed = 300;
    for (const [m, k, n] of [[150, 300, 140], [64, 1100, 33]] as [number, number, number][]) {
      checkProduct(m, k, n, 'strided', 'contiguous', seed++);
      checkProduct(m, k, n, 'transposed', 'strided', seed++);
      const a = f32Values(m * k, seed++);
      const b = f32Values(k * n, seed++);
      checkOp({
        op: 'matmul', inputs: (d) => [misaligned(a, m, k, d), misaligned(b, k, n, d)],
        shape: [m, n], dtype: 'float32', expected: matmulRef(a, b, 1, m, k, n), tolerance: f32Tolerance(k),
      });
    }
  });

  it('multiplies batches with a long K (split) and a broadcast operand', () => {
    const [batch, m, k, n] = [3, 70, 2000, 90];
    const a = f32Values(batch * m * k, 401);
    const shared = f32Values(k * n, 402);
    const bFull = new Float64Array(batch * k * n);
    for (let p = 0; p < batch; p++) bFull.set(shared, p * k * n);
    checkOp({
      op: 'matmul',
      inputs: (d) => [makeTensor(a, [batch, m, k], 'float32', d, 'transposed'), expand(makeTensor(shared, [1, k, n], 'float32', d, 'transposed'), [batch, k, n])],
      shape: [batch, m, n], dtype: 'float32', expected: matmulRef(a, bFull, batch, m, k, n), tolerance: f32Tolerance(k),
    });
  });

  it('gives infinities where the float64 product has them, and finite values elsewhere', () => {
    const [m, k, n] = [70, 300, 90];
    const a = f32Values(m * k, 451);
    const b = f32Values(k * n, 452);
    a[5 * k + 17] = Infinity;  // row 5 of the output: ±Infinity
    b[200 * n + 33] = -Infinity;  // column 33: ±Infinity (NaN where it meets row 5 with the other sign)
    // Partners of the infinity that TF32 holds exactly (no remainder), and a 0 (NaN).
    for (let j = 0; j < 8; j++) b[17 * n + j] = j % 2 ? 0.5 : -1.25;
    b[17 * n + 8] = 0;
    checkOp({
      op: 'matmul',
      inputs: (d) => [makeTensor(a, [m, k], 'float32', d, 'contiguous'), makeTensor(b, [k, n], 'float32', d, 'transposed')],
      shape: [m, n], dtype: 'float32', expected: matmulRef(a, b, 1, m, k, n), tolerance: f32Tolerance(k),
    });
  });

  it('gives bitwise identical split-K results on every run', () => {
    const [m, k, n] = [64, 4096, 300];
    const a = f32Values(m * k, 501);
    const b = f32Values(k * n, 502);
    const x = makeTensor(a, [m, k], 'float32', 'cuda', 'transposed');
    const w = makeTensor(b, [k, n], 'float32', 'cuda', 'contiguous');
    const runs: Float32Array[] = [];
    for (let r = 0; r < 3; r++) {
      const out = execute1('matmul', [x, w], [m, n], 'float32', {}, 'cuda');
      runs.push(Float32Array.from(out.toTypedArray() as Float32Array));
      out.dispose();
    }
    x.dispose();
    w.dispose();
    const bits = runs.map((r) => new Uint32Array(r.buffer));
    expect(bits[1]).toEqual(bits[0]);
    expect(bits[2]).toEqual(bits[0]);
    // ... and the repeated result is the right one.
    const expected = matmulRef(a, b, 1, m, k, n);
    const { atol, rtol } = f32Tolerance(k);
    let worst = 0;
    for (let i = 0; i < expected.length; i++) worst = Math.max(worst, Math.abs(runs[0]![i]! - expected[i]!) - rtol * Math.abs(expected[i]!));
    expect(worst).toBeLessThanOrEqual(atol);
  });
});
