// CPU kernels for reductions over any set of axes.
//
// A reduction is planned as a loop nest over the input's dims in memory order (largest stride
// outermost, mergeable neighbours coalesced). Each dim carries three strides: in the input,
// in the dense output (0 for reduced dims) and in the reduced sub-space (0 for kept dims).
// The innermost loop is handed to a per-op segment function, which either folds a run of
// elements into one accumulator (innermost dim reduced) or updates a run of neighbouring
// accumulators (innermost dim kept). Either way the input is read in memory order, views and
// non-adjacent axes need no copy, and the work is linear in the number of elements.
import { isHalfDType } from '../dtype.js';
import { registerKernel, type Attrs } from '../dispatch.js';
import { contiguousStrides } from '../shape.js';
import type { Tensor } from '../tensor.js';
import { commitValues, outputValues, readValues, storageOf } from './access.js';

/** Readable numbers (raw storage of a non-half tensor, or decoded values). */
type Values = ArrayLike<number>;

/**
 * Processes `n` input elements `src[inOff + j * inStride]` whose accumulators are
 * `outIndex + j * outStride` and whose positions in the reduced sub-space (row-major over the
 * reduced dims) are `redIndex + j * redStride`. `outStride` is 0 when all share one accumulator.
 */
type Segment = (
  src: Values, inOff: number, n: number, inStride: number,
  outIndex: number, outStride: number, redIndex: number, redStride: number,
) => void;

/** One loop of the nest. */
interface Loop {
  size: number;
  inStride: number;
  outStride: number;
  redStride: number;
}

/** A planned reduction of one input tensor. */
interface Plan {
  src: Values;
  offset: number;
  loops: Loop[];
  /** Number of elements folded into each output (product of reduced sizes). */
  reducedCount: number;
  /** Number of outputs (product of kept sizes). */
  outCount: number;
  /** Number of input elements. */
  numel: number;
}

function plan(x: Tensor, axes: readonly number[]): Plan {
  // Half types are decoded once into a dense float32 copy; everything else is read in place.
  const half = isHalfDType(x.dtype);
  const src: Values = half ? readValues(x) : storageOf(x);
  const strides = half ? contiguousStrides(x.shape) : x.strides;
  const reduced = new Set(axes);
  const loops: Loop[] = [];
  let outStride = 1;
  let redStride = 1;
  for (let d = x.rank - 1; d >= 0; d--) {
    const size = x.shape[d]!;
    const isReduced = reduced.has(d);
    if (size !== 1) {
      loops.push({ size, inStride: strides[d]!, outStride: isReduced ? 0 : outStride, redStride: isReduced ? redStride : 0 });
    }
    if (isReduced) redStride *= size;
    else outStride *= size;
  }
  loops.reverse();
  // Memory order: Array.prototype.sort is stable, so equal strides keep their logical order.
  loops.sort((a, b) => b.inStride - a.inStride);
  const merged: Loop[] = [];
  for (const l of loops) {
    const prev = merged[merged.length - 1];
    if (prev && prev.inStride === l.inStride * l.size && prev.outStride === l.outStride * l.size &&
        prev.redStride === l.redStride * l.size) {
      prev.size *= l.size;
      prev.inStride = l.inStride;
      prev.outStride = l.outStride;
      prev.redStride = l.redStride;
    } else {
      merged.push({ ...l });
    }
  }
  return { src, offset: half ? 0 : x.offset, loops: merged, reducedCount: redStride, outCount: outStride, numel: x.numel };
}

/** Runs `segment` over every innermost run of the plan. */
function walk(p: Plan, segment: Segment): void {
  if (p.numel === 0) return;
  const loops = p.loops;
  if (loops.length === 0) {
    segment(p.src, p.offset, 1, 0, 0, 0, 0, 0);
    return;
  }
  const inner = loops[loops.length - 1]!;
  const depth = loops.length - 1;
  const idx = new Array<number>(depth).fill(0);
  const runs = p.numel / inner.size;
  let inOff = p.offset;
  let outIndex = 0;
  let redIndex = 0;
  for (let r = 0; r < runs; r++) {
    segment(p.src, inOff, inner.size, inner.inStride, outIndex, inner.outStride, redIndex, inner.redStride);
    for (let d = depth - 1; d >= 0; d--) {
      const l = loops[d]!;
      inOff += l.inStride;
      outIndex += l.outStride;
      redIndex += l.redStride;
      if (++idx[d]! < l.size) break;
      inOff -= l.inStride * l.size;
      outIndex -= l.outStride * l.size;
      redIndex -= l.redStride * l.size;
      idx[d] = 0;
    }
  }
}

