// How the native kernels see tensors: the raw float32 storage plus layout checks.
import type { Tensor } from '@blora/tensor';

/** The whole storage array of a float32 CPU tensor (its elements start at `t.offset`). */
export function f32Storage(t: Tensor): Float32Array {
  return t.storage.handle as Float32Array;
}

/** True for float32 tensors on the CPU. */
export function isF32(t: Tensor): boolean {
  return t.dtype === 'float32' && t.device === 'cpu';
}

/** True when every element of `t` is one storage element (a broadcast scalar). */
export function isBroadcastScalar(t: Tensor): boolean {
  return t.strides.every((s, d) => s === 0 || t.shape[d] === 1);
}

/**
 * How a native elementwise loop walks `t`: 1 when its elements are storage[offset .. offset + numel)
 * in order, 0 when it is a broadcast scalar, -1 when neither (the TypeScript kernel handles it).
 */
export function elementStep(t: Tensor): 1 | 0 | -1 {
  if (t.isContiguous) return 1;
  if (isBroadcastScalar(t)) return 0;
  return -1;
}

/** The whole storage array of a uint8 CPU tensor. */
export function u8Storage(t: Tensor): Uint8Array {
  return t.storage.handle as Uint8Array;
}

/** True for a contiguous CPU tensor of `dtype`. */
export function isDense(t: Tensor, dtype: Tensor['dtype']): boolean {
  return t.dtype === dtype && t.device === 'cpu' && t.isContiguous;
}
