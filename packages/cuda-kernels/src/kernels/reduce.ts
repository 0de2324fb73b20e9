// sum / mean / max / min over any set of axes, and argmax / argmin along one, on the cuda
// device. A contiguous input whose reduced axes are one run of neighbouring dims is read in
// place as [outer, reduced, inner] (a row reduction when inner = 1). Otherwise the kept axes
// are put first and the reduced ones last, which makes the input a [rows, cols] matrix; when
// that permuted view is not dense (or the output dtype differs, as for integer sums) it is first
// copied (or cast) into a dense scratch block, then each row is reduced by one kernel.
import { contiguousStrides, registerKernel, type Tensor } from '@blora/tensor';
import { bufferOf, isDenseLayout, layoutArg, tensorArg } from '../descriptor.js';
import { runKernel } from '../errors.js';
import { native } from '../native.js';
import { opCode } from './elementwise.js';
import { reshapeDense, withDense } from './dense.js';
import { withScratch } from './scratch.js';

const REDUCE_OPS = ['sum', 'mean', 'max', 'min'] as const;

/** The dims of `x` with the reduced ones moved last (keeping their order within each group). */
function reducedLast(x: Tensor, axes: readonly number[]): { order: number[]; rows: number; cols: number } {
  const reduced = new Set(axes);
  const kept = x.shape.map((_, d) => d).filter((d) => !reduced.has(d));
  const last = x.shape.map((_, d) => d).filter((d) => reduced.has(d));
  const rows = kept.reduce((p, d) => p * x.shape[d]!, 1);
  const cols = last.reduce((p, d) => p * x.shape[d]!, 1);
  return { order: [...kept, ...last], rows, cols };
}

/** Below this many inner elements the middle-axis kernel leaves most of its lanes idle. */
const MIN_MIDDLE_INNER = 32;

/**
 * [outer, reduced, inner] when `x` is contiguous and `axes` (sorted) are consecutive dims,
 * else null.
 */
function middleSplit(x: Tensor, axes: readonly number[]): [number, number, number] | null {
  if (!x.isContiguous || axes.length === 0) return null;
  const first = axes[0]!;
  const last = axes[axes.length - 1]!;
  if (last - first !== axes.length - 1) return null;
  const product = (from: number, to: number) => x.shape.slice(from, to).reduce((p, d) => p * d, 1);
  return [product(0, first), product(first, last + 1), product(last + 1, x.rank)];
}

function reduceOnCuda(code: number, x: Tensor, out: Tensor, axes: readonly number[]): void {
  const addon = native();
  const split = x.dtype === out.dtype ? middleSplit(x, axes) : null;
  if (split && split[2] >= MIN_MIDDLE_INNER && split[0] * split[2] > 0) {
    const [outer, reduced, inner] = split;
    const address = bufferOf(x).address;
    const dense = layoutArg(address, x.offset, x.dtype, [outer, reduced, inner], [reduced * inner, inner, 1]);
    addon.reduceMiddle(code, dense, tensorArg(out), outer, reduced, inner);
    return;
  }
  const { order, rows, cols } = reducedLast(x, axes);
  if (rows === 0) return;
  if (cols === 0) {
    // Nothing to read: each output is the empty reduction's value (0 for sum, NaN for mean).
    addon.reduceRows(code, layoutArg(0, 0, out.dtype, [rows, 0], [0, 1]), tensorArg(out), rows, 0);
    return;
  }
  const shape = order.map((d) => x.shape[d]!);
  const strides = order.map((d) => x.strides[d]!);
  const address = bufferOf(x).address;
  if (x.dtype === out.dtype && isDenseLayout(shape, strides)) {
    addon.reduceRows(code, layoutArg(address, x.offset, x.dtype, [rows, cols], [cols, 1]), tensorArg(out), rows, cols);
    return;
  }
  withScratch(out.dtype, rows * cols, (scratch) => {
    const src = layoutArg(address, x.offset, x.dtype, shape, strides);
    const dense = layoutArg(scratch, 0, out.dtype, shape, contiguousStrides(shape));
    if (x.dtype === out.dtype) addon.copy(src, dense);
    else addon.cast(src, dense);
    addon.reduceRows(code, layoutArg(scratch, 0, out.dtype, [rows, cols], [cols, 1]), tensorArg(out), rows, cols);
  });
}

/**
 * argmax / argmin (int32 indices, the first on ties or the first NaN) along `axis`, read as the
 * middle axis of [outer, reduced, inner]; a strided input is copied dense first.
 */
function argReduceOnCuda(isMax: boolean, x: Tensor, out: Tensor, axis: number): void {
  if (out.numel === 0) return;
  const product = (from: number, to: number) => x.shape.slice(from, to).reduce((p, d) => p * d, 1);
  const [outer, reduced, inner] = x.rank === 0 ? [1, 1, 1] : [product(0, axis), x.shape[axis]!, product(axis + 1, x.rank)];
  withDense([x], ([dense]) =>
    native().argReduce(isMax, reshapeDense(dense!, [outer, reduced, inner]), tensorArg(out), outer, reduced, inner));
}

/** Registers sum, mean, max, min, argmax and argmin for 'cuda'. */
export function registerReduceKernels(): void {
  for (const op of REDUCE_OPS) {
    const code = opCode(native().reduceOps, op);
    registerKernel(op, 'cuda', ([x], [out], attrs) => {
      runKernel(op, [x!, out!], () => reduceOnCuda(code, x!, out!, attrs.axes as number[]));
    });
  }
  for (const op of ['argmax', 'argmin'] as const) {
    registerKernel(op, 'cuda', ([x], [out], attrs) => {
      runKernel(op, [x!, out!], () => argReduceOnCuda(op === 'argmax', x!, out!, attrs.axis as number));
    });
  }
}
