// Reductions over sets of axes: sum, mean, max, min, argmax/argmin, variance, logsumexp.
// The front ends validate everything and compute the output shape and dtype; kernels receive
// the reduced axes normalized (non-negative) and sorted.
import { isFloatDType, type DType } from '../dtype.js';
import { execute1 } from '../dispatch.js';
import type { Shape } from '../shape.js';
import type { Tensor } from '../tensor.js';

/**
 * The axes a reduction runs over: one axis, a list of axes (negative values count from the
 * end), or `undefined` for all axes. An empty list reduces nothing (like NumPy's `axis=()`).
 * A 0-d tensor accepts axis `0` / `-1`, as if it had one dimension of size 1.
 */
export type ReductionAxes = number | readonly number[] | undefined;

/** Options of `variance`. */
export interface VarianceOptions {
  /** Subtracted from the element count in the divisor: 1 (default) for the unbiased estimate, 0 for the population variance. */
  correction?: number;
  /** Keep the reduced dims as size-1 dims (default false). */
  keepdim?: boolean;
}

/**
 * The shape of a reduction's result: `shape` without the dims in `axes` (normalized, in
 * range), or with them set to 1 when `keepdim` is true.
 */
export function reducedShape(shape: Shape, axes: readonly number[], keepdim: boolean): number[] {
  const reduced = new Set(axes);
  const out: number[] = [];
  shape.forEach((d, i) => {
    if (!reduced.has(i)) out.push(d);
    else if (keepdim) out.push(1);
  });
  return out;
}

/** Sum of the elements over `axes`. Integer inputs (int8, uint8, int32) give int32 (wrapping on overflow). An empty reduction gives 0. Op name: `sum`. */
export function sum(x: Tensor, axes?: ReductionAxes, keepdim = false): Tensor {
  checkTensor('sum', x);
  const outDType: DType = isFloatDType(x.dtype) ? x.dtype : 'int32';
  return reduce('sum', x, axes, keepdim, outDType);
}

/** Mean of the elements over `axes` (floating-point inputs only). An empty reduction gives NaN. Op name: `mean`. */
export function mean(x: Tensor, axes?: ReductionAxes, keepdim = false): Tensor {
  checkFloat('mean', x);
  return reduce('mean', x, axes, keepdim, x.dtype);
}

/** Largest element over `axes`; NaN wins over any number. Throws when a reduced dim is empty. Op name: `max`. */
export function max(x: Tensor, axes?: ReductionAxes, keepdim = false): Tensor {
  checkTensor('max', x);
  return reduce('max', x, axes, keepdim, x.dtype, true);
}

/** Smallest element over `axes`; NaN wins over any number. Throws when a reduced dim is empty. Op name: `min`. */
export function min(x: Tensor, axes?: ReductionAxes, keepdim = false): Tensor {
  checkTensor('min', x);
  return reduce('min', x, axes, keepdim, x.dtype, true);
}

/**
 * Index (int32) of the largest element along `axis`: the first one on ties, the first NaN
 * if there is one. Throws when the dim is empty. Op name: `argmax`, attrs `{axis, keepdim}`.
 */
export function argmax(x: Tensor, axis: number, keepdim = false): Tensor {
  return argReduce('argmax', x, axis, keepdim);
}

/**
 * Index (int32) of the smallest element along `axis`: the first one on ties, the first NaN
 * if there is one. Throws when the dim is empty. Op name: `argmin`, attrs `{axis, keepdim}`.
 */
export function argmin(x: Tensor, axis: number, keepdim = false): Tensor {
  return argReduce('argmin', x, axis, keepdim);
}

/**
 * Variance over `axes` (floating-point inputs only): the sum of squared deviations from the
 * mean divided by `max(0, count - correction)`, as `torch.var` does (so a single element with
 * the default correction 1 gives NaN). Op name: `var`, attrs `{axes, correction, keepdim}`.
 */
export function variance(x: Tensor, axes?: ReductionAxes, options: VarianceOptions = {}): Tensor {
  checkFloat('var', x);
  const correction = options.correction ?? 1;
  if (typeof correction !== 'number' || !Number.isFinite(correction) || correction < 0) {
    throw new RangeError(`var: correction must be a finite number >= 0, got ${String(correction)}`);
  }
  return reduce('var', x, axes, options.keepdim ?? false, x.dtype, false, { correction });
}