// ---- segment functions (one per accumulation rule) ----

function sumInto(acc: Float64Array): Segment {
  return (src, off, n, s, a, as) => {
    if (as === 0) {
      let t = acc[a]!;
      for (let j = 0; j < n; j++, off += s) t += src[off]!;
      acc[a] = t;
    } else {
      for (let j = 0; j < n; j++, off += s, a += as) acc[a] += src[off]!;
    }
  };
}

/** Adds (x - center)^2; used for the second pass of the variance. */
function sumSquaredDeviationInto(acc: Float64Array, center: Float64Array): Segment {
  return (src, off, n, s, a, as) => {
    if (as === 0) {
      const c = center[a]!;
      let t = acc[a]!;
      for (let j = 0; j < n; j++, off += s) {
        const d = src[off]! - c;
        t += d * d;
      }
      acc[a] = t;
    } else {
      for (let j = 0; j < n; j++, off += s, a += as) {
        const d = src[off]! - center[a]!;
        acc[a] += d * d;
      }
    }
  };
}

/** Adds exp(x - shift); the second pass of logsumexp (shift = the slice's max). */
function sumExpInto(acc: Float64Array, shift: Float64Array): Segment {
  return (src, off, n, s, a, as) => {
    if (as === 0) {
      const m = shift[a]!;
      let t = acc[a]!;
      for (let j = 0; j < n; j++, off += s) t += Math.exp(src[off]! - m);
      acc[a] = t;
    } else {
      for (let j = 0; j < n; j++, off += s, a += as) acc[a] += Math.exp(src[off]! - shift[a]!);
    }
  };
}

// `v !== v` is a NaN test: NaN replaces the running value and is never replaced again.
function maxInto(acc: Float64Array): Segment {
  return (src, off, n, s, a, as) => {
    if (as === 0) {
      let m = acc[a]!;
      for (let j = 0; j < n; j++, off += s) {
        const v = src[off]!;
        if (v > m || v !== v) m = v;
      }
      acc[a] = m;
    } else {
      for (let j = 0; j < n; j++, off += s, a += as) {
        const v = src[off]!;
        if (v > acc[a]! || v !== v) acc[a] = v;
      }
    }
  };
}

function minInto(acc: Float64Array): Segment {
  return (src, off, n, s, a, as) => {
    if (as === 0) {
      let m = acc[a]!;
      for (let j = 0; j < n; j++, off += s) {
        const v = src[off]!;
        if (v < m || v !== v) m = v;
      }
      acc[a] = m;
    } else {
      for (let j = 0; j < n; j++, off += s, a += as) {
        const v = src[off]!;
        if (v < acc[a]! || v !== v) acc[a] = v;
      }
    }
  };
}

// Arg-reductions run over a single axis, so each output sees its elements in increasing index
// order; a strict comparison therefore keeps the first index on ties. Best values start at
// -Inf (+Inf for argmin) with index 0, which is right for a slice of all -Inf (+Inf).
function argmaxInto(best: Float64Array, index: Int32Array): Segment {
  return (src, off, n, s, a, as, r, rs) => {
    if (as === 0) {
      let b = best[a]!;
      let bi = index[a]!;
      for (let j = 0; j < n; j++, off += s, r += rs) {
        const v = src[off]!;
        if (v > b || (v !== v && b === b)) {
          b = v;
          bi = r;
        }
      }
      best[a] = b;
      index[a] = bi;
    } else {
      for (let j = 0; j < n; j++, off += s, a += as) {
        const v = src[off]!;
        const b = best[a]!;
        if (v > b || (v !== v && b === b)) {
          best[a] = v;
          index[a] = r;
        }
      }
    }
  };
}

