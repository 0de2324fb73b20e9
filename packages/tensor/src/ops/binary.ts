// Elementwise binary ops with NumPy broadcasting.
import type { DType } from '../dtype.js';
import { execute1 } from '../dispatch.js';
import { broadcastShapes } from '../shape.js';
import { Tensor } from '../tensor.js';
import { tensor } from './creation.js';
import { expand } from './views.js';

/** A tensor operand, or a number taken in the other operand's dtype and device. */
export type Operand = Tensor | number;

/**
 * Validates operands, converts numbers, and broadcasts both to the common shape
 * (as zero-copy `expand` views) so kernels see equal shapes.
 */
export function prepareBinary(op: string, a: Operand, b: Operand): [Tensor, Tensor, number[]] {
  if (typeof a === 'number' && typeof b === 'number') throw new TypeError(`${op}: at least one operand must be a tensor`);
  const ref = (typeof a === 'number' ? b : a) as Tensor;
  ref.assertAlive(op);
  const ta = typeof a === 'number' ? tensor(a, { dtype: ref.dtype, device: ref.device }) : a;
  const tb = typeof b === 'number' ? tensor(b, { dtype: ref.dtype, device: ref.device }) : b;
  if (ta.dtype !== tb.dtype) {
    throw new TypeError(`${op}: dtypes differ (${ta.describe()} and ${tb.describe()}); cast one operand first`);
  }
  if (ta.device !== tb.device) {
    throw new Error(`${op}: operands are on different devices (${ta.describe()} and ${tb.describe()})`);
  }
  const shape = broadcastShapes(ta.shape, tb.shape, op);
  return [expand(ta, shape), expand(tb, shape), shape];
}

function binary(op: string, a: Operand, b: Operand, outDType?: (d: DType) => DType): Tensor {
  const [x, y, shape] = prepareBinary(op, a, b);
  return execute1(op, [x, y], shape, outDType ? outDType(x.dtype) : x.dtype);
}

/** a + b. */
export function add(a: Operand, b: Operand): Tensor {
  return binary('add', a, b);
}
