// Kernel ops of quantized weights: front ends that validate, then run through the tensor
// registry (`execute`), so a device that registers the same op names (e.g. 'cuda') runs its
// own fused kernels. The CPU kernels are in kernels-cpu.ts.
//
// Contract (shared with device packages). W is the [out, in] weight, n = out · in, element
// (r, c) has flat index i = r · in + c.
//
// 'nf4Matmul'   inputs [x float [..., in], packed uint8 [ceil(n/2)], absmax float32 [ceil(n/blocksize)],
//               table float32 [16]]; attrs {outFeatures, inFeatures, blocksize}; output [..., out]
//               in x's dtype: y = x · Wᵀ with W[i] = table[code_i] · absmax[floor(i / blocksize)]
//               (float32 product), code_i = high nibble of packed[i >> 1] for even i, low nibble
//               for odd i. Serves NF4 and FP4 alike (the table says which).
// 'nf4MatmulT'  inputs [dy float [..., out], packed, absmax, table]; same attrs; output [..., in]:
//               dx = dy · W. This is the backward of 'nf4Matmul' with respect to x.
// 'nf4Dequantize' inputs [packed, absmax, table]; same attrs; output [out, in] (float dtype).
// 'nf4DecodeTiles' inputs [packed, absmax]; same attrs (blocksize 64, inFeatures % 256 == 0);
//               outputs [codes uint8, absmax float32]: the weight in the decode tile layout
//               (decode-tiles.ts), rows past the weight zero.
// 'nf4MatmulTiles' inputs [x float [..., in], codes, absmax (of nf4DecodeTiles), table]; attrs
//               {outFeatures, inFeatures, settled?}; output [..., out]: nf4Matmul of the same
//               weight, read from the decode tile layout (for decoding: the cuda kernel takes
//               bfloat16 / float16 x only; settled: see nf4MatmulTiles). No gradient.
// 'int4DecodeTiles' inputs [codes, scales, offsets]; int attrs (blocks of 1 x 64, inFeatures %
//               256 == 0); outputs [codes uint8, scales, offsets (the scale dtype)]: the INT4
//               weight in the decode tile layout. 'int4MatmulTiles' inputs [x, those three];
//               attrs {outFeatures, inFeatures, settled?}; output [..., out]: int4Matmul of the
//               same weight (the cuda kernel takes bfloat16 / float16 x only). No gradient.
// 'int4Matmul' / 'int8Matmul'  inputs [x float [..., in], codes uint8, scales, offsets]; attrs
//               {outFeatures, inFeatures, blockRows, blockCols}; output [..., out]. codes: int4
//               packed like NF4 (ceil(n/2) bytes), int8 one byte per element (n bytes); scales
//               and offsets float16 or float32 [out/blockRows, in/blockCols];
//               W[r, c] = α·q + β of block (floor(r/blockRows), floor(c/blockCols)), computed in
//               float32 (one rounding of α·q + β).
// 'int4MatmulT' / 'int8MatmulT'  inputs [dy [..., out], codes, scales, offsets]; output [..., in]:
//               dx = dy · W, the backward of the matching matmul with respect to x.
// 'int4Dequantize' / 'int8Dequantize'  inputs [codes, scales, offsets]; output [out, in].
// 'dequantizeBlockwise8'  inputs [codes uint8 [m], absmax float32 [ceil(m/blocksize)], code float32
//               [256]]; attrs {blocksize, offset}; output float32 [m]: code[q]·absmax + offset
//               (float32 product, then float32 sum): restores double-quantized absmax values.
// Each *Matmul / *MatmulT op takes an optional fifth input, an addend [..., n / addLambda] of
// float32 or float64 (n the output's last dim), with attrs {addLambda, addScale}: the output is
// then product + addScale · repeatInterleave(addend, addLambda) along the last dim, the scaled
// addend computed in its dtype and added to the product before the one rounding to the output
// dtype. It carries an adapter's update (or its input gradient) into the product's epilogue.
// With a sixth input, a factor [n / addLambda, r] of the addend's dtype, and attr addRank = r,
// the addend [..., r] is low-rank: the added term is addScale · repeatInterleave(addend ·
// factorᵀ, addLambda), the r-long dot products computed in the addend's dtype or better (a LoRA
// update B · (A x) whose last product rides into a decoding GEMV's epilogue).
// All CPU kernels accumulate in float64 and accept strided / broadcast x.
import {
  commonDevice, execute, execute1, findKernel, formatShape, isFloatDType, type DType, type OutputSpec, type Tensor,
} from '@blora/tensor';
import { blockCount } from './blockwise.js';
import { decodeTileSizes, decodeTilesFit, intDecodeTilesFit } from './decode-tiles.js';
import type { IntBits } from './int-blocks.js';
import { packedLength } from './pack.js';

