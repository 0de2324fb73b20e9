// CPU kernel of the fused, in-place AdamW update (see ops/optim.ts for the formula).
import { registerKernel } from '../dispatch.js';
import { bfloat16BitsToFloat32, float16BitsToFloat32, float32ToBfloat16Bits, float32ToFloat16Bits } from '../half.js';
import { readValues, storageOf } from './access.js';

registerKernel('adamwStep', 'cpu', ([param, grad, m, v], _outputs, attrs) => {
  const lr = attrs.lr as number;
  const beta1 = attrs.beta1 as number;
  const beta2 = attrs.beta2 as number;
  const eps = attrs.eps as number;
  const step = attrs.step as number;
  const decay = 1 - lr * (attrs.weightDecay as number);
  const stepSize = lr / (1 - beta1 ** step);
  const sqrtCorrection2 = Math.sqrt(1 - beta2 ** step);
  const n = param!.numel;
  // param, m and v are contiguous (checked by the front end): element i is at offset + i.
  const p = storageOf(param!);
  const pOff = param!.offset;
  const mv = storageOf(m!).subarray(m!.offset, m!.offset + n) as Float32Array | Float64Array;
  const vv = storageOf(v!).subarray(v!.offset, v!.offset + n) as Float32Array | Float64Array;
  const g = readValues(grad!);
  const decode = param!.dtype === 'bfloat16' ? bfloat16BitsToFloat32 : param!.dtype === 'float16' ? float16BitsToFloat32 : null;
  const encode = param!.dtype === 'bfloat16' ? float32ToBfloat16Bits : param!.dtype === 'float16' ? float32ToFloat16Bits : null;
  for (let i = 0; i < n; i++) {
    const gi = g[i]!;
    // Moments are stored (rounded to their dtype) before use, as a framework updating them in place would.
    mv[i] = beta1 * mv[i]! + (1 - beta1) * gi;
    vv[i] = beta2 * vv[i]! + (1 - beta2) * gi * gi;
    const raw = p[pOff + i]!;
    const value = decode ? decode(raw) : raw;
    const updated = value * decay - (stepSize * mv[i]!) / (Math.sqrt(vv[i]!) / sqrtCorrection2 + eps);
    p[pOff + i] = encode ? encode(updated) : updated;
  }
});
