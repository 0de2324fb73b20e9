// Matrix product with NumPy `matmul` semantics.
import { isFloatDType } from '../dtype.js';
import { execute1 } from '../dispatch.js';
import { tidy } from '../memory.js';
import { broadcastShapes, formatShape } from '../shape.js';
import type { Tensor } from '../tensor.js';
import { expand, squeeze, unsqueeze } from './views.js';

/**
 * Matrix product `a @ b` with NumPy semantics:
 * - 2-D x 2-D: `[m, k] @ [k, n] -> [m, n]`;
 * - a 1-D `a` is a row vector `[1, k]` and a 1-D `b` a column vector `[k, 1]`; the added dim
 *   is removed from the result (1-D x 1-D gives a scalar);
 * - leading (batch) dims broadcast: `[2, 1, m, k] @ [5, k, n] -> [2, 5, m, n]`.
 *
 * Operands must share a floating-point dtype and a device. Transposed or otherwise strided
 * operands are read in place, never copied. Half types are computed in float32 and rounded.
 *
 * Op name: `matmul`, inputs `[a, b]` of rank >= 2 with equal batch dims (broadcast with
 * `expand` views), no attrs.
 */
export function matmul(a: Tensor, b: Tensor): Tensor {
  a.assertAlive('matmul');
  b.assertAlive('matmul');
  if (a.dtype !== b.dtype) {
    throw new TypeError(`matmul: dtypes differ (${a.describe()} and ${b.describe()}); cast one operand first`);
  }
  if (!isFloatDType(a.dtype)) {
    throw new TypeError(`matmul: expected floating-point operands (float32, float64, float16, bfloat16), got ${a.describe()} and ${b.describe()}`);
  }
  if (a.device !== b.device) {
    throw new Error(`matmul: operands are on different devices (${a.describe()} and ${b.describe()})`);
  }
  if (a.rank === 0 || b.rank === 0) {
    throw new RangeError(`matmul: operands need at least one dimension, got ${a.describe()} and ${b.describe()}`);
  }
  // tidy frees the reshaped and broadcast views made here; only the result survives.
  return tidy(() => matmulViews(a, b));
}

function matmulViews(a: Tensor, b: Tensor): Tensor {
  const a2 = a.rank === 1 ? unsqueeze(a, 0) : a;
  const b2 = b.rank === 1 ? unsqueeze(b, 1) : b;
  const m = a2.shape[a2.rank - 2]!;
  const k = a2.shape[a2.rank - 1]!;
  const kb = b2.shape[b2.rank - 2]!;
  const n = b2.shape[b2.rank - 1]!;
  if (k !== kb) {
    throw new RangeError(`matmul: inner dimensions differ: ${formatShape(a.shape)} @ ${formatShape(b.shape)} (${k} vs ${kb})`);
  }
  let batch: number[];
  try {
    batch = broadcastShapes(a2.shape.slice(0, -2), b2.shape.slice(0, -2), 'matmul');
  } catch {
    throw new RangeError(`matmul: batch dims of ${formatShape(a.shape)} and ${formatShape(b.shape)} do not broadcast`);
  }
  const left = expand(a2, [...batch, m, k]);
  const right = expand(b2, [...batch, k, n]);
  let out = execute1('matmul', [left, right], [...batch, m, n], a.dtype);
  if (a.rank === 1) out = squeeze(out, -2);
  if (b.rank === 1) out = squeeze(out, -1);
  return out;
}