/** Op names registered by this package (and by device packages that accelerate it). */
export const QUANT_OPS = {
  nf4Matmul: 'nf4Matmul',
  nf4MatmulT: 'nf4MatmulT',
  nf4Dequantize: 'nf4Dequantize',
  nf4DecodeTiles: 'nf4DecodeTiles',
  nf4MatmulTiles: 'nf4MatmulTiles',
  int4DecodeTiles: 'int4DecodeTiles',
  int4MatmulTiles: 'int4MatmulTiles',
  int4Matmul: 'int4Matmul',
  int4MatmulT: 'int4MatmulT',
  int4Dequantize: 'int4Dequantize',
  int8Matmul: 'int8Matmul',
  int8MatmulT: 'int8MatmulT',
  int8Dequantize: 'int8Dequantize',
  dequantizeBlockwise8: 'dequantizeBlockwise8',
} as const;

/** Attributes of the 4-bit absmax ops. */
export interface FourBitOpAttrs {
  outFeatures: number;
  inFeatures: number;
  blocksize: number;
}

/** Attributes of the integer-block ops. */
export interface IntOpAttrs {
  outFeatures: number;
  inFeatures: number;
  blockRows: number;
  blockCols: number;
}

/**
 * A product's promise about its weight (nf4Matmul, intMatmul, nf4MatmulTiles, int4MatmulTiles):
 * `settled` says that the weight's tensors (codes, scales, offsets, code table) are not written by
 * the operation just before this one, so that on a GPU the product may start reading them while
 * that operation finishes (back-to-back products overlap). Leave it off for a product right after
 * the weight was made or changed. Off by default.
 */
export interface SettledWeight {
  settled?: boolean;
}

function expectTensor(op: string, name: string, t: Tensor, dtypes: readonly DType[], numel: number): void {
  t.assertAlive(op);
  if (!dtypes.includes(t.dtype)) throw new TypeError(`${op}: ${name} must be ${dtypes.join(' or ')}, got ${t.describe()}`);
  if (t.numel !== numel) {
    throw new RangeError(`${op}: ${name} has ${t.numel} elements, expected ${numel} for this weight (${t.describe()})`);
  }
}

function checkDims(op: string, attrs: { outFeatures: number; inFeatures: number }): void {
  for (const key of ['outFeatures', 'inFeatures'] as const) {
    const v = attrs[key];
    if (!Number.isInteger(v) || v <= 0) throw new RangeError(`${op}: attrs.${key} must be a positive integer, got ${v}`);
  }
}

function checkFourBitInputs(op: string, packed: Tensor, absmax: Tensor, table: Tensor, attrs: FourBitOpAttrs): void {
  checkDims(op, attrs);
  const n = attrs.outFeatures * attrs.inFeatures;
  if (!Number.isInteger(attrs.blocksize) || attrs.blocksize <= 0) {
    throw new RangeError(`${op}: attrs.blocksize must be a positive integer, got ${attrs.blocksize}`);
  }
  expectTensor(op, 'packed codes', packed, ['uint8'], packedLength(n));
  expectTensor(op, 'absmax', absmax, ['float32'], blockCount(n, attrs.blocksize));
  expectTensor(op, 'code table', table, ['float32'], 16);
}