/**
 * `log(sum(exp(x)))` over `axes`, computed stably by subtracting the maximum first (floating-point
 * inputs only). A slice that is all -Infinity (or empty) gives -Infinity; one holding +Infinity
 * gives +Infinity; NaN propagates. Op name: `logsumexp`.
 */
export function logsumexp(x: Tensor, axes?: ReductionAxes, keepdim = false): Tensor {
  checkFloat('logsumexp', x);
  return reduce('logsumexp', x, axes, keepdim, x.dtype);
}

function reduce(
  op: string,
  x: Tensor,
  axes: ReductionAxes,
  keepdim: boolean,
  outDType: DType,
  needsElements = false,
  extraAttrs: Record<string, unknown> = {},
): Tensor {
  checkKeepdim(op, keepdim);
  const normalized = resolveAxes(op, x, axes);
  if (needsElements) checkNonEmpty(op, x, normalized);
  const shape = reducedShape(x.shape, normalized, keepdim);
  return execute1(op, [x], shape, outDType, { axes: normalized, ...extraAttrs, keepdim });
}

function argReduce(op: string, x: Tensor, axis: number, keepdim: boolean): Tensor {
  checkTensor(op, x);
  checkKeepdim(op, keepdim);
  if (typeof axis !== 'number') {
    throw new TypeError(`${op}: axis must be a number, got ${String(axis)}; reshape to 1-D first to search all elements`);
  }
  const ax = resolveAxis(op, x, axis);
  // A 0-d tensor has nothing to reduce; its only element is at index 0.
  const reduced = x.rank === 0 ? [] : [ax];
  checkNonEmpty(op, x, reduced);
  return execute1(op, [x], reducedShape(x.shape, reduced, keepdim), 'int32', { axis: ax, keepdim });
}

function checkTensor(op: string, x: Tensor): void {
  if ((x as Partial<Tensor> | null)?.isTensor !== true) throw new TypeError(`${op}: expected a tensor, got ${String(x)}`);
  x.assertAlive(op);
}

function checkFloat(op: string, x: Tensor): void {
  checkTensor(op, x);
  if (!isFloatDType(x.dtype)) {
    throw new TypeError(`${op}: expected a floating-point tensor (float32, float64, float16 or bfloat16), got ${x.describe()}; cast it first`);
  }
}

function checkKeepdim(op: string, keepdim: unknown): void {
  if (typeof keepdim !== 'boolean') throw new TypeError(`${op}: keepdim must be a boolean, got ${String(keepdim)}`);
}

function checkNonEmpty(op: string, x: Tensor, axes: readonly number[]): void {
  for (const a of axes) {
    if (x.shape[a] === 0) {
      throw new RangeError(`${op}: cannot reduce over dim ${a} of size 0 of ${x.describe()} (${op} of no elements is undefined)`);
    }
  }
}

/** Normalizes one axis; a 0-d tensor accepts 0 and -1. */
function resolveAxis(op: string, x: Tensor, axis: number): number {
  const rank = Math.max(x.rank, 1);
  if (!Number.isInteger(axis) || axis < -rank || axis >= rank) {
    throw new RangeError(`${op}: axis ${axis} is out of range for ${x.describe()} (expected an integer in [${-rank}, ${rank - 1}])`);
  }
  return axis < 0 ? axis + rank : axis;
}

/** Normalized, sorted axes (all when undefined); throws on repeats or axes out of range. */
function resolveAxes(op: string, x: Tensor, axes: ReductionAxes): number[] {
  if (axes === undefined) return Array.from({ length: x.rank }, (_, i) => i);
  let list: readonly number[];
  if (typeof axes === 'number') list = [axes];
  else if (Array.isArray(axes)) list = axes;
  else throw new TypeError(`${op}: axes must be a number, an array of numbers or undefined, got ${String(axes)}`);
  const out = list.map((a) => resolveAxis(op, x, a));
  const seen = new Set<number>();
  for (let i = 0; i < out.length; i++) {
    if (seen.has(out[i]!)) throw new RangeError(`${op}: axis ${list[i]} is repeated in [${list.join(', ')}] for ${x.describe()}`);
    seen.add(out[i]!);
  }
  return x.rank === 0 ? [] : out.sort((a, b) => a - b);
}
