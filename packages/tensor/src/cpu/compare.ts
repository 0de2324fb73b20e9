// CPU kernels for comparisons (uint8 0/1 results), where and clamp.
// Comparisons with NaN are false except `ne`, as in IEEE 754.
import { registerKernel } from '../dispatch.js';
import { commitValues, outputValues, readValues } from './access.js';
import { operandValues, registerBinaryLoop } from './binary.js';

registerBinaryLoop('eq', (x, y, out, n, xs, ys) => {
  for (let i = 0, ix = 0, iy = 0; i < n; i++, ix += xs, iy += ys) out[i] = x[ix]! === y[iy]! ? 1 : 0;
});
registerBinaryLoop('ne', (x, y, out, n, xs, ys) => {
  for (let i = 0, ix = 0, iy = 0; i < n; i++, ix += xs, iy += ys) out[i] = x[ix]! !== y[iy]! ? 1 : 0;
});
registerBinaryLoop('lt', (x, y, out, n, xs, ys) => {
  for (let i = 0, ix = 0, iy = 0; i < n; i++, ix += xs, iy += ys) out[i] = x[ix]! < y[iy]! ? 1 : 0;
});
registerBinaryLoop('le', (x, y, out, n, xs, ys) => {
  for (let i = 0, ix = 0, iy = 0; i < n; i++, ix += xs, iy += ys) out[i] = x[ix]! <= y[iy]! ? 1 : 0;
});
registerBinaryLoop('gt', (x, y, out, n, xs, ys) => {
  for (let i = 0, ix = 0, iy = 0; i < n; i++, ix += xs, iy += ys) out[i] = x[ix]! > y[iy]! ? 1 : 0;
});
registerBinaryLoop('ge', (x, y, out, n, xs, ys) => {
  for (let i = 0, ix = 0, iy = 0; i < n; i++, ix += xs, iy += ys) out[i] = x[ix]! >= y[iy]! ? 1 : 0;
});

registerKernel('where', 'cpu', ([cond, a, b], [out]) => {
  const [c, cs] = operandValues(cond!);
  const [x, xs] = operandValues(a!);
  const [y, ys] = operandValues(b!);
  const dst = outputValues(out!);
  const n = dst.length;
  for (let i = 0, ic = 0, ix = 0, iy = 0; i < n; i++, ic += cs, ix += xs, iy += ys) dst[i] = c[ic] !== 0 ? x[ix]! : y[iy]!;
  commitValues(out!, dst);
});

registerKernel('clamp', 'cpu', ([x], [out], attrs) => {
  const lo = (attrs.min as number | null) ?? -Infinity;
  const hi = (attrs.max as number | null) ?? Infinity;
  const src = readValues(x!);
  const dst = outputValues(out!);
  // min(max(v, lo), hi): when lo > hi everything becomes hi; NaN fails both tests and stays.
  for (let i = 0; i < dst.length; i++) {
    let v = src[i]!;
    if (v < lo) v = lo;
    if (v > hi) v = hi;
    dst[i] = v;
  }
  commitValues(out!, dst);
});
