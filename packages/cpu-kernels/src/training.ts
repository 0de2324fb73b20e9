// Native float32 'rmsNorm', 'rmsNormBackward', 'crossEntropy', 'crossEntropyBackward' and
// 'adamwStep'. Row operands may have a row stride (their batch dims merged) but a dense last
// dim; other layouts, other dtypes and invalid targets go to the TypeScript kernels (which
// also produce the error messages).
import type { Attrs, KernelFn, Tensor } from '@blora/tensor';
import { mergedRowStride } from './matmul.js';
import type { NativeAddon } from './native.js';
import { f32Storage, isDense, isF32 } from './tensors.js';

/** The row stride of a float32 tensor [..., d] whose last dim is dense and leading dims merge, or null. */
function rowStride(t: Tensor): number | null {
  if (!isF32(t) || t.rank === 0) return null;
  if (t.shape[t.rank - 1]! > 1 && t.strides[t.rank - 1] !== 1) return null;
  return mergedRowStride(t);
}

/** The rmsNorm kernel (inputs [x, weight], outputs [y, rstd]). */
export function nativeRmsNorm(addon: NativeAddon, fallback: KernelFn): KernelFn {
  return (inputs, outputs, attrs) => {
    const [x, weight] = inputs as [Tensor, Tensor];
    const [y, rstd] = outputs as [Tensor, Tensor];
    const ldx = rowStride(x);
    if (ldx === null || !isDense(weight, 'float32') || !isDense(y, 'float32') || !isDense(rstd, 'float32')) {
      fallback(inputs, outputs, attrs);
      return;
    }
    addon.rmsNormF32(f32Storage(x), x.offset, ldx, f32Storage(weight), weight.offset, f32Storage(y), y.offset,
      f32Storage(rstd), rstd.offset, rstd.numel, x.shape[x.rank - 1]!, attrs['eps'] as number, attrs['offset'] as number);
  };
}

/** The rmsNormBackward kernel (inputs [dy, x, weight, rstd], outputs [dx, dweight]). */
export function nativeRmsNormBackward(addon: NativeAddon, fallback: KernelFn): KernelFn {
  return (inputs, outputs, attrs) => {
    const [dy, x, weight, rstd] = inputs as [Tensor, Tensor, Tensor, Tensor];
    const [dx, dweight] = outputs as [Tensor, Tensor];
    const lddy = rowStride(dy);
    const ldx = rowStride(x);
    if (lddy === null || ldx === null || !isDense(weight, 'float32') || !isDense(rstd, 'float32') ||
      !isDense(dx, 'float32') || !isDense(dweight, 'float32')) {
      fallback(inputs, outputs, attrs);
      return;
    }
    addon.rmsNormBackwardF32(f32Storage(dy), dy.offset, lddy, f32Storage(x), x.offset, ldx, f32Storage(weight), weight.offset,
      f32Storage(rstd), rstd.offset, f32Storage(dx), dx.offset, f32Storage(dweight), dweight.offset,
      rstd.numel, x.shape[x.rank - 1]!, attrs['offset'] as number);
    // The native kernel sums dweight alongside dx; a frozen weight's gradient is zeros.
    if (attrs['weightGrad'] === false) f32Storage(dweight).fill(0, dweight.offset, dweight.offset + dweight.numel);
  };
}

/**
 * The targets of a dense int32 tensor and how many are not ignored, or null when one lies
 * outside [0, v) without being ignoreIndex (the TypeScript kernel then throws, naming it).
 */
function countTargets(targets: Tensor, v: number, ignoreIndex: number): { values: Int32Array; counted: number } | null {
  if (!isDense(targets, 'int32')) return null;
  const values = targets.storage.handle as Int32Array;
  let counted = 0;
  for (let i = targets.offset, end = targets.offset + targets.numel; i < end; i++) {
    const t = values[i]!;
    if (t === ignoreIndex) continue;
    if (t < 0 || t >= v) return null;
    counted++;
  }
  return { values, counted };
}

function crossEntropyAttrs(attrs: Attrs): { ignoreIndex: number; mean: boolean } {
  return { ignoreIndex: attrs['ignoreIndex'] as number, mean: attrs['reduction'] === 'mean' };
}

/** The crossEntropy kernel (inputs [logits [N, V], targets], outputs [loss, lse]). */
export function nativeCrossEntropy(addon: NativeAddon, fallback: KernelFn): KernelFn {
  return (inputs, outputs, attrs) => {
    const [logits, targets] = inputs as [Tensor, Tensor];
    const [loss, lse] = outputs as [Tensor, Tensor];
    const { ignoreIndex, mean } = crossEntropyAttrs(attrs);
    const [n, v] = logits.shape as [number, number];
    const ld = rowStride(logits);
    const counts = countTargets(targets, v, ignoreIndex);
    if (ld === null || !counts || !isDense(loss, 'float32') || !isDense(lse, 'float32')) {
      fallback(inputs, outputs, attrs);
      return;
    }
    const total = addon.crossEntropyF32(f32Storage(logits), logits.offset, ld, counts.values, targets.offset,
      f32Storage(lse), lse.offset, n, v, ignoreIndex);
    f32Storage(loss)[loss.offset] = mean ? (counts.counted > 0 ? total / counts.counted : 0) : total;
  };
}

/** The crossEntropyBackward kernel (inputs [dloss, logits, targets, lse], outputs [dlogits]). */
export function nativeCrossEntropyBackward(addon: NativeAddon, fallback: KernelFn): KernelFn {
  return (inputs, outputs, attrs) => {
    const [dloss, logits, targets, lse] = inputs as [Tensor, Tensor, Tensor, Tensor];
    const dlogits = outputs[0]!;
    const { ignoreIndex, mean } = crossEntropyAttrs(attrs);
    const [n, v] = logits.shape as [number, number];
    const ld = rowStride(logits);
    const counts = countTargets(targets, v, ignoreIndex);
    if (ld === null || !counts || !isDense(lse, 'float32') || !isDense(dlogits, 'float32')) {
      fallback(inputs, outputs, attrs);
      return;
    }
    const g = dloss.item();
    const scale = mean ? (counts.counted > 0 ? g / counts.counted : 0) : g;
    addon.crossEntropyBackwardF32(f32Storage(logits), logits.offset, ld, counts.values, targets.offset,
      f32Storage(lse), lse.offset, f32Storage(dlogits), dlogits.offset, n, v, ignoreIndex, scale);
  };
}

/** The adamwStep kernel (inputs [param, grad, m, v] updated in place; no outputs). */
export function nativeAdamwStep(addon: NativeAddon, fallback: KernelFn): KernelFn {
  return (inputs, outputs, attrs) => {
    const [param, grad, m, v] = inputs as [Tensor, Tensor, Tensor, Tensor];
    if (![param, grad, m, v].every((t) => isDense(t, 'float32'))) {
      fallback(inputs, outputs, attrs);
      return;
    }
    // The same constants, computed the same way, as the TypeScript kernel.
    const lr = attrs['lr'] as number;
    const beta1 = attrs['beta1'] as number;
    const beta2 = attrs['beta2'] as number;
    const step = attrs['step'] as number;
    const decay = 1 - lr * (attrs['weightDecay'] as number);
    const stepSize = lr / (1 - beta1 ** step);
    const sqrtCorrection2 = Math.sqrt(1 - beta2 ** step);
    addon.adamwStepF32(f32Storage(param), param.offset, f32Storage(grad), grad.offset, f32Storage(m), m.offset,
      f32Storage(v), v.offset, param.numel, beta1, beta2, attrs['eps'] as number, decay, stepSize, sqrtCorrection2);
  };
}
