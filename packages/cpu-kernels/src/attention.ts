// Native float32 'attention' and 'attentionBackward'. Operands are read through their strides
// (for example q, k, v viewed [B, H, T, D] out of a [B, T, H, D] projection) as long as their
// last dim is dense; other layouts and dtypes go to the TypeScript kernels.
import type { Attrs, KernelFn, Tensor } from '@blora/tensor';
import type { NativeAddon } from './native.js';
import { f32Storage, isF32 } from './tensors.js';

/** True when the addon can read `t`: a float32 CPU tensor whose last dim is dense (or at most 1 long). */
function readable(t: Tensor): boolean {
  return isF32(t) && (t.shape[t.rank - 1]! <= 1 || t.strides[t.rank - 1] === 1);
}

/** (offset, batch stride, head stride, row stride) of each operand, in order. */
function geometryOf(tensors: readonly Tensor[]): Float64Array {
  const g = new Float64Array(4 * tensors.length);
  tensors.forEach((t, i) => {
    g[4 * i] = t.offset;
    g[4 * i + 1] = t.strides[0]!;
    g[4 * i + 2] = t.strides[1]!;
    g[4 * i + 3] = t.strides[2]!;
  });
  return g;
}

/** [B, H, T, D, Hkv, S, Dv] of q [B, H, T, D], k [B, Hkv, S, D], v [B, Hkv, S, Dv]. */
function dimsOf(q: Tensor, k: Tensor, v: Tensor): Float64Array {
  return Float64Array.of(q.shape[0]!, q.shape[1]!, q.shape[2]!, q.shape[3]!, k.shape[1]!, k.shape[2]!, v.shape[3]!);
}

function options(attrs: Attrs): [number, boolean, number] {
  return [attrs['scale'] as number, attrs['causal'] as boolean, (attrs['window'] as number | null) ?? 0];
}

/** The 'attention' kernel (outputs [o, lse]). */
export function nativeAttention(addon: NativeAddon, fallback: KernelFn): KernelFn {
  return (inputs, outputs, attrs) => {
    const [q, k, v] = inputs as [Tensor, Tensor, Tensor];
    const [o, lse] = outputs as [Tensor, Tensor];
    if (![q, k, v, o].every(readable) || !isF32(lse)) {
      fallback(inputs, outputs, attrs);
      return;
    }
    const all = [q, k, v, o, lse];
    const s = all.map(f32Storage);
    addon.attentionF32(s[0]!, s[1]!, s[2]!, s[3]!, s[4]!, geometryOf(all), dimsOf(q, k, v), ...options(attrs));
  };
}

/** The 'attentionBackward' kernel (inputs [dO, q, k, v, o, lse], outputs [dq, dk, dv]). */
export function nativeAttentionBackward(addon: NativeAddon, fallback: KernelFn): KernelFn {
  return (inputs, outputs, attrs) => {
    const [dO, q, k, v, o, lse] = inputs as [Tensor, Tensor, Tensor, Tensor, Tensor, Tensor];
    const [dq, dk, dv] = outputs as [Tensor, Tensor, Tensor];
    if (![dO, q, k, v, o, dq, dk, dv].every(readable) || !isF32(lse)) {
      fallback(inputs, outputs, attrs);
      return;
    }
    const all = [dO, q, k, v, o, lse, dq, dk, dv];
    const s = all.map(f32Storage);
    addon.attentionBackwardF32(s[0]!, s[1]!, s[2]!, s[3]!, s[4]!, s[5]!, s[6]!, s[7]!, s[8]!,
      geometryOf(all), dimsOf(q, k, v), ...options(attrs));
  };
}