function checkIntInputs(op: string, bits: IntBits, codes: Tensor, scales: Tensor, offsets: Tensor, attrs: IntOpAttrs): void {
  checkDims(op, attrs);
  const { outFeatures, inFeatures, blockRows, blockCols } = attrs;
  if (!Number.isInteger(blockRows) || blockRows <= 0 || !Number.isInteger(blockCols) || blockCols <= 0 ||
    outFeatures % blockRows !== 0 || inFeatures % blockCols !== 0) {
    throw new RangeError(`${op}: blocks of ${blockRows} x ${blockCols} do not tile a weight [${outFeatures}, ${inFeatures}]`);
  }
  const n = outFeatures * inFeatures;
  const blocks = (outFeatures / blockRows) * (inFeatures / blockCols);
  expectTensor(op, 'codes', codes, ['uint8'], bits === 4 ? packedLength(n) : n);
  expectTensor(op, 'scales', scales, ['float16', 'float32'], blocks);
  expectTensor(op, 'offsets', offsets, ['float16', 'float32'], blocks);
  if (scales.dtype !== offsets.dtype) {
    throw new TypeError(`${op}: scales and offsets must share a dtype, got ${scales.describe()} and ${offsets.describe()}`);
  }
}

/**
 * A term added to a quantized product before its rounding: `scale · repeatInterleave(values,
 * lambda)` along the last dim. `values` is float32 or float64 `[..., n / lambda]`, with the
 * product's leading dims (n: the product's last dim).
 */
export interface RepeatedAddend {
  values: Tensor;
  /** Times each value is repeated (a positive integer dividing n). */
  lambda: number;
  /** Factor on the values (default 1). */
  scale?: number;
  /**
   * A low-rank addend: `factor` is `[n / lambda, r]` of the values' dtype, `values` is then
   * `[..., r]`, and the term is `scale · repeatInterleave(values · factorᵀ, lambda)` (a LoRA
   * update B · (A x): values = A x, factor = B). The decoding GEMV of a device computes the
   * products in its epilogue; elsewhere they are formed first.
   */
  factor?: Tensor;
}

/** The op's inputs and attrs with `addend` appended (checked against the output `shape`). */
function withAddend(op: string, inputs: Tensor[], attrs: object, shape: readonly number[], addend: RepeatedAddend | undefined):
[Tensor[], Record<string, unknown>] {
  if (addend === undefined) return [inputs, { ...attrs }];
  const { values, lambda } = addend;
  const scale = addend.scale ?? 1;
  values.assertAlive(op);
  if (values.dtype !== 'float32' && values.dtype !== 'float64') {
    throw new TypeError(`${op}: addend must be float32 or float64, got ${values.describe()}`);
  }
  if (!Number.isInteger(lambda) || lambda < 1) throw new RangeError(`${op}: addend lambda must be a positive integer, got ${String(lambda)}`);
  if (typeof scale !== 'number' || !Number.isFinite(scale)) throw new RangeError(`${op}: addend scale must be a finite number, got ${String(scale)}`);
  const n = shape[shape.length - 1]!;
  if (n % lambda !== 0) throw new RangeError(`${op}: addend lambda ${lambda} does not divide the output's last dim ${n}`);
  if (values.device !== inputs[0]!.device) {
    throw new Error(`${op}: addend ${values.describe()} is not on the device of ${inputs[0]!.describe()}`);
  }
  const { factor } = addend;
  if (factor !== undefined) {
    factor.assertAlive(op);
    const rank = values.shape[values.rank - 1];
    if (factor.dtype !== values.dtype || factor.rank !== 2 || factor.shape[0] !== n / lambda || factor.shape[1] !== rank) {
      throw new RangeError(`${op}: addend factor ${factor.describe()} must be ${values.dtype} ${formatShape([n / lambda, rank ?? 0])} ` +
        `(the output's last dim ${n} divided by lambda ${lambda}, by the addend's last dim)`);
    }
    if (factor.device !== values.device) throw new Error(`${op}: addend factor ${factor.describe()} is not on the device of ${values.describe()}`);
  }
  const expected = [...shape.slice(0, -1), factor ? factor.shape[1]! : n / lambda];
  if (values.rank !== expected.length || values.shape.some((d, i) => d !== expected[i])) {
    throw new RangeError(`${op}: addend ${values.describe()} must be ${formatShape(expected)} ` + (factor
      ? `(the output ${formatShape(shape)} with its last dim replaced by the factor's rank)`
      : `(the output ${formatShape(shape)} with its last dim divided by lambda ${lambda})`));
  }
  if (factor) return [[...inputs, values, factor], { ...attrs, addLambda: lambda, addScale: scale, addRank: factor.shape[1] }];
  return [[...inputs, values], { ...attrs, addLambda: lambda, addScale: scale }];
}

