// Native float32 avgPool1d (mean of each run of `kernel` values along the last dim) and
// repeatInterleave (each element repeated along an axis) for dense inputs; other cases go to
// the TypeScript kernels.
import type { KernelFn } from '@blora/tensor';
import type { NativeAddon } from './native.js';
import { f32Storage, isF32 } from './tensors.js';

/** The avgPool1d kernel. */
export function nativeAvgPool1d(addon: NativeAddon, fallback: KernelFn): KernelFn {
  return (inputs, outputs, attrs) => {
    const x = inputs[0]!;
    const out = outputs[0]!;
    if (!isF32(x) || !isF32(out) || !x.isContiguous || !out.isContiguous) {
      fallback(inputs, outputs, attrs);
      return;
    }
    if (out.numel === 0) return;
    addon.avgPool1dF32(f32Storage(x), x.offset, f32Storage(out), out.offset, out.numel, attrs.kernel as number);
  };
}

/** The repeatInterleave kernel. */
export function nativeRepeatInterleave(addon: NativeAddon, fallback: KernelFn): KernelFn {
  return (inputs, outputs, attrs) => {
    const x = inputs[0]!;
    const out = outputs[0]!;
    if (!isF32(x) || !isF32(out) || !x.isContiguous || !out.isContiguous) {
      fallback(inputs, outputs, attrs);
      return;
    }
    if (out.numel === 0) return;
    const axis = attrs.axis as number;
    let inner = 1;
    for (let d = axis + 1; d < x.rank; d++) inner *= x.shape[d]!;
    addon.repeatInterleaveF32(f32Storage(x), x.offset, f32Storage(out), out.offset, x.numel / inner, inner, attrs.repeats as number);
  };
}
