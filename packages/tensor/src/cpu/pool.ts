// CPU kernels for avgPool1d (sums in JS numbers, divides once per output), its gradient
// avgPool1dBackward (each value divided once, then repeated), sumRuns (avgPool1d without the
// division) and repeatInterleave (copies raw storage elements, exact for every dtype).
import { registerKernel, type Attrs } from '../dispatch.js';
import type { Tensor } from '../tensor.js';
import { numel } from '../shape.js';
import { commitValues, outputValues, readValues, storageOf } from './access.js';
import { rawValues } from './join.js';

/** Sums each run of `kernel` consecutive values (in JS numbers, in order), divided by `divisor`. */
function runSumsKernel(divisor: (kernel: number) => number) {
  return ([x]: readonly Tensor[], [out]: readonly Tensor[], { kernel }: Attrs): void => {
    const k = kernel as number;
    const d = divisor(k);
    const values = readValues(x!);
    const dst = outputValues(out!);
    for (let o = 0, i = 0; o < dst.length; o++) {
      let sum = 0;
      for (let end = i + k; i < end; i++) sum += values[i]!;
      // Dividing (not multiplying by 1/k) keeps the mean of k equal values exact.
      dst[o] = sum / d;
    }
    commitValues(out!, dst);
  };
}

registerKernel('avgPool1d', 'cpu', runSumsKernel((k) => k));
registerKernel('sumRuns', 'cpu', runSumsKernel(() => 1));

registerKernel('avgPool1dBackward', 'cpu', ([dy], [out], { kernel }) => {
  const k = kernel as number;
  const values = readValues(dy!);
  const dst = outputValues(out!);
  for (let i = 0, p = 0; i < values.length; i++) {
    const v = values[i]! / k;
    for (let j = 0; j < k; j++) dst[p++] = v;
  }
  commitValues(out!, dst);
});

registerKernel('repeatInterleave', 'cpu', ([x], [out], { repeats, axis }) => {
  const r = repeats as number;
  const ax = axis as number;
  const dst = storageOf(out!);
  if (dst.length === 0) return;
  const values = rawValues(x!);
  const inner = numel(x!.shape.slice(ax + 1));
  const blocks = values.length / inner; // (outer, position along axis) pairs
  let p = 0;
  if (inner === 1) {
    for (let b = 0; b < blocks; b++) {
      const v = values[b]!;
      for (let j = 0; j < r; j++) dst[p++] = v;
    }
    return;
  }
  for (let b = 0; b < blocks; b++) {
    const from = b * inner;
    for (let j = 0; j < r; j++) for (let i = 0; i < inner; i++) dst[p++] = values[from + i]!;
  }
});
