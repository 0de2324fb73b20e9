// Error statistics of a quantized weight against the original, so formats can be compared
// on real weights.
import { formatShape, type Tensor } from '@blora/tensor';
import { quantizeLinear, type QuantizeOptions } from './quantize.js';
import type { QuantizedLinear } from './quantized-linear.js';

/** How far a reconstruction is from the original. */
export interface QuantErrorStats {
  /** Number of elements compared. */
  count: number;
  /** Root mean square error. */
  rmse: number;
  /** Mean absolute error. */
  meanAbsError: number;
  /** Largest absolute error. */
  maxAbsError: number;
  /** Flat index of the largest error (first one on ties). */
  maxErrorIndex: number;
  /** Root mean square of the original. */
  signalRms: number;
  /** Signal-to-quantization-noise ratio, 10·log10(Σw² / Σ(w - ŵ)²) in dB (Infinity when exact). */
  sqnrDb: number;
}

function valuesOf(x: Tensor | ArrayLike<number>): ArrayLike<number> {
  return (x as Tensor).isTensor ? (x as Tensor).toFloat64Array() : (x as ArrayLike<number>);
}

/** Error statistics of `approx` against `original` (same number of elements), in float64. */
export function errorStats(original: Tensor | ArrayLike<number>, approx: Tensor | ArrayLike<number>): QuantErrorStats {
  const w = valuesOf(original);
  const a = valuesOf(approx);
  if (w.length !== a.length) throw new RangeError(`errorStats: ${w.length} original values but ${a.length} approximations`);
  let sumSq = 0;
  let sumErrSq = 0;
  let sumAbs = 0;
  let maxAbs = 0;
  let maxIndex = -1;
  for (let i = 0; i < w.length; i++) {
    const e = a[i]! - w[i]!;
    const ae = Math.abs(e);
    if (Number.isNaN(e)) throw new RangeError(`errorStats: NaN at flat index ${i} (original ${w[i]}, approximation ${a[i]})`);
    sumSq += w[i]! * w[i]!;
    sumErrSq += e * e;
    sumAbs += ae;
    if (ae > maxAbs || maxIndex < 0) {
      maxAbs = ae;
      maxIndex = i;
    }
  }
  const n = w.length;
  return {
    count: n,
    rmse: n ? Math.sqrt(sumErrSq / n) : 0,
    meanAbsError: n ? sumAbs / n : 0,
    maxAbsError: maxAbs,
    maxErrorIndex: maxIndex,
    signalRms: n ? Math.sqrt(sumSq / n) : 0,
    sqnrDb: sumErrSq === 0 ? Infinity : 10 * Math.log10(sumSq / sumErrSq),
  };
}

/** Error statistics of a quantized weight against the float weight it came from. */
export function quantizationError(weight: Tensor, quantized: QuantizedLinear): QuantErrorStats {
  if (weight.rank !== 2 || weight.shape[0] !== quantized.outFeatures || weight.shape[1] !== quantized.inFeatures) {
    throw new RangeError(`quantizationError: weight ${formatShape(weight.shape)} does not match ${quantized.describe()}`);
  }
  const dense = quantized.dequantize('float32');
  try {
    return errorStats(weight, dense);
  } finally {
    dense.dispose();
  }
}

/** One row of `compareFormats`. */
export interface FormatComparison {
  /** The options used. */
  options: QuantizeOptions;
  /** `describe()` of the quantized weight. */
  description: string;
  /** Storage cost. */
  bitsPerParameter: number;
  stats: QuantErrorStats;
}

/** Quantizes `weight` with each option set and reports storage and error side by side. */
export function compareFormats(weight: Tensor, optionSets: readonly QuantizeOptions[]): FormatComparison[] {
  return optionSets.map((options) => {
    const q = quantizeLinear(weight, options);
    try {
      return { options, description: q.describe(), bitsPerParameter: q.bitsPerParameter, stats: quantizationError(weight, q) };
    } finally {
      q.dispose();
    }
  });
}
