// Native float32 softmax / logSoftmax over the last axis of a dense tensor; other axes,
// strided inputs and other dtypes go to the TypeScript kernel.
import type { KernelFn } from '@blora/tensor';
import type { NativeAddon } from './native.js';
import { f32Storage, isF32 } from './tensors.js';

/** The softmax (or, with `log`, logSoftmax) kernel. */
export function nativeSoftmax(addon: NativeAddon, log: boolean, fallback: KernelFn): KernelFn {
  return (inputs, outputs, attrs) => {
    const x = inputs[0]!;
    const out = outputs[0]!;
    const lastAxis = x.rank === 0 || attrs.axis === x.rank - 1;
    if (!isF32(x) || !isF32(out) || !lastAxis || !x.isContiguous || !out.isContiguous) {
      fallback(inputs, outputs, attrs);
      return;
    }
    if (x.numel === 0) return;
    const n = x.rank === 0 ? 1 : x.shape[x.rank - 1]!;
    addon.softmaxF32(f32Storage(x), x.offset, f32Storage(out), out.offset, x.numel / n, n, log);
  };
}
