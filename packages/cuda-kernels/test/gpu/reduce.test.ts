// sum / mean / max / min over any axes on cuda: every dtype, layouts, keepdim, long and
// short rows, empty reductions, NaN, and integer sums that wrap.
import { isFloatDType, type DType } from '@blora/tensor';
import { describe, it } from 'vitest';
import { cudaAvailable } from '@blora/cuda-kernels';
import { ALL_DTYPES, checkOp, FLOAT_DTYPES, LAYOUTS, makeTensor, roundTo, sizeOf, stridesOf, toleranceFor, valuesFor, wrapInt, type Layout } from './helpers.js';

type ReduceOp = 'sum' | 'mean' | 'max' | 'min';

/** Float64 reference: the reduction of `values` (row-major over `shape`) over `axes`, in row-major output order. */
function reduceRef(values: ArrayLike<number>, shape: readonly number[], axes: readonly number[], op: ReduceOp): number[] {
  const reduced = new Set(axes);
  const outShape = shape.filter((_, d) => !reduced.has(d));
  const outStrides = stridesOf(outShape);
  const inStrides = stridesOf(shape);
  const init = op === 'max' ? -Infinity : op === 'min' ? Infinity : 0;
  const acc = new Array<number>(sizeOf(outShape)).fill(init);
  const count = sizeOf(shape.filter((_, d) => reduced.has(d)));
  for (let i = 0; i < values.length; i++) {
    let o = 0;
    for (let d = 0, k = 0; d < shape.length; d++) {
      const coord = Math.floor(i / inStrides[d]!) % shape[d]!;
      if (!reduced.has(d)) o += coord * outStrides[k++]!;
    }
    const v = values[i]!;
    const a = acc[o]!;
    if (op === 'max') acc[o] = Number.isNaN(a) ? a : Number.isNaN(v) || v > a ? v : a;
    else if (op === 'min') acc[o] = Number.isNaN(a) ? a : Number.isNaN(v) || v < a ? v : a;
    else acc[o] = a + v;
  }
  return op === 'mean' ? acc.map((s) => s / count) : acc;
}

/** Output shape and dtype of a reduction, as the front end computes them. */
function outputOf(op: ReduceOp, shape: readonly number[], axes: readonly number[], keepdim: boolean, dtype: DType) {
  const reduced = new Set(axes);
  const out: number[] = [];
  shape.forEach((d, i) => {
    if (!reduced.has(i)) out.push(d);
    else if (keepdim) out.push(1);
  });
  return { shape: out, dtype: op === 'sum' && !isFloatDType(dtype) ? ('int32' as DType) : dtype };
}

function checkReduce(op: ReduceOp, dtype: DType, shape: readonly number[], axes: readonly number[], layout: Layout, values: ArrayLike<number>, keepdim = false): void {
  const out = outputOf(op, shape, axes, keepdim, dtype);
  let expected = reduceRef(values, shape, axes, op);
  if (!isFloatDType(out.dtype)) expected = expected.map((v) => wrapInt(v, out.dtype));
  const tol = out.dtype === 'float32' ? { rtol: 1e-6, atol: 1e-6 } : toleranceFor(out.dtype);
  checkOp({
    op, inputs: (d) => [makeTensor(values, shape, dtype, d, layout)], shape: out.shape, dtype: out.dtype,
    attrs: { axes, keepdim }, expected, tolerance: tol,
  });
}

const AXES_OF_3 = [[], [0], [1], [2], [0, 2], [1, 2], [0, 1], [0, 1, 2]];

describe.skipIf(!cudaAvailable())('reductions on cuda', () => {
  it('reduce any set of axes of every dtype and layout, with and without keepdim', () => {
    for (const op of ['sum', 'mean', 'max', 'min'] as ReduceOp[]) {
      for (const dtype of op === 'mean' ? FLOAT_DTYPES : ALL_DTYPES) {
        const values = roundTo(valuesFor(dtype, 5 * 7 * 3, 13), dtype);
        for (const axes of AXES_OF_3) {
          for (const layout of LAYOUTS) checkReduce(op, dtype, [5, 7, 3], axes, layout, values, axes.length === 1);
        }
      }
    }
  });

  it('handle long rows, many short rows and reductions over a leading axis', () => {
    for (const op of ['sum', 'mean', 'max', 'min'] as ReduceOp[]) {
      for (const dtype of ['float32', 'bfloat16', 'float64'] as DType[]) {
        const long = roundTo(valuesFor(dtype, 3 * 5003, 1), dtype);
        checkReduce(op, dtype, [3, 5003], [1], 'contiguous', long);
        const short = roundTo(valuesFor(dtype, 2999 * 3, 2), dtype);
        checkReduce(op, dtype, [2999, 3], [1], 'strided', short);
        checkReduce(op, dtype, [2999, 3], [0], 'contiguous', short);
      }
    }
  });

  it('reduce a 0-d tensor and empty tensors', () => {
    for (const op of ['sum', 'mean', 'max', 'min'] as ReduceOp[]) {
      checkReduce(op, 'float32', [], [], 'contiguous', [2.5]);
    }
    for (const op of ['sum', 'mean'] as ReduceOp[]) {
      checkReduce(op, 'float32', [4, 0], [1], 'contiguous', []); // 0 and NaN per row
      checkReduce(op, 'float32', [0, 5], [1], 'contiguous', []); // no rows
    }
    checkReduce('sum', 'int8', [3, 0], [1], 'contiguous', []);
  });

  it('propagate NaN through max and min, and sum integers into int32 with wrapping', () => {
    const withNaN = [1, NaN, 3, -2, 5, 6, -Infinity, 0, 2];
    for (const op of ['max', 'min', 'sum'] as ReduceOp[]) {
      for (const dtype of FLOAT_DTYPES) checkReduce(op, dtype, [3, 3], [1], 'contiguous', roundTo(withNaN, dtype));
    }
    const big = [2 ** 30, 2 ** 30, 2 ** 30, 1, -(2 ** 31), -(2 ** 31), -5, 7];
    checkReduce('sum', 'int32', [2, 4], [1], 'strided', big);
    checkReduce('sum', 'int8', [2, 4], [1], 'contiguous', [127, 127, 127, 127, -128, -128, -1, 0]);
    checkReduce('sum', 'uint8', [8], [0], 'contiguous', [255, 255, 255, 255, 255, 255, 255, 255]);
  });
});