function argminInto(best: Float64Array, index: Int32Array): Segment {
  return (src, off, n, s, a, as, r, rs) => {
    if (as === 0) {
      let b = best[a]!;
      let bi = index[a]!;
      for (let j = 0; j < n; j++, off += s, r += rs) {
        const v = src[off]!;
        if (v < b || (v !== v && b === b)) {
          b = v;
          bi = r;
        }
      }
      best[a] = b;
      index[a] = bi;
    } else {
      for (let j = 0; j < n; j++, off += s, a += as) {
        const v = src[off]!;
        const b = best[a]!;
        if (v < b || (v !== v && b === b)) {
          best[a] = v;
          index[a] = r;
        }
      }
    }
  };
}

// ---- kernels ----

/** Writes `values` (one per output element, row-major) into `out`, rounding to its dtype. */
function writeOutput(out: Tensor, values: ArrayLike<number>): void {
  const dst = outputValues(out);
  // Integer outputs wrap like a typed-array store (sums of int8/uint8/int32 into int32).
  for (let i = 0; i < dst.length; i++) dst[i] = values[i]!;
  commitValues(out, dst);
}

function axesOf(attrs: Attrs): number[] {
  return attrs.axes as number[];
}

/** Folds the plan's input into fresh accumulators (initialised to `init`) with `segmentFor(acc)`. */
function accumulate(p: Plan, init: number, segmentFor: (acc: Float64Array) => Segment): Float64Array {
  const acc = new Float64Array(p.outCount);
  if (init !== 0) acc.fill(init);
  walk(p, segmentFor(acc));
  return acc;
}

registerKernel('sum', 'cpu', ([x], [out], attrs) => {
  writeOutput(out!, accumulate(plan(x!, axesOf(attrs)), 0, sumInto));
});

registerKernel('mean', 'cpu', ([x], [out], attrs) => {
  const p = plan(x!, axesOf(attrs));
  const acc = accumulate(p, 0, sumInto);
  // An empty reduction gives 0 / 0 = NaN, like torch.
  for (let i = 0; i < acc.length; i++) acc[i] = acc[i]! / p.reducedCount;
  writeOutput(out!, acc);
});

registerKernel('max', 'cpu', ([x], [out], attrs) => {
  writeOutput(out!, accumulate(plan(x!, axesOf(attrs)), -Infinity, maxInto));
});

registerKernel('min', 'cpu', ([x], [out], attrs) => {
  writeOutput(out!, accumulate(plan(x!, axesOf(attrs)), Infinity, minInto));
});

function registerArgReduction(op: string, init: number, segmentFor: (best: Float64Array, index: Int32Array) => Segment): void {
  registerKernel(op, 'cpu', ([x], [out], attrs) => {
    const axis = attrs.axis as number;
    const p = plan(x!, x!.rank === 0 ? [] : [axis]);
    const best = new Float64Array(p.outCount).fill(init);
    const index = new Int32Array(p.outCount);
    walk(p, segmentFor(best, index));
    writeOutput(out!, index);
  });
}

registerArgReduction('argmax', -Infinity, argmaxInto);
registerArgReduction('argmin', Infinity, argminInto);

// Two passes (mean, then squared deviations) in float64: accurate without Welford's updates.
registerKernel('var', 'cpu', ([x], [out], attrs) => {
  const p = plan(x!, axesOf(attrs));
  const center = accumulate(p, 0, sumInto);
  for (let i = 0; i < center.length; i++) center[i] = center[i]! / p.reducedCount;
  const acc = accumulate(p, 0, (a) => sumSquaredDeviationInto(a, center));
  const divisor = Math.max(0, p.reducedCount - (attrs.correction as number));
  for (let i = 0; i < acc.length; i++) acc[i] = acc[i]! / divisor;
  writeOutput(out!, acc);
});

// Max first, then sum of exp(x - max): no overflow for large inputs. A slice whose max is not
// finite (all -Inf or empty, any +Inf, any NaN) has that max as its result.
registerKernel('logsumexp', 'cpu', ([x], [out], attrs) => {
  const p = plan(x!, axesOf(attrs));
  const shift = accumulate(p, -Infinity, maxInto);
  const acc = accumulate(p, 0, (a) => sumExpInto(a, shift));
  for (let i = 0; i < acc.length; i++) {
    const m = shift[i]!;
    acc[i] = Number.isFinite(m) ? m + Math.log(acc[i]!) : m;
  }
  writeOutput(out!, acc);
});
