// The 4-bit code books of bitsandbytes (NF4 and FP4) and the decision each quantizer makes.
//
// bitsandbytes picks a 4-bit code with a fixed binary decision tree whose comparisons are
// all strict (`x > threshold`, float32). Because its thresholds ascend, walking the tree
// gives the same answer as counting how many thresholds `x` exceeds, which is what we do
// with a 4-step binary search. Consequences, reproduced exactly:
// - a value equal to a threshold takes the LOWER code (ties go down);
// - NaN exceeds nothing and takes code 0 (this is what an all-zero block produces,
//   since 0 * (1/0) is NaN there; such a block dequantizes to ±0 either way).
import { f32 } from './float.js';

/** The bitsandbytes 4-bit formats. */
export type FourBitType = 'nf4' | 'fp4';

/** NF4 code values (index = 4-bit code), float32, ascending; from the QLoRA paper / bitsandbytes. */
export const NF4_CODE: Float32Array = Float32Array.from([
  -1.0, -0.6961928009986877, -0.5250730514526367, -0.39491748809814453,
  -0.28444138169288635, -0.18477343022823334, -0.09105003625154495, 0.0,
  0.07958029955625534, 0.16093020141124725, 0.24611230194568634, 0.33791524171829224,
  0.44070982933044434, 0.5626170039176941, 0.7229568362236023, 1.0,
]);

/**
 * FP4 (1 sign, 2 exponent, 1 mantissa bit) code values: codes 0..7 are 0, 0.0625, 8, 12, 4, 6,
 * 2, 3 divided by 12 (float32); bit 3 is the sign, so code 8 is -0.
 */
export const FP4_CODE: Float32Array = Float32Array.from(
  [0, 0.0625, 8, 12, 4, 6, 2, 3, -0, -0.0625, -8, -12, -4, -6, -2, -3].map((v) => f32(v / 12)),
);

/**
 * NF4 decision thresholds (15, ascending): the float64 midpoints of neighbouring code values,
 * rounded to float32 (bitsandbytes writes them as float literals).
 */
export const NF4_THRESHOLDS: Float64Array = Float64Array.from(
  Array.from({ length: 15 }, (_, k) => f32((NF4_CODE[k]! + NF4_CODE[k + 1]!) / 2)),
);

/**
 * FP4 decision thresholds on |x| (7, ascending). These are bitsandbytes' decimal constants as
 * float32, which are NOT the exact midpoints (e.g. 0.583333 where 7/12 would be exact), so a
 * value between the two rounds the way bitsandbytes rounds it.
 */
export const FP4_THRESHOLDS: Float64Array = Float64Array.from(
  [0.00260417, 0.0859375, 0.20833333, 0.29166667, 0.4166667, 0.583333, 0.8333333].map(f32),
);

/** FP4 magnitude codes in ascending order of value (0, 0.0625, 2, 3, 4, 6, 8, 12 over 12). */
const FP4_MAGNITUDE_CODES = Uint8Array.from([0b000, 0b001, 0b110, 0b111, 0b100, 0b101, 0b010, 0b011]);

/** How many of the ascending `thresholds` the value strictly exceeds (NaN exceeds none). */
function countExceeded(x: number, thresholds: Float64Array): number {
  let lo = 0;
  let hi = thresholds.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (x > thresholds[mid]!) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/** The NF4 code of a value already scaled into [-1, 1] (a float32 value), as bitsandbytes picks it. */
export function nf4CodeOf(x: number): number {
  return countExceeded(x, NF4_THRESHOLDS);
}

/** The FP4 code of a value already scaled into [-1, 1] (a float32 value), as bitsandbytes picks it. */
export function fp4CodeOf(x: number): number {
  const sign = x < 0 ? 0b1000 : 0; // -0 and NaN count as positive
  return sign | FP4_MAGNITUDE_CODES[countExceeded(Math.abs(x), FP4_THRESHOLDS)]!;
}

/** The 16-entry value table of a 4-bit type. */
export function codeTable(type: FourBitType): Float32Array {
  if (type === 'nf4') return NF4_CODE;
  if (type === 'fp4') return FP4_CODE;
  throw new TypeError(`unknown 4-bit type '${String(type)}'; expected 'nf4' or 'fp4'`);
}

/** The code picker of a 4-bit type. */
export function codePicker(type: FourBitType): (x: number) => number {
  if (type === 'nf4') return nf4CodeOf;
  if (type === 'fp4') return fp4CodeOf;
  throw new TypeError(`unknown 4-bit type '${String(type)}'; expected 'nf4' or 'fp4'`);
}