/** Checks the activation operand and returns the output shape with its last dim replaced. */
function activationShape(op: string, x: Tensor, name: string, expectedLast: number, outLast: number): number[] {
  x.assertAlive(op);
  if (!isFloatDType(x.dtype)) throw new TypeError(`${op}: ${name} must be a float tensor, got ${x.describe()}`);
  if (x.rank < 1 || x.shape[x.rank - 1] !== expectedLast) {
    throw new RangeError(`${op}: ${name} ${formatShape(x.shape)} must have last dimension ${expectedLast}`);
  }
  return [...x.shape.slice(0, -1), outLast];
}

/**
 * y = x · Wᵀ (+ the addend, see `RepeatedAddend`) for a 4-bit absmax weight (NF4 or FP4); with
 * `attrs.settled` see `SettledWeight`. Op 'nf4Matmul'.
 */
export function nf4Matmul(x: Tensor, packed: Tensor, absmax: Tensor, table: Tensor, attrs: FourBitOpAttrs & SettledWeight,
  addend?: RepeatedAddend): Tensor {
  const op = QUANT_OPS.nf4Matmul;
  checkFourBitInputs(op, packed, absmax, table, attrs);
  const shape = activationShape(op, x, 'x', attrs.inFeatures, attrs.outFeatures);
  const [inputs, opAttrs] = withAddend(op, [x, packed, absmax, table], attrs, shape, addend);
  return execute1(op, inputs, shape, x.dtype, opAttrs);
}

/** dx = dy · W (+ the addend) for a 4-bit absmax weight (backward of `nf4Matmul` w.r.t. x). Op 'nf4MatmulT'. */
export function nf4MatmulT(dy: Tensor, packed: Tensor, absmax: Tensor, table: Tensor, attrs: FourBitOpAttrs,
  addend?: RepeatedAddend): Tensor {
  const op = QUANT_OPS.nf4MatmulT;
  checkFourBitInputs(op, packed, absmax, table, attrs);
  const shape = activationShape(op, dy, 'dy', attrs.outFeatures, attrs.inFeatures);
  const [inputs, opAttrs] = withAddend(op, [dy, packed, absmax, table], attrs, shape, addend);
  return execute1(op, inputs, shape, dy.dtype, opAttrs);
}

/** The dense [out, in] weight of a 4-bit absmax format. Op 'nf4Dequantize'. */
export function nf4Dequantize(packed: Tensor, absmax: Tensor, table: Tensor, attrs: FourBitOpAttrs, dtype: DType = 'float32'): Tensor {
  const op = QUANT_OPS.nf4Dequantize;
  checkFourBitInputs(op, packed, absmax, table, attrs);
  return runWithHostFallback(op, [packed, absmax, table], [attrs.outFeatures, attrs.inFeatures], floatDType(op, dtype), { ...attrs });
}

/** A 4-bit absmax weight in the decode tile layout (`nf4DecodeTiles`); the caller owns both tensors. */
export interface DecodeTiles {
  /** uint8, the codes of 16 rows x 64 columns at a time. */
  codes: Tensor;
  /** float32, the absmax of 16 rows x 4 groups at a time. */
  absmax: Tensor;
}

