// CPU kernels of rmsNorm and rmsNormBackward (see ops/nn/rmsnorm.ts for the contract).
import { registerKernel } from '../../dispatch.js';
import { commitValues, outputValues, readValues, type ComputeArray } from '../access.js';

/** offset + weight, the per-column gain. */
function gainOf(weight: ComputeArray, offset: number): Float64Array {
  const gain = new Float64Array(weight.length);
  for (let i = 0; i < weight.length; i++) gain[i] = offset + weight[i]!;
  return gain;
}

registerKernel('rmsNorm', 'cpu', ([x, weight], [y, rstd], attrs) => {
  const eps = attrs.eps as number;
  const d = x!.shape[x!.rank - 1]!;
  const rows = rstd!.numel;
  const xv = readValues(x!);
  const gain = gainOf(readValues(weight!), attrs.offset as number);
  const yv = outputValues(y!);
  const rv = outputValues(rstd!);
  for (let r = 0, base = 0; r < rows; r++, base += d) {
    let sumSquares = 0;
    for (let i = 0; i < d; i++) sumSquares += xv[base + i]! * xv[base + i]!;
    const inv = 1 / Math.sqrt((d > 0 ? sumSquares / d : 0) + eps);
    rv[r] = inv;
    for (let i = 0; i < d; i++) yv[base + i] = xv[base + i]! * inv * gain[i]!;
  }
  commitValues(y!, yv);
  commitValues(rstd!, rv);
});

// With g = offset + w and r = rstd: y_i = x_i r g_i, dr/dx_i = -x_i r^3 / D, so
// dx_i = r g_i dy_i - x_i r^3 / D * sum_j dy_j g_j x_j and dw_i = sum over rows of dy_i x_i r
// (left at zero when attrs.weightGrad is false).
registerKernel('rmsNormBackward', 'cpu', ([dy, x, weight, rstd], [dx, dweight], attrs) => {
  const weightGrad = attrs.weightGrad !== false;
  const d = x!.shape[x!.rank - 1]!;
  const rows = rstd!.numel;
  const dyv = readValues(dy!);
  const xv = readValues(x!);
  const rv = readValues(rstd!);
  const gain = gainOf(readValues(weight!), attrs.offset as number);
  const dxv = outputValues(dx!);
  const dw = new Float64Array(d);
  for (let r = 0, base = 0; r < rows; r++, base += d) {
    const inv = rv[r]!;
    let dot = 0;
    for (let i = 0; i < d; i++) dot += dyv[base + i]! * gain[i]! * xv[base + i]!;
    const coef = (inv * inv * inv * dot) / d;
    for (let i = 0; i < d; i++) {
      const xi = xv[base + i]!;
      dxv[base + i] = inv * gain[i]! * dyv[base + i]! - xi * coef;
      if (weightGrad) dw[i]! += dyv[base + i]! * xi * inv;
    }
  }
  commitValues(dx!, dxv);
  const dwv = outputValues(dweight!);
  dwv.set(dw);
  commitValues(dweight!, dwv);
});
