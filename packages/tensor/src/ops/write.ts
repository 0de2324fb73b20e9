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
