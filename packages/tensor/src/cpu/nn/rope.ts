// CPU kernel of rope (see ops/nn/rope.ts for the contract).
import { registerKernel } from '../../dispatch.js';
import { commitValues, outputValues, readValues } from '../access.js';

registerKernel('rope', 'cpu', ([x, cosT, sinT], [out], attrs) => {
  const [b, h, t, dh] = x!.shape as [number, number, number, number];
  const half = dh / 2;
  // Rotating by -angle (the inverse, and the transpose) only flips the sign of sin.
  const sign = attrs.inverse ? -1 : 1;
  const xv = readValues(x!);
  const cos = readValues(cosT!);
  const sin = readValues(sinT!);
  const ov = outputValues(out!);
  for (let bh = 0, base = 0; bh < b * h; bh++) {
    for (let p = 0; p < t; p++, base += dh) {
      const table = p * half;
      for (let i = 0; i < half; i++) {
        const c = cos[table + i]!;
        const s = sign * sin[table + i]!;
        const lo = xv[base + i]!;
        const hi = xv[base + i + half]!;
        ov[base + i] = lo * c - hi * s;
        ov[base + i + half] = hi * c + lo * s;
      }
    }
  }
  commitValues(out!, ov);
});
