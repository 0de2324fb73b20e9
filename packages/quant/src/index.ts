/**
 * @blora/quant: 4-bit and 8-bit quantized linear weights.
 *
 * - NF4 / FP4 exactly as bitsandbytes computes them (codes, rounding, packing, double
 *   quantization, checkpoint layout), so QLoRA checkpoints load here and ours load there.
 * - INT4 / INT8 blocks with a scale and an offset (W ≈ α·q + β) over 1-D groups or 2-D tiles,
 *   whose offsets absorb QA-BLoRA's per-tile update exactly.
 * - Matmuls that work block by block on the CPU and dispatch to device kernels by op name.
 *
 * @packageDocumentation
 */
import './kernels-cpu.js';

export { NF4_CODE, FP4_CODE, NF4_THRESHOLDS, FP4_THRESHOLDS, nf4CodeOf, fp4CodeOf, codeTable, type FourBitType } from './codes.js';
export { createDynamicMap, dynamicMap, dynamicCodeOf } from './dynamic-map.js';
export { packNibbles, unpackNibbles, nibbleAt, packedLength } from './pack.js';
export { quantizeFourBit, dequantizeFourBit, dequantizeFourBitRange, blockCount, type FourBitBlocks } from './blockwise.js';
export {
  doubleQuantize, restoreAbsmax, restoreBlockwise8, fourBitBitsPerParameter, DEFAULT_NESTED_BLOCKSIZE, type DoubleQuantized,
} from './double-quant.js';
export {
  quantizeIntBlocks, dequantizeIntRows, assertIntLayout, blockGrid, roundToScaleDType, intDequantValue,
  type IntBits, type IntBlockLayout, type IntBlocks, type ScaleDType,
} from './int-blocks.js';
export {
  QUANT_OPS, nf4Matmul, nf4MatmulT, nf4Dequantize, nf4DecodeTiles, nf4MatmulTiles, intMatmul, intMatmulT, intDequantize,
  int4DecodeTiles, int4MatmulTiles, dequantizeBlockwise8, type DecodeTiles, type FourBitOpAttrs, type IntDecodeTiles, type IntOpAttrs,
  type RepeatedAddend, type SettledWeight,
} from './ops.js';
export {
  DECODE_TILE_COLUMNS, DECODE_TILE_ROWS, decodeTileSizes, decodeTilesFit, decodingProduct, intDecodeTilesFit, tileAbsmaxIndex,
  tileCodeIndex,
} from './decode-tiles.js';
export { SCRATCH_ELEMENTS } from './kernels-cpu.js';
export { denseLowRankAddend } from './low-rank-addend.js';
export { QuantizedLinear, QUANT_FORMATS, readWeightValues, type QuantFormat } from './quantized-linear.js';
export { FourBitLinear, type FourBitOptions, type FourBitParts, type DoubleQuantTensors } from './four-bit-linear.js';
export { IntBlockLinear, resolveBlockShape, type IntOptions, type IntParts } from './int-linear.js';
export { quantizeLinear, type QuantizeOptions } from './quantize.js';
export { errorStats, quantizationError, compareFormats, type QuantErrorStats, type FormatComparison } from './stats.js';
export { roundHalfEven, roundToFloat16 } from './float.js';
export {
  fourBitTensors, intBlockTensors, quantizedTensors, serializeQuantized, saveQuantized, loadQuantized, readFourBit, readIntBlock,
  quantizedFormatOf, pythonFloatRepr, type StoredQuantized, type QuantizedCheckpoint, type ReadQuantizedOptions,
} from './serialize.js';
