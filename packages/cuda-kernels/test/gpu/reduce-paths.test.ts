// The work shapes of the cuda reductions, against float64 loops: short rows (several rows per
// warp), long rows (a warp per row), few long rows and whole tensors (chunks combined by a
// second kernel), inputs starting off the 16-byte grid, and reductions over a middle or
// leading run of axes read in place (vector and scalar columns, chunked reduced axes).
import { execute1, narrow, reshape, tensor, tidy, type DType, type Tensor } from '@blora/tensor';
import { assertClose } from '@blora/tensor/testing';
import { describe, it } from 'vitest';
import { cudaAvailable } from '@blora/cuda-kernels';
import { roundTo, toleranceFor, valuesFor } from './helpers.js';

type ReduceOp = 'sum' | 'mean' | 'max' | 'min';
const OPS: readonly ReduceOp[] = ['sum', 'mean', 'max', 'min'];
const DTYPES: readonly DType[] = ['float32', 'bfloat16', 'float64', 'int32'];

/** Float64 reduction of [outer, reduced, inner] values over the middle axis. */
function reduceMiddleRef(values: ArrayLike<number>, outer: number, reduced: number, inner: number, op: ReduceOp): Float64Array {
  const out = new Float64Array(outer * inner).fill(op === 'max' ? -Infinity : op === 'min' ? Infinity : 0);
  for (let o = 0; o < outer; o++) {
    for (let r = 0; r < reduced; r++) {
      for (let i = 0; i < inner; i++) {
        const v = values[(o * reduced + r) * inner + i]!;
        const k = o * inner + i;
        const a = out[k]!;
        if (op === 'max') out[k] = Number.isNaN(a) ? a : Number.isNaN(v) || v > a ? v : a;
        else if (op === 'min') out[k] = Number.isNaN(a) ? a : Number.isNaN(v) || v < a ? v : a;
        else out[k] = a + v;
      }
    }
  }
  return op === 'mean' ? out.map((s) => s / reduced) : out;
}

/** A contiguous tensor of `shape` whose data starts `offset` elements into its buffer. */
function placed(values: Float64Array, shape: readonly number[], dtype: DType, device: string, offset: number): Tensor {
  return tidy(() => {
    const stored = new Float64Array(offset + values.length + 3).fill(55);
    stored.set(values, offset);
    return reshape(narrow(tensor(stored, { dtype, device }), 0, offset, values.length), shape);
  });
}

/**
 * Reduces `shape` over `axes` (one consecutive run) on cuda and checks the float64 loop.
 * `nanAt` puts a NaN at that flat index (float dtypes).
 */
function check(op: ReduceOp, dtype: DType, shape: readonly number[], axes: readonly number[], offset = 0, nanAt = -1): void {
  if (op === 'mean' && dtype === 'int32') return;
  const n = shape.reduce((p, d) => p * d, 1);
  const values = roundTo(valuesFor(dtype, n, n + axes.length + offset, -2, 2), dtype);
  if (nanAt >= 0 && nanAt < n) values[nanAt] = NaN;
  const first = axes[0]!;
  const last = axes[axes.length - 1]!;
  const outer = shape.slice(0, first).reduce((p, d) => p * d, 1);
  const reduced = shape.slice(first, last + 1).reduce((p, d) => p * d, 1);
  const inner = shape.slice(last + 1).reduce((p, d) => p * d, 1);
  const expected = reduceMiddleRef(values, outer, reduced, inner, op);
  const outShape = shape.filter((_, d) => d < first || d > last);
  const x = placed(values, shape, dtype, 'cuda', offset);
  const out = execute1(op, [x], outShape, dtype, { axes, keepdim: false }, 'cuda');
  try {
    const tol = dtype === 'float32' ? { rtol: 1e-6, atol: 1e-6 } : dtype === 'int32' ? { rtol: 0, atol: 0 } : toleranceFor(dtype);
    assertClose(out.toFloat64Array(), dtype === 'int32' ? expected.map((v) => v | 0) : roundTo(expected, dtype), tol);
  } finally {
    out.dispose();
    x.dispose();
  }
}

describe.skipIf(!cudaAvailable())('reduction work shapes on cuda', () => {
  it('short rows: groups of 1 to 32 lanes per row', () => {
    for (const op of OPS) {
      for (const dtype of DTYPES) {
        for (const cols of [1, 2, 3, 5, 8, 9, 31, 33, 100]) {
          for (const offset of [0, 3]) check(op, dtype, [517, cols], [1], offset);
        }
      }
    }
  });

  it('long rows, one warp per row (many rows)', () => {
    for (const op of OPS) {
      for (const dtype of DTYPES) {
        for (const offset of [0, 1]) check(op, dtype, [2300, 300], [1], offset);
      }
    }
  });

  it('few long rows and whole tensors: chunks per row, combined by a second pass', () => {
    for (const op of OPS) {
      for (const dtype of DTYPES) {
        check(op, dtype, [7, 50_001], [1], 1);
        check(op, dtype, [300, 1000], [1], 0);
        check(op, dtype, [1_000_003], [0], 3);
        check(op, dtype, [3, 5, 70_001], [0, 1, 2], 0);
      }
    }
  });

  it('max and min propagate NaN through every path', () => {
    for (const op of ['max', 'min'] as ReduceOp[]) {
      for (const dtype of ['float32', 'bfloat16'] as DType[]) {
        check(op, dtype, [517, 9], [1], 0, 9 * 100 + 4);
        check(op, dtype, [2300, 300], [1], 0, 300 * 17 + 299);
        check(op, dtype, [1_000_003], [0], 0, 777_777);
        check(op, dtype, [300, 64], [0], 0, 64 * 250 + 3);
        check(op, dtype, [1000, 64], [0], 0, 64 * 999 + 63);
      }
    }
  });

  it('reduce a leading or middle run of axes in place', () => {
    for (const op of OPS) {
      for (const dtype of DTYPES) {
        // Leading axis: vector columns (inner a multiple of the width), scalar columns, chunked.
        check(op, dtype, [37, 64], [0]);
        check(op, dtype, [37, 40], [0]);
        check(op, dtype, [37, 33], [0]);
        check(op, dtype, [1000, 64], [0]);
        check(op, dtype, [37, 64], [0], 5);
        // Middle runs.
        check(op, dtype, [3, 21, 48], [1]);
        check(op, dtype, [2, 3, 7, 40], [1, 2]);
        check(op, dtype, [4, 9, 2, 33], [0, 1]);
        check(op, dtype, [5, 1, 36], [1]);
      }
    }
  });

  it('empty reduced axes give the empty sum and mean', () => {
    for (const dtype of ['float32', 'bfloat16'] as DType[]) {
      for (const op of ['sum', 'mean'] as ReduceOp[]) {
        const x = tensor(new Float64Array(0), { shape: [0, 40], dtype, device: 'cuda' });
        const out = execute1(op, [x], [40], dtype, { axes: [0], keepdim: false }, 'cuda');
        assertClose(out.toFloat64Array(), new Float64Array(40).fill(op === 'sum' ? 0 : NaN));
        out.dispose();
        x.dispose();
      }
    }
  });
});
