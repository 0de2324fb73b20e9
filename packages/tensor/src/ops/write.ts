// Writing into an existing tensor: the one op besides the optimizer updates that changes memory
// already handed out. Used where a buffer is filled piece by piece (a key/value cache).
import { runKernel } from '../dispatch.js';
import { formatShape } from '../shape.js';
import type { Tensor } from '../tensor.js';

/** True when two elements of `t` share a storage slot (an expanded or otherwise self-overlapping view). */
export function hasRepeatedElements(t: Tensor): boolean {
  // Dims of size > 1, innermost first: each stride must step past everything the inner dims reach.
  const dims = t.shape
    .map((size, i) => ({ size, stride: Math.abs(t.strides[i]!) }))
    .filter((d) => d.size > 1)
    .sort((a, b) => a.stride - b.stride);
  let reach = 0;
  for (const { size, stride } of dims) {
    if (stride <= reach) return true;
    reach += stride * (size - 1);
  }
  return false;
}

/**
 * Copies the elements of `src` into `dst` in place: everything holding `dst` or another view of
 * its memory sees the new values. `dst` may be any view (a slice of a larger buffer, a transposed
 * one) whose elements are distinct; `src` any view of the same shape, dtype and device in memory
 * that `dst` does not share. Neither may require a gradient: an in-place write is not recorded
 * on the autograd tape. Kernel `copyInto`: inputs `[src]`, outputs `[dst]`.
 */
export function copyInto(dst: Tensor, src: Tensor): void {
  for (const [role, t] of [['dst', dst], ['src', src]] as const) {
    if ((t as Partial<Tensor> | null)?.isTensor !== true) throw new TypeError(`copyInto: ${role} must be a tensor, got ${String(t)}`);
    t.assertAlive(`copyInto (${role})`);
    if (t.requiresGrad) throw new Error(`copyInto: ${role} ${t.describe()} requires a gradient; an in-place write cannot be differentiated`);
  }
  if (dst.device !== src.device) throw new Error(`copyInto: dst is on ${dst.device} but src is on ${src.device}`);
  if (dst.dtype !== src.dtype) throw new TypeError(`copyInto: dst is ${dst.dtype} but src is ${src.dtype}; cast src first`);
  if (dst.rank !== src.rank || dst.shape.some((d, i) => d !== src.shape[i])) {
    throw new RangeError(`copyInto: dst has shape ${formatShape(dst.shape)}, src has ${formatShape(src.shape)}`);
  }
  if (dst.storage === src.storage) throw new Error('copyInto: dst and src share memory; copy src first');
  if (hasRepeatedElements(dst)) throw new Error(`copyInto: dst ${dst.describe()} repeats elements (an expanded view); each element must be written once`);
  if (dst.numel === 0) return;
  runKernel('copyInto', dst.device, [src], [dst]);
}

/**
 * Copies `src` into `dst` in place at a position read from device memory: the positions
 * `start .. start + src.shape[axis] - 1` of `axis` (all of the other dims) get `src`'s values,
 * with `start` the value of the int32 tensor `position` (one element, on dst's device) when the
 * kernel runs. A captured decode step (`captureGraph`) writes each token's keys and values this
 * way into the same buffers at a new position on every replay. A start that does not fit (below
 * 0, or past `dst.shape[axis] - src.shape[axis]`) writes nothing. Otherwise as `copyInto`.
 * Kernel `copyIntoAt`: inputs `[src, position]`, outputs `[dst]`, attrs `{axis}`.
 */
export function copyIntoAt(dst: Tensor, axis: number, position: Tensor, src: Tensor): void {
  for (const [role, t] of [['dst', dst], ['src', src], ['position', position]] as const) {
    if ((t as Partial<Tensor> | null)?.isTensor !== true) throw new TypeError(`copyIntoAt: ${role} must be a tensor, got ${String(t)}`);
    t.assertAlive(`copyIntoAt (${role})`);
    if (t.requiresGrad) throw new Error(`copyIntoAt: ${role} ${t.describe()} requires a gradient; an in-place write cannot be differentiated`);
  }
  if (!Number.isInteger(axis) || axis < -dst.rank || axis >= dst.rank) throw new RangeError(`copyIntoAt: axis ${axis} is out of range for ${dst.describe()}`);
  const ax = axis < 0 ? axis + dst.rank : axis;
  if (position.dtype !== 'int32' || position.numel !== 1 || position.device !== dst.device) {
    throw new TypeError(`copyIntoAt: position must be an int32 tensor of one element on ${dst.device}, got ${position.describe()}`);
  }
  if (dst.device !== src.device) throw new Error(`copyIntoAt: dst is on ${dst.device} but src is on ${src.device}`);
  if (dst.dtype !== src.dtype) throw new TypeError(`copyIntoAt: dst is ${dst.dtype} but src is ${src.dtype}; cast src first`);
  if (dst.rank !== src.rank || dst.shape.some((d, i) => i !== ax && d !== src.shape[i]) || src.shape[ax]! > dst.shape[ax]!) {
    throw new RangeError(`copyIntoAt: src ${formatShape(src.shape)} does not fit dst ${formatShape(dst.shape)} along axis ${ax}`);
  }
  if (dst.storage === src.storage || dst.storage === position.storage) throw new Error('copyIntoAt: dst shares memory with src or position');
  if (hasRepeatedElements(dst)) throw new Error(`copyIntoAt: dst ${dst.describe()} repeats elements (an expanded view); each element must be written once`);
  if (src.numel === 0) return;
  runKernel('copyIntoAt', dst.device, [src, position], [dst], { axis: ax });
}
