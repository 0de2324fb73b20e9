// CPU kernels for softmax and log-softmax along one axis.
// The input is read as dense rows (a copy only when it is a view or a half type) and seen as
// [outer, n, inner] with n the softmax axis. With inner = 1 each slice is a contiguous row;
// otherwise `inner` slices are processed side by side so memory is read in order.
import { registerKernel } from '../dispatch.js';
import type { Tensor } from '../tensor.js';
import { commitValues, outputValues, readValues, type ComputeArray } from './access.js';

/** Softmax (or log-softmax) of `outer` contiguous rows of length `n`. */
function rowsSoftmax(src: ComputeArray, dst: ComputeArray, outer: number, n: number, log: boolean): void {
  for (let r = 0, base = 0; r < outer; r++, base += n) {
    const end = base + n;
    let m = -Infinity;
    for (let j = base; j < end; j++) {
      const v = src[j]!;
      if (v > m || v !== v) m = v; // NaN propagates to the whole row
    }
    let s = 0;
    if (log) {
      for (let j = base; j < end; j++) s += Math.exp(src[j]! - m);
      const logSum = Math.log(s);
      for (let j = base; j < end; j++) dst[j] = src[j]! - m - logSum;
    } else {
      for (let j = base; j < end; j++) {
        const e = Math.exp(src[j]! - m);
        dst[j] = e;
        s += e;
      }
      for (let j = base; j < end; j++) dst[j] = dst[j]! / s;
    }
  }
}

/** Softmax (or log-softmax) of `inner` interleaved slices per outer block, slice i at stride `inner`. */
function lanesSoftmax(src: ComputeArray, dst: ComputeArray, outer: number, n: number, inner: number, log: boolean): void {
  const m = new Float64Array(inner);
  const s = new Float64Array(inner);
  const block = n * inner;
  for (let o = 0, base = 0; o < outer; o++, base += block) {
    const end = base + block;
    m.fill(-Infinity);
    s.fill(0);
    for (let row = base; row < end; row += inner) {
      for (let i = 0; i < inner; i++) {
        const v = src[row + i]!;
        if (v > m[i]! || v !== v) m[i] = v;
      }
    }
    if (log) {
      for (let row = base; row < end; row += inner) {
        for (let i = 0; i < inner; i++) s[i] += Math.exp(src[row + i]! - m[i]!);
      }
      for (let i = 0; i < inner; i++) s[i] = Math.log(s[i]!);
      for (let row = base; row < end; row += inner) {
        for (let i = 0; i < inner; i++) dst[row + i] = src[row + i]! - m[i]! - s[i]!;
      }
    } else {
      for (let row = base; row < end; row += inner) {
        for (let i = 0; i < inner; i++) {
          const e = Math.exp(src[row + i]! - m[i]!);
          dst[row + i] = e;
          s[i] += e;
        }
      }
      for (let row = base; row < end; row += inner) {
        for (let i = 0; i < inner; i++) dst[row + i] = dst[row + i]! / s[i]!;
      }
    }
  }
}

function runSoftmax(x: Tensor, out: Tensor, axis: number, log: boolean): void {
  if (x.numel === 0) return;
  // A 0-d input is one slice of length 1.
  const n = x.rank === 0 ? 1 : x.shape[axis]!;
  let inner = 1;
  for (let d = axis + 1; d < x.rank; d++) inner *= x.shape[d]!;
  const outer = x.numel / (n * inner);
  const src = readValues(x);
  const dst = outputValues(out);
  if (inner === 1) rowsSoftmax(src, dst, outer, n, log);
  else lanesSoftmax(src, dst, outer, n, inner, log);
  commitValues(out, dst);
}

registerKernel('softmax', 'cpu', ([x], [out], attrs) => runSoftmax(x!, out!, attrs.axis as number, false));
registerKernel('logSoftmax', 'cpu', ([x], [out], attrs) => runSoftmax(x!, out!, attrs.axis as number, true));