/**
 * The weight in the decode tile layout (see decode-tiles.ts), for `nf4MatmulTiles`; needs blocks
 * of 64 and inFeatures % 256 == 0 (`decodeTilesFit`). Op 'nf4DecodeTiles'.
 */
export function nf4DecodeTiles(packed: Tensor, absmax: Tensor, attrs: FourBitOpAttrs): DecodeTiles {
  const op = QUANT_OPS.nf4DecodeTiles;
  checkDims(op, attrs);
  if (!decodeTilesFit(attrs)) {
    throw new RangeError(`${op}: the decode tile layout needs blocksize 64 and inFeatures a multiple of 256, ` +
      `got [${attrs.outFeatures}, ${attrs.inFeatures}] blocksize ${attrs.blocksize}`);
  }
  const n = attrs.outFeatures * attrs.inFeatures;
  expectTensor(op, 'packed codes', packed, ['uint8'], packedLength(n));
  expectTensor(op, 'absmax', absmax, ['float32'], blockCount(n, attrs.blocksize));
  const sizes = decodeTileSizes(attrs.outFeatures, attrs.inFeatures);
  const [codes, tileAbsmax] = runWithHostFallbackOutputs(op, [packed, absmax],
    [{ shape: [sizes.codes], dtype: 'uint8' }, { shape: [sizes.absmax], dtype: 'float32' }], { ...attrs });
  return { codes: codes!, absmax: tileAbsmax! };
}

/** Checks the dims and tile codes of a product from the decode tile layout; the layout's sizes. */
function checkTileCodes(op: string, codes: Tensor, attrs: Pick<FourBitOpAttrs, 'outFeatures' | 'inFeatures'>): { codes: number; absmax: number } {
  checkDims(op, attrs);
  if (!decodeTilesFit({ inFeatures: attrs.inFeatures, blocksize: 64 })) {
    throw new RangeError(`${op}: inFeatures must be a multiple of 256 for the decode tile layout, got ${attrs.inFeatures}`);
  }
  const sizes = decodeTileSizes(attrs.outFeatures, attrs.inFeatures);
  expectTensor(op, 'tile codes', codes, ['uint8'], sizes.codes);
  return sizes;
}

/**
 * y = x · Wᵀ (+ the addend, see `RepeatedAddend`) for a 4-bit absmax weight in the decode tile
 * layout: the same product as `nf4Matmul` (bit-identical on the CPU). Inference only (no
 * gradient); on cuda x must be bfloat16 or float16. Op 'nf4MatmulTiles'.
 *
 * `attrs.settled` (see `SettledWeight`): leave it off right after `nf4DecodeTiles` built the
 * tiles, or the product could read them before they are written.
 */
export function nf4MatmulTiles(x: Tensor, tiles: DecodeTiles, table: Tensor,
  attrs: Pick<FourBitOpAttrs, 'outFeatures' | 'inFeatures'> & SettledWeight, addend?: RepeatedAddend): Tensor {
  const op = QUANT_OPS.nf4MatmulTiles;
  const sizes = checkTileCodes(op, tiles.codes, attrs);
  expectTensor(op, 'tile absmax', tiles.absmax, ['float32'], sizes.absmax);
  expectTensor(op, 'code table', table, ['float32'], 16);
  const shape = activationShape(op, x, 'x', attrs.inFeatures, attrs.outFeatures);
  const opAttrs = { outFeatures: attrs.outFeatures, inFeatures: attrs.inFeatures, blocksize: 64, settled: attrs.settled === true };
  const [inputs, withAdd] = withAddend(op, [x, tiles.codes, tiles.absmax, table], opAttrs, shape, addend);
  return execute1(op, inputs, shape, x.dtype, withAdd);
}

/** An INT4 weight in the decode tile layout (see decode-tiles.ts), as `int4DecodeTiles` makes it. */
export interface IntDecodeTiles {
  /** uint8, the codes of 16 rows x 64 columns at a time. */
  codes: Tensor;
  /** The scales (float16 or float32, the weight's), 16 rows x 4 groups at a time. */
  scales: Tensor;
  /** The offsets, laid out as the scales. */
  offsets: Tensor;
}

