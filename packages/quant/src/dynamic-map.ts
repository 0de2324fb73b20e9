// bitsandbytes' 8-bit "dynamic" code book (create_dynamic_map) and its 8-bit quantizer.
//
// The map has a decimal exponent and a linear fraction whose width grows with the exponent:
// for exponent step i = 0 .. maxExponentBits-1 it takes 2^i (signed) evenly spaced fractions
// between 0.1 and 1 (the means of neighbouring points of linspace(0.1, 1, 2^i + 1)), scales them
// by 10^(i - (maxExponentBits - 1)) and adds their negatives, then 0 and 1; sorted. bitsandbytes
// builds it with float32 torch tensors, so to get the same 256 float32 values we reproduce that
// arithmetic exactly:
// - linspace in float32 as PyTorch's CPU kernel computes it: step = (end - start)/(n - 1) rounded
//   to float32; the first half is start + step·k, the second half end - step·(n - 1 - k), each
//   rounded once (the kernel's fused multiply-add);
// - means (a + b)/2 in float32;
// - the scale 10^e is a Python float that becomes float32 before the float32 multiply.
import { f32, powerOfTen } from './float.js';

/** `n` points from `start` to `end` in float32, rounded as PyTorch's CPU linspace rounds them. */
function linspaceFloat32(start: number, end: number, n: number): Float64Array {
  const a = f32(start);
  const b = f32(end);
  const out = new Float64Array(n);
  if (n === 1) {
    out[0] = a;
    return out;
  }
  const step = f32((b - a) / (n - 1));
  const half = Math.floor(n / 2);
  // step·k needs at most 24 + 8 bits, so the float64 expression is exact until the final rounding.
  for (let k = 0; k < n; k++) out[k] = k < half ? f32(a + step * k) : f32(b - step * (n - 1 - k));
  return out;
}

/**
 * The 256-entry dynamic quantization map of bitsandbytes
 * (`create_dynamic_map(signed, max_exponent_bits, total_bits)`), float32 values ascending.
 * The defaults give the map bitsandbytes uses for blockwise 8-bit quantization and for
 * double quantization of 4-bit absmax values.
 */
export function createDynamicMap(signed = true, maxExponentBits = 7, totalBits = 8): Float32Array {
  if (!Number.isInteger(totalBits) || totalBits < 2 || totalBits > 8) {
    throw new RangeError(`createDynamicMap: totalBits must be an integer in 2..8, got ${totalBits}`);
  }
  const nonSignBits = totalBits - 1;
  if (!Number.isInteger(maxExponentBits) || maxExponentBits < 1 || maxExponentBits > nonSignBits) {
    throw new RangeError(`createDynamicMap: maxExponentBits must be an integer in 1..${nonSignBits}, got ${maxExponentBits}`);
  }
  const values: number[] = [];
  const addScaled = (exponent: number, count: number): void => {
    const scale = f32(powerOfTen(exponent));
    const points = linspaceFloat32(0.1, 1, count + 1);
    for (let k = 0; k < count; k++) {
      const mean = f32(f32(points[k]! + points[k + 1]!) / 2);
      values.push(f32(scale * mean));
      if (signed) values.push(-f32(scale * mean));
    }
  };
  let exponent = 0;
  for (let i = 0; i < maxExponentBits; i++) {
    exponent = i - (maxExponentBits - 1);
    addScaled(exponent, signed ? 2 ** (i + nonSignBits - maxExponentBits) : 2 ** (i + nonSignBits - maxExponentBits + 1));
  }
  // Codes left over when fewer exponent bits are used live at the largest exponent.
  const additional = 2 ** (nonSignBits - maxExponentBits) - 1;
  if (additional > 0) addScaled(exponent, additional);
  values.push(0, 1);
  if (values.length !== 2 ** totalBits) {
    throw new RangeError(`createDynamicMap: these settings give ${values.length} values, not ${2 ** totalBits}`);
  }
  while (values.length < 256) values.push(0); // fewer bits: pad with zeros as bitsandbytes does
  values.sort((x, y) => x - y);
  return Float32Array.from(values);
}

let defaultMap: Float32Array | null = null;

/** The default signed dynamic map (computed once). Do not modify the returned array. */
export function dynamicMap(): Float32Array {
  defaultMap ??= createDynamicMap();
  return defaultMap;
}

/**
 * The 8-bit code of a float32 value `x` (already divided by its block's absmax) in a
 * 256-entry ascending `code` book, decided exactly as bitsandbytes' blockwise 8-bit kernel
 * decides it: seven halving steps from index 127 that remember the nearest codes seen below
 * and above, then a choice between the final index and that neighbour by comparing `x` with
 * their float32 midpoint (strict comparisons, so an exact midpoint keeps the final index).
 */
export function dynamicCodeOf(code: Float32Array, x: number): number {
  let index = 127;
  let below = 0; // index of the nearest code known to be < x ("lower pivot")
  let above = 255; // index of the nearest code known to be >= x ("upper pivot")
  let belowValue = -1;
  let aboveValue = 1;
  let value = code[index]!;
  for (let step = 64; step > 0; step >>= 1) {
    if (x > value) {
      below = index;
      belowValue = value;
      index += step;
    } else {
      above = index;
      aboveValue = value;
      index -= step;
    }
    value = code[index]!;
  }
  // The ends were never visited when the search ran off one side: use the table's ends.
  if (above === 255) aboveValue = code[255]!;
  if (below === 0) belowValue = code[0]!;
  if (x > value) return x > f32(f32(aboveValue + value) * 0.5) ? above : index;
  return x < f32(f32(belowValue + value) * 0.5) ? below : index;
}
