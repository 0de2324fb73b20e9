// Small numeric helpers shared by the quantizers: float32 / float16 rounding and
// round-half-to-even, so every format rounds exactly the same way on every call.
import { float16BitsToFloat32, float32ToFloat16Bits } from '@blora/tensor';

/** Rounds a number to the nearest float32 (what a float32 register would hold). */
export const f32 = Math.fround;

/** Rounds a number to the nearest float16 value (returned as a number; overflow gives ±Infinity). */
export function roundToFloat16(value: number): number {
  return float16BitsToFloat32(float32ToFloat16Bits(value));
}

/** Rounds to the nearest integer, ties to even (like `rintf` and `torch.round`). */
export function roundHalfEven(value: number): number {
  const r = Math.round(value);
  // Math.round sends ties up; pull the odd results of exact ties back down.
  return r - value === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

/** Correctly rounded 10^exponent (the `**` operator is not exact for negative powers). */
export function powerOfTen(exponent: number): number {
  return Number.parseFloat(`1e${exponent}`);
}
