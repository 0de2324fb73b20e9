// matmul on cuda: float32/float64 (tiled GEMM) and bfloat16/float16 (tensor cores), odd
// sizes, row- and column-major operands, strided slices, broadcast batches and empty dims,
// against a float64 triple loop over the rounded inputs.
import { expand, slice, type DType, type Tensor } from '@blora/tensor';
import { describe, it } from 'vitest';
import { cudaAvailable } from '@blora/cuda-kernels';
import { checkOp, FLOAT_DTYPES, makeTensor, roundTo, valuesFor, type Layout } from './helpers.js';

/** Float64 [batch, m, n] product of row-major [batch, m, k] and [batch, k, n] values. */
function matmulRef(a: ArrayLike<number>, b: ArrayLike<number>, batch: number, m: number, k: number, n: number): Float64Array {
  const out = new Float64Array(batch * m * n);
  for (let p = 0; p < batch; p++) {
    for (let i = 0; i < m; i++) {
      for (let j = 0; j < n; j++) {
        let s = 0;
        for (let q = 0; q < k; q++) s += a[p * m * k + i * k + q]! * b[p * k * n + q * n + j]!;
        out[p * m * n + i * n + j] = s;
      }
    }
  }
  return out;
}

/** Accumulated rounding grows with the depth k. */
function matmulTolerance(dtype: DType, k: number) {
  switch (dtype) {
    case 'float32': return { rtol: 1e-5, atol: 2e-6 * k };
    case 'float64': return { rtol: 1e-12, atol: 1e-13 * k };
    case 'float16': return { rtol: 2e-3, atol: 2e-3 * Math.sqrt(k) };
    default: return { rtol: 1.6e-2, atol: 1e-2 * Math.sqrt(k) };
  }
}

/** Checks [m, k] @ [k, n] with the given operand layouts ('strided' = every other column: neither dim dense). */
function checkMatmul(dtype: DType, m: number, k: number, n: number, la: Layout, lb: Layout, seed = 1): void {
  const a = roundTo(valuesFor(dtype, m * k, seed), dtype);
  const b = roundTo(valuesFor(dtype, k * n, seed + 1), dtype);
  checkOp({
    op: 'matmul',
    inputs: (d) => [makeTensor(a, [m, k], dtype, d, la), makeTensor(b, [k, n], dtype, d, lb)],
    shape: [m, n], dtype, expected: matmulRef(a, b, 1, m, k, n), tolerance: matmulTolerance(dtype, k),
  });
}

const SHAPES: [number, number, number][] = [
  [1, 1, 1], [3, 5, 7], [17, 33, 9], [64, 64, 64], [65, 40, 130], [128, 96, 72], [7, 256, 5], [1, 200, 129],
];
const LAYOUT_PAIRS: [Layout, Layout][] = [
  ['contiguous', 'contiguous'], ['transposed', 'contiguous'], ['contiguous', 'transposed'], ['transposed', 'transposed'],
  ['strided', 'contiguous'], ['contiguous', 'strided'],
];

describe.skipIf(!cudaAvailable())('matmul on cuda', () => {
  it('multiplies odd-sized matrices of every float dtype in every operand layout', () => {
    for (const dtype of FLOAT_DTYPES) {
      for (const [m, k, n] of SHAPES) {
        for (const [la, lb] of LAYOUT_PAIRS) checkMatmul(dtype, m, k, n, la, lb, m + k + n);
      }
    }
  });

  it('covers the tensor-core vector loads: k and m multiples of 8, and ragged tails', () => {
    for (const dtype of ['bfloat16', 'float16'] as DType[]) {
      for (const [m, k, n] of [[96, 128, 80], [72, 136, 64], [40, 24, 48], [33, 31, 30], [129, 65, 66]] as [number, number, number][]) {
        for (const [la, lb] of LAYOUT_PAIRS.slice(0, 4)) checkMatmul(dtype, m, k, n, la, lb, k);
      }
    }
  });

  it('multiplies batches, including broadcast (stride 0) and sliced operands', () => {
    const [batch, m, k, n] = [3, 19, 24, 11];
    for (const dtype of FLOAT_DTYPES) {
      const a = roundTo(valuesFor(dtype, batch * m * k, 41), dtype);
      const shared = roundTo(valuesFor(dtype, k * n, 42), dtype);
      const bFull = new Float64Array(batch * k * n);
      for (let p = 0; p < batch; p++) bFull.set(shared, p * k * n);
      checkOp({
        op: 'matmul',
        inputs: (d) => [makeTensor(a, [batch, m, k], dtype, d, 'transposed'), expand(makeTensor(shared, [1, k, n], dtype, d, 'contiguous'), [batch, k, n])],
        shape: [batch, m, n], dtype, expected: matmulRef(a, bFull, batch, m, k, n), tolerance: matmulTolerance(dtype, k),
      });
      // Every other batch of a [2 * batch, ...] tensor: a batch stride that is not the matrix size.
      const wide = roundTo(valuesFor(dtype, 2 * batch * k * n, 43), dtype);
      const picked = new Float64Array(batch * k * n);
      for (let p = 0; p < batch; p++) picked.set(wide.subarray(2 * p * k * n, (2 * p + 1) * k * n), p * k * n);
      const everyOther = (d: string): Tensor => slice(makeTensor(wide, [2 * batch, k, n], dtype, d, 'contiguous'), 0, 0, 2 * batch, 2);
      checkOp({
        op: 'matmul',
        inputs: (d) => [makeTensor(a, [batch, m, k], dtype, d, 'contiguous'), everyOther(d)],
        shape: [batch, m, n], dtype, expected: matmulRef(a, picked, batch, m, k, n), tolerance: matmulTolerance(dtype, k),
      });
    }
  });

  it('handles rank 4 batches and empty dims (k = 0 gives zeros)', () => {
    for (const dtype of FLOAT_DTYPES) {
      const a = roundTo(valuesFor(dtype, 2 * 3 * 5 * 6, 5), dtype);
      const b = roundTo(valuesFor(dtype, 2 * 3 * 6 * 4, 6), dtype);
      checkOp({
        op: 'matmul', inputs: (d) => [makeTensor(a, [2, 3, 5, 6], dtype, d, 'strided'), makeTensor(b, [2, 3, 6, 4], dtype, d, 'transposed')],
        shape: [2, 3, 5, 4], dtype, expected: matmulRef(a, b, 6, 5, 6, 4), tolerance: matmulTolerance(dtype, 6),
      });
      checkOp({
        op: 'matmul', inputs: (d) => [makeTensor([], [4, 0], dtype, d, 'contiguous'), makeTensor([], [0, 3], dtype, d, 'contiguous')],
        shape: [4, 3], dtype, expected: new Float64Array(12),
      });
      checkOp({
        op: 'matmul', inputs: (d) => [makeTensor([], [0, 5], dtype, d, 'contiguous'), makeTensor(b.subarray(0, 15), [5, 3], dtype, d, 'contiguous')],
        shape: [0, 3], dtype, expected: [],
      });
    }
  });
});
