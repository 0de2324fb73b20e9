// Double quantization of the 4-bit absmax values (bitsandbytes' compress_statistics):
//   offset       = mean(absmax)                      (float32)
//   centred_b    = absmax_b - offset                 (float32)
//   nested absmax per group of `nestedBlocksize` centred values, and 8-bit codes of
//   centred_b * (1/nestedAbsmax) in the signed dynamic map (see dynamic-map.ts)
// Restoring: absmax_b = code[q_b] * nestedAbsmax_g + offset, each step rounded to float32.
import { dynamicCodeOf, dynamicMap } from './dynamic-map.js';
import { f32 } from './float.js';

/** bitsandbytes' nested block size for double quantization. */
export const DEFAULT_NESTED_BLOCKSIZE = 256;

/** The doubly quantized absmax of a 4-bit weight. */
export interface DoubleQuantized {
  /** 8-bit code of each absmax value. */
  codes: Uint8Array;
  /** float32 absmax of each nested block of centred absmax values. */
  nestedAbsmax: Float32Array;
  /** float32 mean of the absmax values, subtracted before quantizing. */
  offset: number;
  /** Absmax values per nested block. */
  nestedBlocksize: number;
  /** The 256-entry float32 code book (the signed dynamic map unless loaded otherwise). */
  code: Float32Array;
}

/**
 * Quantizes absmax values to 8 bits as bitsandbytes does. The mean is taken in float64 and
 * rounded to float32; bitsandbytes sums in float32 on the GPU, so its offset can differ in
 * the last bit (a loaded checkpoint always keeps its stored offset).
 */
export function doubleQuantize(absmax: ArrayLike<number>, nestedBlocksize = DEFAULT_NESTED_BLOCKSIZE): DoubleQuantized {
  if (!Number.isInteger(nestedBlocksize) || nestedBlocksize <= 0) {
    throw new RangeError(`doubleQuantize: nestedBlocksize must be a positive integer, got ${nestedBlocksize}`);
  }
  const n = absmax.length;
  const code = dynamicMap();
  let sum = 0;
  for (let i = 0; i < n; i++) sum += absmax[i]!;
  const offset = n === 0 ? 0 : f32(sum / n);
  const centred = new Float32Array(n);
  for (let i = 0; i < n; i++) centred[i] = absmax[i]! - offset;
  const codes = new Uint8Array(n);
  const nestedAbsmax = new Float32Array(Math.ceil(n / nestedBlocksize));
  for (let g = 0, start = 0; start < n; g++, start += nestedBlocksize) {
    const end = Math.min(start + nestedBlocksize, n);
    let max = 0;
    for (let i = start; i < end; i++) max = Math.max(max, Math.abs(centred[i]!));
    nestedAbsmax[g] = max;
    const inverse = f32(1 / max);
    for (let i = start; i < end; i++) codes[i] = dynamicCodeOf(code, f32(centred[i]! * inverse));
  }
  return { codes, nestedAbsmax, offset, nestedBlocksize, code };
}

/** Restores float32 absmax values from their double quantization. */
export function restoreAbsmax(dq: DoubleQuantized): Float32Array {
  return restoreBlockwise8(dq.codes, dq.nestedAbsmax, dq.code, dq.nestedBlocksize, dq.offset);
}

/** `code[q_i] * absmax[i / blocksize] + offset` per element, float32 steps. */
export function restoreBlockwise8(
  codes: Uint8Array,
  absmax: ArrayLike<number>,
  code: ArrayLike<number>,
  blocksize: number,
  offset: number,
): Float32Array {
  const out = new Float32Array(codes.length);
  for (let i = 0; i < codes.length; i++) {
    out[i] = f32(f32(code[codes[i]!]! * absmax[Math.floor(i / blocksize)]!) + offset);
  }
  return out;
}

/**
 * Storage of a 4-bit weight in bits per parameter: 4 bits of code plus its share of the
 * block statistics: 32/blocksize for float32 absmax, or 8/blocksize + 32/(blocksize ·
 * nestedBlocksize) with double quantization (4.127 at 64/256). Constant-size items (the
 * offset, the code tables) are left out.
 */
export function fourBitBitsPerParameter(blocksize: number, nestedBlocksize: number | null): number {
  if (nestedBlocksize === null) return 4 + 32 / blocksize;
  return 4 + 8 / blocksize + 32 / (blocksize * nestedBlocksize);
}
