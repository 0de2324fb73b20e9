// Block-wise absmax 4-bit quantization (NF4 / FP4) of a flat array of float32 values,
// arithmetic identical to bitsandbytes' kernel:
//   absmax_b = max |x| over the block (float32)
//   code     = pick(x * (1/absmax_b)), reciprocal and product each rounded to float32
//   value    = table[code] * absmax_b (float32 product)
// Blocks are `blocksize` consecutive elements of the flattened weight; the last block may be
// shorter when the element count is not a multiple of the block size (as in bitsandbytes).
import { codePicker, codeTable, type FourBitType } from './codes.js';
import { f32 } from './float.js';
import { packedLength } from './pack.js';

/** Packed codes and per-block absmax of a 4-bit quantized array. */
export interface FourBitBlocks {
  /** Two codes per byte, element 2j in the high nibble; `ceil(n / 2)` bytes. */
  packed: Uint8Array;
  /** float32 absmax of each block; `ceil(n / blocksize)` values. */
  absmax: Float32Array;
}

/** Number of blocks covering `count` elements. */
export function blockCount(count: number, blocksize: number): number {
  return Math.ceil(count / blocksize);
}

/**
 * Quantizes float32 `values` (finite; check first) block-wise to 4-bit codes.
 * Values must already be float32 numbers (e.g. read from a float32/float16/bfloat16 tensor).
 */
export function quantizeFourBit(values: ArrayLike<number>, type: FourBitType, blocksize: number): FourBitBlocks {
  const pick = codePicker(type);
  const n = values.length;
  const packed = new Uint8Array(packedLength(n));
  const absmax = new Float32Array(blockCount(n, blocksize));
  for (let b = 0, start = 0; start < n; b++, start += blocksize) {
    const end = Math.min(start + blocksize, n);
    let max = 0;
    for (let i = start; i < end; i++) max = Math.max(max, Math.abs(values[i]!));
    absmax[b] = max;
    const inverse = f32(1 / max); // Infinity for an all-zero block, like the float32 kernel
    for (let i = start; i < end; i++) {
      const code = pick(f32(values[i]! * inverse));
      // Blocks have even sizes, so a byte never spans two blocks.
      packed[i >> 1]! |= i & 1 ? code : code << 4;
    }
  }
  return { packed, absmax };
}

/**
 * Writes the dequantized values of elements `start .. start + count` into `out[0 .. count)`
 * (float32 values: table[code] * absmax, one float32 rounding).
 */
export function dequantizeFourBitRange(
  packed: Uint8Array,
  absmax: ArrayLike<number>,
  table: ArrayLike<number>,
  blocksize: number,
  start: number,
  count: number,
  out: Float32Array | Float64Array,
): void {
  let i = start;
  const end = start + count;
  while (i < end) {
    const block = Math.floor(i / blocksize);
    const scale = absmax[block]!;
    const blockEnd = Math.min((block + 1) * blocksize, end);
    for (; i < blockEnd; i++) {
      const byte = packed[i >> 1]!;
      out[i - start] = f32(table[i & 1 ? byte & 15 : byte >> 4]! * scale);
    }
  }
}

/** Dequantizes all `count` elements to float32. */
export function dequantizeFourBit(
  packed: Uint8Array,
  absmax: ArrayLike<number>,
  type: FourBitType | ArrayLike<number>,
  blocksize: number,
  count: number,
): Float32Array {
  const table = typeof type === 'string' ? codeTable(type) : type;
  const out = new Float32Array(count);
  dequantizeFourBitRange(packed, absmax, table, blocksize, 0, count, out);
  return out;
}
