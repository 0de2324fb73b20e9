// Native float32 'copy' (the strided gather behind contiguous / clone), 'rope', and 'sum' /
// 'mean' over axes that form one run of the input's dims. Other dtypes and layouts go to the
// TypeScript kernels, whose arithmetic these follow (double sums, one rounding).
import type { KernelFn, Tensor } from '@blora/tensor';
import type { NativeAddon } from './native.js';
import { f32Storage, isDense, isF32 } from './tensors.js';

/** Most dims the native copy takes once neighbouring dims are merged. */
const MAX_COPY_RANK = 8;

/**
 * The dims of `t` with size-1 dims dropped and each dim merged into the one before it when
 * together they walk memory as one (row-major order kept), or null when more than `maxRank` remain.
 */
export function mergedDims(t: Tensor, maxRank: number): { sizes: number[]; strides: number[] } | null {
  const sizes: number[] = [];
  const strides: number[] = [];
  for (let d = 0; d < t.rank; d++) {
    const size = t.shape[d]!;
    if (size === 1) continue;
    const last = sizes.length - 1;
    if (last >= 0 && strides[last] === t.strides[d]! * size) {
      sizes[last]! *= size;
      strides[last] = t.strides[d]!;
    } else {
      sizes.push(size);
      strides.push(t.strides[d]!);
    }
  }
  return sizes.length <= maxRank ? { sizes, strides } : null;
}

/** The copy kernel: native for a strided float32 input, `fallback` otherwise (a dense input is one set()). */
export function nativeCopy(addon: NativeAddon, fallback: KernelFn): KernelFn {
  return (inputs, outputs, attrs) => {
    const x = inputs[0]!;
    const out = outputs[0]!;
    const dims = isF32(x) && !x.isContiguous && isDense(out, 'float32') ? mergedDims(x, MAX_COPY_RANK) : null;
    if (!dims) {
      fallback(inputs, outputs, attrs);
      return;
    }
    if (out.numel === 0) return;
    addon.copyF32(f32Storage(x), x.offset, Float64Array.from(dims.sizes), Float64Array.from(dims.strides), f32Storage(out), out.offset);
  };
}

/** The rope kernel: native for float32 x [B, H, T, Dh] with a dense last dim and dense float32 tables. */
export function nativeRope(addon: NativeAddon, fallback: KernelFn): KernelFn {
  const geometry = new Float64Array(7);
  return (inputs, outputs, attrs) => {
    const [x, cos, sin] = inputs as [Tensor, Tensor, Tensor];
    const out = outputs[0]!;
    const dh = x.shape[3] ?? 0;
    if (!isF32(x) || x.rank !== 4 || (dh > 1 && x.strides[3] !== 1) || !isDense(cos, 'float32') || !isDense(sin, 'float32') ||
      !isDense(out, 'float32')) {
      fallback(inputs, outputs, attrs);
      return;
    }
    if (out.numel === 0) return;
    geometry.set([x.shape[0]!, x.shape[1]!, x.shape[2]!, dh, x.strides[0]!, x.strides[1]!, x.strides[2]!]);
    addon.ropeF32(f32Storage(x), x.offset, geometry, f32Storage(cos), cos.offset, f32Storage(sin), sin.offset,
      f32Storage(out), out.offset, attrs['inverse'] === true);
  };
}

/**
 * A dense input seen as [outer, reduced, inner] for a reduction over `axes`: size-1 dims are
 * ignored, and the reduced dims must be neighbours. Null otherwise.
 */
export function reductionShape(x: Tensor, axes: readonly number[]): { outer: number; reduced: number; inner: number } | null {
  const reducedAxes = new Set(axes);
  let outer = 1;
  let reduced = 1;
  let inner = 1;
  // Phase 0: kept dims before the reduced run, 1: inside it, 2: kept dims after it.
  let phase = 0;
  for (let d = 0; d < x.rank; d++) {
    const size = x.shape[d]!;
    const isReduced = reducedAxes.has(d);
    if (size === 1) continue;
    if (isReduced) {
      if (phase === 2) return null;
      phase = 1;
      reduced *= size;
    } else if (phase === 0) {
      outer *= size;
    } else {
      phase = 2;
      inner *= size;
    }
  }
  return { outer, reduced, inner };
}

/** The kernel of 'sum' or (with `mean`) 'mean': native for a dense float32 input whose reduced dims are neighbours. */
export function nativeSum(addon: NativeAddon, mean: boolean, fallback: KernelFn): KernelFn {
  return (inputs, outputs, attrs) => {
    const x = inputs[0]!;
    const out = outputs[0]!;
    const shape = isDense(x, 'float32') && isDense(out, 'float32') ? reductionShape(x, attrs['axes'] as number[]) : null;
    if (!shape) {
      fallback(inputs, outputs, attrs);
      return;
    }
    if (out.numel === 0) return;
    // The mean divides by the number of reduced elements (size-1 and empty dims included).
    let count = 1;
    for (const axis of attrs['axes'] as number[]) count *= x.shape[axis]!;
    addon.sumF32(f32Storage(x), x.offset, shape.outer, shape.reduced, shape.inner, f32Storage(out), out.offset, mean ? count : 1);
  };
}
