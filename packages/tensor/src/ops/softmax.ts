// Softmax and log-softmax along one axis.
import { isFloatDType } from '../dtype.js';
import { execute1 } from '../dispatch.js';
import type { Tensor } from '../tensor.js';

/**
 * `exp(x) / sum(exp(x))` along `axis` (default the last), computed stably by subtracting the
 * maximum of each slice first (floating-point inputs only). A slice that is all -Infinity gives
 * NaN, as in torch. A 0-d tensor accepts axis 0 / -1 and gives 1. Op name: `softmax`, attrs `{axis}`.
 */
export function softmax(x: Tensor, axis = -1): Tensor {
  return softmaxLike('softmax', x, axis);
}

/**
 * `x - logsumexp(x)` along `axis` (default the last), computed stably (floating-point inputs
 * only). A slice that is all -Infinity gives NaN, as in torch. Op name: `logSoftmax`, attrs `{axis}`.
 */
export function logSoftmax(x: Tensor, axis = -1): Tensor {
  return softmaxLike('logSoftmax', x, axis);
}

function softmaxLike(op: string, x: Tensor, axis: number): Tensor {
  if ((x as Partial<Tensor> | null)?.isTensor !== true) throw new TypeError(`${op}: expected a tensor, got ${String(x)}`);
  x.assertAlive(op);
  if (!isFloatDType(x.dtype)) {
    throw new TypeError(`${op}: expected a floating-point tensor (float32, float64, float16 or bfloat16), got ${x.describe()}; cast it first`);
  }
  // A 0-d tensor behaves like one dim of size 1.
  const rank = Math.max(x.rank, 1);
  if (typeof axis !== 'number' || !Number.isInteger(axis) || axis < -rank || axis >= rank) {
    throw new RangeError(`${op}: axis ${String(axis)} is out of range for ${x.describe()} (expected an integer in [${-rank}, ${rank - 1}])`);
  }
  return execute1(op, [x], x.shape, x.dtype, { axis: axis < 0 ? axis + rank : axis });
}
