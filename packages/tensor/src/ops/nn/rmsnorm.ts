// RMSNorm (Llama, Mistral, Gemma): y = x / sqrt(mean(x^2) + eps) * (offset + weight).
import { execute } from '../../dispatch.js';
import { formatShape } from '../../shape.js';
import type { Tensor } from '../../tensor.js';
import { assertDTypeIs, assertFiniteNumber, assertFloatTensor, assertShapeIs, statsDTypeOf } from './common.js';

/** Options of `rmsNorm`. */
export interface RmsNormOptions {
  /** Added to the weight before scaling: 0 gives Llama's `w` (default), 1 gives Gemma's `1 + w`. */
  offset?: number;
}

function checkOffset(op: string, offset: unknown): number {
  assertFiniteNumber(op, 'offset', offset);
  return offset;
}

function checkWeight(op: string, x: Tensor, weight: Tensor): void {
  assertFloatTensor(op, 'weight', weight);
  assertDTypeIs(op, 'weight', weight, x.dtype);
  const d = x.shape[x.rank - 1]!;
  if (weight.rank !== 1 || weight.shape[0] !== d) {
    throw new RangeError(`${op}: weight must have shape [${d}] (the last dim of x ${formatShape(x.shape)}), got ${weight.describe()}`);
  }
}

/**
 * Root-mean-square normalisation over the last dim:
 * `y = x * rstd * (offset + weight)` with `rstd = 1 / sqrt(mean(x^2) + eps)` per row.
 * `x` is `[..., D]` of a float dtype, `weight` is `[D]` of the same dtype. Computed in float32
 * (float64 for float64 inputs) and rounded once.
 *
 * Op name `rmsNorm`, inputs `[x, weight]`, attrs `{eps, offset}`, outputs `[y, rstd]` where `rstd`
 * has shape `x.shape[:-1]` and dtype `statsDTypeOf(x.dtype)`. Only `y` is returned; `rstd` stays
 * reachable through the op record for the gradient rule.
 */
export function rmsNorm(x: Tensor, weight: Tensor, eps = 1e-6, options: RmsNormOptions = {}): Tensor {
  const op = 'rmsNorm';
  assertFloatTensor(op, 'x', x);
  if (x.rank < 1) throw new RangeError(`${op}: x must have at least one dim [..., D], got ${x.describe()}`);
  checkWeight(op, x, weight);
  assertFiniteNumber(op, 'eps', eps);
  if (eps < 0) throw new RangeError(`${op}: eps must be >= 0, got ${eps}`);
  const offset = checkOffset(op, options.offset ?? 0);
  const [y] = execute(op, [x, weight], [
    { shape: x.shape, dtype: x.dtype },
    { shape: x.shape.slice(0, -1), dtype: statsDTypeOf(x.dtype) },
  ], { eps, offset });
  return y!;
}

/** Options of `rmsNormBackward`. */
export interface RmsNormBackwardOptions extends RmsNormOptions {
  /**
   * false skips the weight's gradient (a frozen norm, as in adapter fine-tuning): its sums over
   * all rows are not computed and `dweight` comes back as zeros. Default true.
   */
  weightGrad?: boolean;
}

/**
 * Gradients of `rmsNorm` given the output gradient `dy` and the saved `rstd`.
 * Op name `rmsNormBackward`, inputs `[dy, x, weight, rstd]`, attrs `{offset, weightGrad}`, outputs
 * `[dx, dweight]` (shapes and dtypes of `x` and `weight`). Not itself differentiable.
 */
export function rmsNormBackward(dy: Tensor, x: Tensor, weight: Tensor, rstd: Tensor, options: RmsNormBackwardOptions = {}): [Tensor, Tensor] {
  const op = 'rmsNormBackward';
  assertFloatTensor(op, 'x', x);
  if (x.rank < 1) throw new RangeError(`${op}: x must have at least one dim [..., D], got ${x.describe()}`);
  assertFloatTensor(op, 'dy', dy);
  assertDTypeIs(op, 'dy', dy, x.dtype);
  assertShapeIs(op, 'dy', dy, x.shape);
  checkWeight(op, x, weight);
  assertFloatTensor(op, 'rstd', rstd);
  assertDTypeIs(op, 'rstd', rstd, statsDTypeOf(x.dtype));
  assertShapeIs(op, 'rstd', rstd, x.shape.slice(0, -1));
  const offset = checkOffset(op, options.offset ?? 0);
  const weightGrad = options.weightGrad ?? true;
  if (typeof weightGrad !== 'boolean') throw new TypeError(`${op}: weightGrad must be true or false, got ${String(weightGrad)}`);
  const [dx, dweight] = execute(op, [dy, x, weight, rstd], [
    { shape: x.shape, dtype: x.dtype },
    { shape: weight.shape, dtype: weight.dtype },
  ], { offset, weightGrad });
  return [dx!, dweight!];
}
