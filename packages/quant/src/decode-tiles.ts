// The decode tile layout of a 4-bit weight (NF4 / FP4 with absmax, or INT4 with scale and offset):
// the same codes and block statistics, rearranged so that the cuda GEMV's every code load is one
// run of 512 contiguous bytes across a warp (about 20 % faster decoding than the bitsandbytes
// layout for NF4; docs/benchmarks.md). Only for weights with blocks of 64 columns (INT4: one row
// a block) and rows of a multiple of 256 columns.
//
// W [out, in] in sets of 16 rows (the last one padded with zero rows) and groups of 64 columns:
// - codes (uint8): for set s and group q, 512 bytes; at ((s · groups + q) · 32 + l) · 16 + 8 h + b,
//   with l = 4 g + t, byte b (0..7) of row 16 s + g + 8 h at columns 64 q + 16 t + 2 b, + 1 (high
//   nibble first, as packed);
// - absmax (float32): for set s and quad k of groups, 64 values; at (s · groups / 4 + k) · 64 +
//   8 g + 4 h + u, the absmax of row 16 s + g + 8 h in group 4 k + u. INT4 scales and offsets
//   are laid out the same way, each in its own tensor of the weight's scale dtype.
import type { Tensor } from '@blora/tensor';
import type { FourBitOpAttrs, IntOpAttrs } from './ops.js';

/** Rows of a set and columns of a group in the decode tile layout. */
export const DECODE_TILE_ROWS = 16;
export const DECODE_TILE_COLUMNS = 64;

/**
 * Whether a product of `x` is one the decode tiles serve: at most 16 rows of bfloat16 / float16
 * activations on a GPU, needing no gradient (a weight's decoding mode, `useDecodeTiles`).
 */
export function decodingProduct(x: Tensor): boolean {
  const rows = x.rank === 0 ? 0 : x.numel / x.shape[x.rank - 1]!;
  return x.device !== 'cpu' && (x.dtype === 'bfloat16' || x.dtype === 'float16') && rows <= DECODE_TILE_ROWS && !x.requiresGrad;
}

/** Whether a weight can take the decode tile layout (blocks of 64, inFeatures % 256 == 0). */
export function decodeTilesFit(attrs: Pick<FourBitOpAttrs, 'inFeatures' | 'blocksize'>): boolean {
  return attrs.blocksize === DECODE_TILE_COLUMNS && attrs.inFeatures > 0 && attrs.inFeatures % (4 * DECODE_TILE_COLUMNS) === 0;
}

/** Whether an integer-block weight can take the decode tile layout (4-bit, blocks of 1 x 64, inFeatures % 256 == 0). */
export function intDecodeTilesFit(bits: number, attrs: Pick<IntOpAttrs, 'inFeatures' | 'blockRows' | 'blockCols'>): boolean {
  return bits === 4 && attrs.blockRows === 1 && decodeTilesFit({ inFeatures: attrs.inFeatures, blocksize: attrs.blockCols });
}

/**
 * Elements of the layout's tensors for a weight [outFeatures, inFeatures]: `absmax` counts those
 * of the absmax (NF4 / FP4), and of the scales and of the offsets each (INT4).
 */
export function decodeTileSizes(outFeatures: number, inFeatures: number): { codes: number; absmax: number } {
  const units = Math.ceil(outFeatures / DECODE_TILE_ROWS) * (inFeatures / DECODE_TILE_COLUMNS);
  return { codes: units * 512, absmax: units * 16 };
}

/** Index in the layout's codes of the byte holding columns `col`, `col` + 1 (col even) of `row`. */
export function tileCodeIndex(row: number, col: number, groups: number): number {
  const set = row >> 4, g = row & 7, h = (row >> 3) & 1;
  const group = col >> 6, t = (col & 63) >> 4, b = (col & 15) >> 1;
  return ((set * groups + group) * 32 + 4 * g + t) * 16 + 8 * h + b;
}

/** Index in the layout's absmax of `row`'s block `group` (64 columns). */
export function tileAbsmaxIndex(row: number, group: number, groups: number): number {
  const set = row >> 4, g = row & 7, h = (row >> 3) & 1;
  return (set * (groups / 4) + (group >> 2)) * 64 + 8 * g + 4 * h + (group & 3);
}
