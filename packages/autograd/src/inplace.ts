// Writing new values into an existing tensor. Parameters and optimizer state are updated in
// place so that everything holding them (optimizers, modules, user code) sees the new values.
import { cast, runKernel, type Tensor } from '@blora/tensor';
import { noGrad } from './grad-mode.js';

/**
 * Copies `src`'s values into `dst` (same shape; converted to `dst`'s dtype and device).
 * `dst` must own its memory densely from offset 0 (as freshly created tensors, parameters and
 * gradients do). The copy kernel is called directly rather than through an op: an op would
 * allocate a new output and be recorded on the tape, while this must keep `dst`'s identity
 * and never be differentiated.
 */
export function assignInPlace(dst: Tensor, src: Tensor): void {
  dst.assertAlive('assignInPlace');
  src.assertAlive('assignInPlace');
  if (dst.rank !== src.rank || dst.shape.some((d, i) => d !== src.shape[i])) {
    throw new RangeError(`assignInPlace: cannot copy ${src.describe()} into ${dst.describe()} (shapes differ)`);
  }
  if (!dst.isContiguous || dst.offset !== 0) {
    throw new Error(`assignInPlace: destination ${dst.describe()} must be contiguous from offset 0 (strides [${dst.strides.join(', ')}], offset ${dst.offset})`);
  }
  noGrad(() => {
    const moved = src.device === dst.device ? src : src.to(dst.device);
    const converted = moved.dtype === dst.dtype ? moved : cast(moved, dst.dtype);
    try {
      if (converted.storage === dst.storage && converted.offset === dst.offset && converted.isContiguous) return;
      runKernel('copy', dst.device, [converted], [dst]);
    } finally {
      if (converted !== src) converted.dispose();
      if (moved !== src && moved !== converted) moved.dispose();
    }
  });
}