/**
 * The INT4 weight in the decode tile layout (see decode-tiles.ts), for `int4MatmulTiles`; needs
 * blocks of 1 x 64 and inFeatures % 256 == 0 (`intDecodeTilesFit`). Op 'int4DecodeTiles'.
 */
export function int4DecodeTiles(codes: Tensor, scales: Tensor, offsets: Tensor, attrs: IntOpAttrs): IntDecodeTiles {
  const op = QUANT_OPS.int4DecodeTiles;
  checkIntInputs(op, 4, codes, scales, offsets, attrs);
  if (!intDecodeTilesFit(4, attrs)) {
    throw new RangeError(`${op}: the decode tile layout needs blocks of 1 x 64 and inFeatures a multiple of 256, ` +
      `got [${attrs.outFeatures}, ${attrs.inFeatures}] in blocks of ${attrs.blockRows} x ${attrs.blockCols}`);
  }
  const sizes = decodeTileSizes(attrs.outFeatures, attrs.inFeatures);
  const [tileCodes, tileScales, tileOffsets] = runWithHostFallbackOutputs(op, [codes, scales, offsets],
    [{ shape: [sizes.codes], dtype: 'uint8' }, { shape: [sizes.absmax], dtype: scales.dtype }, { shape: [sizes.absmax], dtype: scales.dtype }],
    { ...attrs });
  return { codes: tileCodes!, scales: tileScales!, offsets: tileOffsets! };
}

/**
 * y = x · Wᵀ (+ the addend, see `RepeatedAddend`) for an INT4 weight in the decode tile layout:
 * the same product as `intMatmul(4, ...)` (bit-identical on the CPU). Inference only (no
 * gradient). With `attrs.settled` see `SettledWeight` (leave it off right after
 * `int4DecodeTiles`). Op 'int4MatmulTiles'.
 */
export function int4MatmulTiles(x: Tensor, tiles: IntDecodeTiles, attrs: Pick<IntOpAttrs, 'outFeatures' | 'inFeatures'> & SettledWeight,
  addend?: RepeatedAddend): Tensor {
  const op = QUANT_OPS.int4MatmulTiles;
  const sizes = checkTileCodes(op, tiles.codes, attrs);
  expectTensor(op, 'tile scales', tiles.scales, ['float16', 'float32'], sizes.absmax);
  expectTensor(op, 'tile offsets', tiles.offsets, [tiles.scales.dtype], sizes.absmax);
  const shape = activationShape(op, x, 'x', attrs.inFeatures, attrs.outFeatures);
  const opAttrs = { outFeatures: attrs.outFeatures, inFeatures: attrs.inFeatures, blockRows: 1, blockCols: 64, settled: attrs.settled === true };
  const [inputs, withAdd] = withAddend(op, [x, tiles.codes, tiles.scales, tiles.offsets], opAttrs, shape, addend);
  return runWithHostFallback(op, inputs, shape, x.dtype, withAdd);
}

function intOp(bits: IntBits, kind: 'Matmul' | 'MatmulT' | 'Dequantize'): string {
  if (bits !== 4 && bits !== 8) throw new RangeError(`integer block ops: bits must be 4 or 8, got ${String(bits)}`);
  return `int${bits}${kind}`;
}

/**
 * y = x · Wᵀ (+ the addend, see `RepeatedAddend`) for an integer-block weight; with
 * `attrs.settled` see `SettledWeight`. Op 'int4Matmul' / 'int8Matmul'.
 */
export function intMatmul(bits: IntBits, x: Tensor, codes: Tensor, scales: Tensor, offsets: Tensor, attrs: IntOpAttrs & SettledWeight,
  addend?: RepeatedAddend): Tensor {
  const op = intOp(bits, 'Matmul');
  checkIntInputs(op, bits, codes, scales, offsets, attrs);
  const shape = activationShape(op, x, 'x', attrs.inFeatures, attrs.outFeatures);
  const [inputs, opAttrs] = withAddend(op, [x, codes, scales, offsets], attrs, shape, addend);
  return execute1(op, inputs, shape, x.dtype, opAttrs);
}

