// Gradient rules of the fused adapter products poolLinear and repeatLinear. Each is the
// transpose of the other up to the 1/λ factor, so the input gradient of one is the other op:
// a device with fused kernels runs the backward through them too.
import {
  avgPool1d, cast, matmul, mul, reshape, repeatLinear, transpose, type DType, type Tensor,
} from '@blora/tensor';
import { registerGradient } from '../gradients.js';
import { crossInputs } from './util.js';

/** `t` as a matrix `[rows, last dim]` (batch dims folded into rows). */
function rows(t: Tensor): Tensor {
  const count = t.shape.slice(0, -1).reduce((n, d) => n * d, 1);
  return reshape(t, [count, t.shape[t.rank - 1]!]);
}

/** `t` as `dtype` (itself when it already is). */
function as(t: Tensor, dtype: DType): Tensor {
  return t.dtype === dtype ? t : cast(t, dtype);
}

// out = avgPool(cast(x, D), λ) · Wᵀ:
//   dW = gᵀ · avgPool(cast(x, D), λ) over all rows (the pool casts as it reads);
//   dx = repeatInterleave(g · W, λ) / λ in x's dtype, which is repeatLinear(g, Wᵀ, scale 1/λ).
registerGradient('poolLinear', ({ inputs: [x, weight], attrs, outputGrads: [g], needsGrad }) => {
  if (!g) return [null, null];
  const lambda = attrs.lambda as number;
  const dx = needsGrad[0]
    ? repeatLinear(g, transpose(weight!), { lambda, scale: 1 / lambda, dtype: x!.dtype })
    : null;
  let dweight: Tensor | null = null;
  if (needsGrad[1]) {
    const pooled = lambda === 1 ? as(x!, weight!.dtype) : avgPool1d(x!, lambda, { dtype: weight!.dtype });
    dweight = matmul(transpose(rows(g)), rows(pooled));
  }
  return [dx, dweight];
}, { inputs: crossInputs, outputs: [] });

// out = base + s · repeatInterleave(h · Wᵀ, λ), rounded to the output dtype:
//   dbase = g (in base's dtype); dz = s · sumRuns(cast(g, D), λ), computed as (s·λ) · the run means;
//   dh = dz · W; dW = dzᵀ · h over all rows.
registerGradient('repeatLinear', ({ inputs: [h, weight, base], attrs, outputGrads: [g], needsGrad }) => {
  if (!g) return [null, null, ...(base ? [null] : [])];
  const lambda = attrs.lambda as number;
  const scale = attrs.scale as number;
  const dbase = base && needsGrad[2] ? as(g, base.dtype) : null;
  let dh: Tensor | null = null;
  let dweight: Tensor | null = null;
  if (needsGrad[0] || needsGrad[1]) {
    // s · (sum of each run) = (s · λ) · (mean of each run): the mean reads g once, cast included.
    const summed = lambda === 1 ? as(g, h!.dtype) : avgPool1d(g, lambda, { dtype: h!.dtype });
    const factor = lambda === 1 ? scale : scale * lambda;
    const dz = factor === 1 ? summed : mul(summed, factor);
    if (needsGrad[0]) dh = matmul(dz, weight!);
    if (needsGrad[1]) dweight = matmul(transpose(rows(dz)), rows(h!));
  }
  return base ? [dh, dweight, dbase] : [dh, dweight];
}, { inputs: crossInputs, outputs: [] });
