// Asymmetric integer block quantization of a weight W [out, in]: every block b holds
//   W ≈ α_b · q + β_b,   q ∈ {0 .. 2^bits - 1}
// with min-max parameters α_b = (max - min)/(2^bits - 1), β_b = min, and q rounded to nearest
// (ties to even) from the STORED α̂, β̂ (after rounding them to the scale dtype), then clamped.
// A block is a tile of `blockRows` output rows by `blockCols` input columns; 1-D groups along
// the input dimension are tiles with blockRows = 1. A constant block gets α = 0, q = 0.
//
// Layout: block (R, C) covers rows R·blockRows .. and columns C·blockCols ..; the scale and
// offset of block (R, C) sit at index R · (in / blockCols) + C (row-major [out/blockRows,
// in/blockCols]). Codes follow the weight's row-major element order (flat index r·in + c).
import { formatShape } from '@blora/tensor';
import { f32, roundHalfEven, roundToFloat16 } from './float.js';
import { assertPositiveInteger, assertWeightShape } from './validate.js';

/** Integer code widths. */
export type IntBits = 4 | 8;

/** Storage type of the scales α and offsets β. */
export type ScaleDType = 'float16' | 'float32';

/** Geometry of an integer-block weight. */
export interface IntBlockLayout {
  outFeatures: number;
  inFeatures: number;
  /** Output rows per block (1 for groups along the input dimension). */
  blockRows: number;
  /** Input columns per block. */
  blockCols: number;
}

/** Codes (one per element, unpacked) and per-block parameters, as float32 values. */
export interface IntBlocks {
  codes: Uint8Array;
  /** α per block, already rounded to the scale dtype. */
  scales: Float32Array;
  /** β per block, already rounded to the scale dtype. */
  offsets: Float32Array;
}

/** Number of blocks along the output and input dimension. */
export function blockGrid(layout: IntBlockLayout): [number, number] {
  return [layout.outFeatures / layout.blockRows, layout.inFeatures / layout.blockCols];
}

/** Throws a clear error unless the block tiles the weight exactly. */
export function assertIntLayout(layout: IntBlockLayout, where: string): void {
  const { outFeatures, inFeatures, blockRows, blockCols } = layout;
  assertWeightShape([outFeatures, inFeatures], where);
  assertPositiveInteger(blockRows, 'blockRows', where);
  assertPositiveInteger(blockCols, 'blockCols', where);
  if (outFeatures % blockRows !== 0 || inFeatures % blockCols !== 0) {
    throw new RangeError(`${where}: a weight ${formatShape([outFeatures, inFeatures])} cannot be split into blocks of ` +
      `${blockRows} x ${blockCols} (rows x cols): ` +
      (outFeatures % blockRows !== 0 ? `${outFeatures} rows are not divisible by ${blockRows}` : `${inFeatures} columns are not divisible by ${blockCols}`));
  }
}

/** Rounds a scale or offset to its storage dtype. */
export function roundToScaleDType(value: number, dtype: ScaleDType): number {
  return dtype === 'float16' ? roundToFloat16(value) : f32(value);
}

/** Dequantized value of code `q` with stored α and β: α·q + β rounded once to float32. */
export function intDequantValue(scale: number, q: number, offset: number): number {
  return f32(scale * q + offset);
}

/**
 * Quantizes the row-major float32 `values` of a weight (finite; check first).
 * Throws when a block's range does not fit the float16 scale dtype.
 */
export function quantizeIntBlocks(values: ArrayLike<number>, layout: IntBlockLayout, bits: IntBits, scaleDType: ScaleDType): IntBlocks {
  assertIntLayout(layout, 'quantizeIntBlocks');
  const { inFeatures, blockRows, blockCols } = layout;
  const [gridRows, gridCols] = blockGrid(layout);
  const qmax = 2 ** bits - 1;
  const codes = new Uint8Array(values.length);
  const scales = new Float32Array(gridRows * gridCols);
  const offsets = new Float32Array(gridRows * gridCols);
  for (let br = 0; br < gridRows; br++) {
    for (let bc = 0; bc < gridCols; bc++) {
      const rowStart = br * blockRows;
      const colStart = bc * blockCols;
      let min = Infinity;
      let max = -Infinity;
      for (let r = rowStart; r < rowStart + blockRows; r++) {
        for (let c = colStart, i = r * inFeatures + c; c < colStart + blockCols; c++, i++) {
          const v = values[i]!;
          if (v < min) min = v;
          if (v > max) max = v;
        }
      }
      const beta = roundToScaleDType(min, scaleDType);
      const alpha = roundToScaleDType((max - min) / qmax, scaleDType);
      if (!Number.isFinite(beta) || !Number.isFinite(alpha)) {
        throw new RangeError(`quantizeIntBlocks: block (${br}, ${bc}) spans [${min}, ${max}], which overflows ${scaleDType} ` +
          'scales; use float32 scales');
      }
      const b = br * gridCols + bc;
      scales[b] = alpha;
      offsets[b] = beta;
      if (alpha === 0) continue; // constant block (or a range below the dtype's resolution): q = 0
      for (let r = rowStart; r < rowStart + blockRows; r++) {
        for (let c = colStart, i = r * inFeatures + c; c < colStart + blockCols; c++, i++) {
          const q = roundHalfEven((values[i]! - beta) / alpha);
          codes[i] = q < 0 ? 0 : q > qmax ? qmax : q;
        }
      }
    }
  }
  return { codes, scales, offsets };
}

/**
 * Writes the dequantized rows `rowStart .. rowStart + rowCount` (row-major, `inFeatures` per
 * row) into `out`. `codes` holds one code per byte (8-bit) or two per byte (4-bit, packed).
 */
export function dequantizeIntRows(
  codes: Uint8Array,
  bits: IntBits,
  scales: ArrayLike<number>,
  offsets: ArrayLike<number>,
  layout: IntBlockLayout,
  rowStart: number,
  rowCount: number,
  out: Float32Array | Float64Array,
): void {
  const { inFeatures, blockRows, blockCols } = layout;
  const gridCols = inFeatures / blockCols;
  let o = 0;
  for (let r = rowStart; r < rowStart + rowCount; r++) {
    const blockRowBase = Math.floor(r / blockRows) * gridCols;
    let i = r * inFeatures;
    for (let bc = 0; bc < gridCols; bc++) {
      const scale = scales[blockRowBase + bc]!;
      const offset = offsets[blockRowBase + bc]!;
      if (bits === 8) {
        for (let k = 0; k < blockCols; k++, i++) out[o++] = f32(scale * codes[i]! + offset);
      } else {
        for (let k = 0; k < blockCols; k++, i++) {
          const byte = codes[i >> 1]!;
          out[o++] = f32(scale * (i & 1 ? byte & 15 : byte >> 4) + offset);
        }
      }
    }
  }
}