/** dx = dy · W (+ the addend) for an integer-block weight (backward of `intMatmul` w.r.t. x). Op 'int4MatmulT' / 'int8MatmulT'. */
export function intMatmulT(bits: IntBits, dy: Tensor, codes: Tensor, scales: Tensor, offsets: Tensor, attrs: IntOpAttrs,
  addend?: RepeatedAddend): Tensor {
  const op = intOp(bits, 'MatmulT');
  checkIntInputs(op, bits, codes, scales, offsets, attrs);
  const shape = activationShape(op, dy, 'dy', attrs.outFeatures, attrs.inFeatures);
  const [inputs, opAttrs] = withAddend(op, [dy, codes, scales, offsets], attrs, shape, addend);
  return execute1(op, inputs, shape, dy.dtype, opAttrs);
}

/** The dense [out, in] weight of an integer-block format. Op 'int4Dequantize' / 'int8Dequantize'. */
export function intDequantize(bits: IntBits, codes: Tensor, scales: Tensor, offsets: Tensor, attrs: IntOpAttrs, dtype: DType = 'float32'): Tensor {
  const op = intOp(bits, 'Dequantize');
  checkIntInputs(op, bits, codes, scales, offsets, attrs);
  return runWithHostFallback(op, [codes, scales, offsets], [attrs.outFeatures, attrs.inFeatures], floatDType(op, dtype), { ...attrs });
}

/** code[q_i] · absmax[i / blocksize] + offset, float32 (restores double-quantized absmax). Op 'dequantizeBlockwise8'. */
export function dequantizeBlockwise8(codes: Tensor, absmax: Tensor, code: Tensor, attrs: { blocksize: number; offset: number }): Tensor {
  const op = QUANT_OPS.dequantizeBlockwise8;
  if (!Number.isInteger(attrs.blocksize) || attrs.blocksize <= 0) {
    throw new RangeError(`${op}: attrs.blocksize must be a positive integer, got ${attrs.blocksize}`);
  }
  if (!Number.isFinite(attrs.offset)) throw new RangeError(`${op}: attrs.offset must be finite, got ${attrs.offset}`);
  expectTensor(op, 'codes', codes, ['uint8'], codes.numel);
  expectTensor(op, 'absmax', absmax, ['float32'], blockCount(codes.numel, attrs.blocksize));
  expectTensor(op, 'code', code, ['float32'], 256);
  return runWithHostFallback(op, [codes, absmax, code], [codes.numel], 'float32', { ...attrs });
}

function floatDType(op: string, dtype: DType): DType {
  if (!isFloatDType(dtype)) throw new TypeError(`${op}: output dtype must be a float type, got ${dtype}`);
  return dtype;
}

/**
 * Runs `op` where its inputs live; a device without that kernel gets the CPU result copied
 * over (these ops only read small or packed data, so the round trip is cheap).
 */
function runWithHostFallback(op: string, inputs: Tensor[], shape: number[], dtype: DType, attrs: Record<string, unknown>): Tensor {
  return runWithHostFallbackOutputs(op, inputs, [{ shape, dtype }], attrs)[0]!;
}

/** `runWithHostFallback` for an op with several outputs. */
function runWithHostFallbackOutputs(op: string, inputs: Tensor[], outputs: OutputSpec[], attrs: Record<string, unknown>): Tensor[] {
  const device = commonDevice(op, inputs);
  if (device === 'cpu' || findKernel(op, device)) return execute(op, inputs, outputs, attrs);
  const hostInputs = inputs.map((t) => t.to('cpu'));
  const hostOut = execute(op, hostInputs, outputs, attrs);
  const out = hostOut.map((t) => t.to(device));
  for (const t of [...hostOut, ...hostInputs]) t.dispose();
  return out;
}
