// softmax / logSoftmax along any axis on cuda, against a float64 reference and the CPU.
import { type DType } from '@blora/tensor';
import { describe, it } from 'vitest';
import { cudaAvailable } from '@blora/cuda-kernels';
import { checkOp, FLOAT_DTYPES, LAYOUTS, makeTensor, roundTo, sizeOf, stridesOf, toleranceFor, valuesFor, type Layout } from './helpers.js';

/** Float64 softmax (or log-softmax) of `values` (row-major over `shape`) along `axis`. */
function softmaxRef(values: ArrayLike<number>, shape: readonly number[], axis: number, log: boolean): number[] {
  const out = new Array<number>(values.length).fill(0);
  if (shape.length === 0) return [log ? values[0]! - values[0]! : 1];
  const strides = stridesOf(shape);
  const n = shape[axis]!;
  const step = strides[axis]!;
  for (let start = 0; start < values.length; start++) {
    if (Math.floor(start / step) % n !== 0) continue; // first element of each slice
    let m = -Infinity;
    for (let j = 0; j < n; j++) {
      const v = values[start + j * step]!;
      if (v > m || Number.isNaN(v)) m = v;
    }
    let s = 0;
    for (let j = 0; j < n; j++) s += Math.exp(values[start + j * step]! - m);
    for (let j = 0; j < n; j++) {
      const v = values[start + j * step]!;
      out[start + j * step] = log ? v - m - Math.log(s) : Math.exp(v - m) / s;
    }
  }
  return out;
}

function check(op: 'softmax' | 'logSoftmax', dtype: DType, shape: readonly number[], axis: number, layout: Layout, values: ArrayLike<number>): void {
  const tol = dtype === 'float32' ? { rtol: 2e-5, atol: op === 'softmax' ? 1e-7 : 2e-5 } : toleranceFor(dtype);
  checkOp({
    op, inputs: (d) => [makeTensor(values, shape, dtype, d, layout)], shape, dtype, attrs: { axis },
    expected: softmaxRef(values, shape, axis, op === 'logSoftmax'), tolerance: tol,
  });
}

describe.skipIf(!cudaAvailable())('softmax and logSoftmax on cuda', () => {
  it('along every axis of every float dtype and layout', () => {
    for (const op of ['softmax', 'logSoftmax'] as const) {
      for (const dtype of FLOAT_DTYPES) {
        for (const shape of [[4, 37], [3, 5, 6]]) {
          const values = roundTo(valuesFor(dtype, sizeOf(shape), shape.length, -5, 5), dtype);
          for (let axis = 0; axis < shape.length; axis++) {
            for (const layout of LAYOUTS) check(op, dtype, shape, axis, layout, values);
          }
        }
      }
    }
  });

  it('over long rows, a 0-d tensor, masked entries and fully masked rows', () => {
    for (const op of ['softmax', 'logSoftmax'] as const) {
      for (const dtype of FLOAT_DTYPES) {
        check(op, dtype, [2, 1025], 1, 'contiguous', roundTo(valuesFor(dtype, 2050, 3, -8, 8), dtype));
        check(op, dtype, [], 0, 'contiguous', [0.75]);
        const masked = [0.5, -Infinity, 1, -Infinity, -Infinity, -Infinity, -Infinity, -Infinity, 2, 2, 2, -1];
        check(op, dtype, [3, 4], 1, 'strided', masked);
        check(op, dtype, [3, 4], 0, 'contiguous', masked);
      }
    }
  });
});
