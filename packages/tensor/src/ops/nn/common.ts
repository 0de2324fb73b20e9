// Validation shared by the fused NN op front ends.
import { isFloatDType, type DType } from '../../dtype.js';
import type { Tensor } from '../../tensor.js';

/**
 * The dtype of the per-row statistics that fused NN ops save for their backward pass
 * (rmsNorm's `rstd`, crossEntropy's `loss` and `lse`, attention's `lse`): float64 for
 * float64 inputs, float32 for float32, float16 and bfloat16 inputs.
 */
export function statsDTypeOf(dtype: DType): DType {
  return dtype === 'float64' ? 'float64' : 'float32';
}

/** Throws naming `op` and `role` unless `t` is a live tensor of a floating-point dtype. */
export function assertFloatTensor(op: string, role: string, t: Tensor): void {
  if (t === null || typeof t !== 'object' || (t as { isTensor?: boolean }).isTensor !== true) {
    throw new TypeError(`${op}: ${role} must be a tensor, got ${String(t)}`);
  }
  t.assertAlive(op);
  if (!isFloatDType(t.dtype)) throw new TypeError(`${op}: ${role} must have a floating-point dtype, got ${t.describe()}`);
}

/** Throws naming `op` unless `t` has dtype `dtype`. */
export function assertDTypeIs(op: string, role: string, t: Tensor, dtype: DType): void {
  if (t.dtype !== dtype) throw new TypeError(`${op}: ${role} must be ${dtype}, got ${t.describe()}`);
}

/** Throws naming `op` unless `t` has exactly `shape`. */
export function assertShapeIs(op: string, role: string, t: Tensor, shape: readonly number[]): void {
  if (t.rank !== shape.length || t.shape.some((d, i) => d !== shape[i])) {
    throw new RangeError(`${op}: ${role} must have shape [${shape.join(', ')}], got ${t.describe()}`);
  }
}

/** Throws naming `op` unless `value` is a finite number. */
export function assertFiniteNumber(op: string, name: string, value: unknown): asserts value is number {
  if (typeof value !== 'number' || !Number.isFinite(value)) {
    throw new TypeError(`${op}: ${name} must be a finite number, got ${String(value)}`);
  }
}
