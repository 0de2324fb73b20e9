// INT4 / INT8 linear weights with a scale α and an offset β per block (W ≈ α·q + β).
// The offset is what lets QA-BLoRA merge its adapter into the quantized weight: a per-block
// constant added to β leaves the codes and scales untouched (`addToOffsets`, `addTileConstants`).
import { formatShape, keep, tensor, type DType, type Tensor } from '@blora/tensor';
import { decodingProduct, intDecodeTilesFit } from './decode-tiles.js';
import { hostFloats } from './host.js';
import {
  assertIntLayout, blockGrid, quantizeIntBlocks, roundToScaleDType,
  type IntBits, type IntBlockLayout, type ScaleDType,
} from './int-blocks.js';
import {
  int4DecodeTiles, int4MatmulTiles, intDequantize, intMatmul, intMatmulT, type IntDecodeTiles, type IntOpAttrs, type RepeatedAddend,
} from './ops.js';
import { packNibbles, packedLength } from './pack.js';
import { QuantizedLinear, readWeightValues } from './quantized-linear.js';

/** Options for INT4 / INT8 block quantization. Give `groupSize` or `blockRows` x `blockCols`. */
export interface IntOptions {
  /** 'int4' (default) or 'int8'. */
  format?: 'int4' | 'int8';
  /** 1-D groups of this many consecutive input columns (same as blockRows 1, blockCols groupSize). */
  groupSize?: number;
  /** Output rows per 2-D tile. */
  blockRows?: number;
  /** Input columns per 2-D tile. */
  blockCols?: number;
  /** Storage type of α and β (default 'float16'; 'float32' keeps merged offsets exact). */
  scaleDType?: ScaleDType;
}

/** Everything an integer-block weight is made of (see `IntBlockLinear`). */
export interface IntParts {
  format: 'int4' | 'int8';
  outFeatures: number;
  inFeatures: number;
  blockRows: number;
  blockCols: number;
  /** uint8 codes in row-major element order: two per byte (high nibble first) for int4. */
  codes: Tensor;
  /** α per block, float16 or float32 [out / blockRows, in / blockCols]. */
  scales: Tensor;
  /** β per block, same dtype and shape as `scales`. */
  offsets: Tensor;
}

/** Resolves `groupSize` / `blockRows` x `blockCols` options into a block shape. */
export function resolveBlockShape(options: IntOptions, where: string): [number, number] {
  const { groupSize, blockRows, blockCols } = options;
  if (groupSize !== undefined) {
    if (blockRows !== undefined || blockCols !== undefined) {
      throw new TypeError(`${where}: give either groupSize or blockRows/blockCols, not both`);
    }
    return [1, groupSize];
  }
  if (blockRows === undefined && blockCols === undefined) return [1, 32];
  if (blockRows === undefined || blockCols === undefined) throw new TypeError(`${where}: give both blockRows and blockCols`);
  return [blockRows, blockCols];
}

/** An INT4 or INT8 weight [out, in] quantized per block as α·q + β. */
export class IntBlockLinear extends QuantizedLinear {
  readonly format: 'int4' | 'int8';
  /** Code width. */
  readonly bits: IntBits;
  /** Output rows per block. */
  readonly blockRows: number;
  /** Input columns per block. */
  readonly blockCols: number;
  private codeTensor: Tensor;
  private alpha: Tensor;
  private beta: Tensor;
  /** Whether a product has read the tensors / the tiles since they were made (later products pass `settled`). */
  private settled = false;
  private tiles: IntDecodeTiles | null = null;
  private tilesSettled = false;
  /**
   * Decoding mode, as FourBitLinear's: when true, `matmul` of at most 16 rows in bfloat16 /
   * float16 on a GPU, needing no gradient, reads the weight from the decode tile layout (built on
   * first use and kept until `releaseCache` or `addToOffsets`: a second copy of the codes,
   * scales and offsets). Ignored for weights that cannot take it (`intDecodeTilesFit`: INT4 in
   * blocks of 1 x 64, inFeatures % 256 == 0). Off by default; for generation.
   */
  useDecodeTiles = false;

  /** Assembles a weight from its parts, checking that they fit together. */
  constructor(parts: IntParts) {
    super(parts.outFeatures, parts.inFeatures);
    const where = `IntBlockLinear(${String(parts.format)})`;
    if (parts.format !== 'int4' && parts.format !== 'int8') throw new TypeError(`IntBlockLinear: unknown format '${String(parts.format)}'`);
    const layout: IntBlockLayout = { outFeatures: parts.outFeatures, inFeatures: parts.inFeatures, blockRows: parts.blockRows, blockCols: parts.blockCols };
    assertIntLayout(layout, where);
    this.format = parts.format;
    this.bits = parts.format === 'int4' ? 4 : 8;
    this.blockRows = parts.blockRows;
    this.blockCols = parts.blockCols;
    const n = parts.outFeatures * parts.inFeatures;
    const codeBytes = this.bits === 4 ? packedLength(n) : n;
    if (parts.codes.dtype !== 'uint8' || parts.codes.numel !== codeBytes) {
      throw new RangeError(`${where}: codes must be uint8 with ${codeBytes} elements for a weight ` +
        `${formatShape(this.shape)}, got ${parts.codes.describe()}`);
    }
    const [gridRows, gridCols] = blockGrid(layout);
    for (const [name, t] of [['scales', parts.scales], ['offsets', parts.offsets]] as const) {
      if ((t.dtype !== 'float16' && t.dtype !== 'float32') || t.numel !== gridRows * gridCols) {
        throw new RangeError(`${where}: ${name} must be float16 or float32 with ${gridRows * gridCols} elements ` +
          `([${gridRows}, ${gridCols}] blocks of ${parts.blockRows} x ${parts.blockCols}), got ${t.describe()}`);
      }
    }
    if (parts.scales.dtype !== parts.offsets.dtype) {
      throw new TypeError(`${where}: scales and offsets must share a dtype, got ${parts.scales.describe()} and ${parts.offsets.describe()}`);
    }
    this.codeTensor = parts.codes;
    this.alpha = parts.scales;
    this.beta = parts.offsets;
  }

  /** Quantizes a float weight [out, in] with min-max parameters per block (work on the CPU). */
  static quantize(weight: Tensor, options: IntOptions = {}): IntBlockLinear {
    const format = options.format ?? 'int4';
    const where = `quantize ${format}`;
    if (format !== 'int4' && format !== 'int8') throw new TypeError(`${where}: unknown integer format '${String(format)}'; expected 'int4' or 'int8'`);
    const scaleDType = options.scaleDType ?? 'float16';
    if (scaleDType !== 'float16' && scaleDType !== 'float32') {
      throw new TypeError(`${where}: scaleDType must be 'float16' or 'float32', got '${String(scaleDType)}'`);
    }
    const [blockRows, blockCols] = resolveBlockShape(options, where);
    if (weight.rank !== 2) throw new RangeError(`${where}: expected a weight of shape [out, in], got ${formatShape(weight.shape)}`);
    const [outFeatures, inFeatures] = weight.shape as [number, number];
    const layout: IntBlockLayout = { outFeatures, inFeatures, blockRows, blockCols };
    assertIntLayout(layout, where);
    const values = readWeightValues(weight, where);
    const bits: IntBits = format === 'int4' ? 4 : 8;
    const q = quantizeIntBlocks(values, layout, bits, scaleDType);
    const [gridRows, gridCols] = blockGrid(layout);
    const device = weight.device;
    return new IntBlockLinear({
      format, outFeatures, inFeatures, blockRows, blockCols,
      codes: tensor(bits === 4 ? packNibbles(q.codes) : q.codes, { dtype: 'uint8', device }),
      scales: tensor(q.scales, { shape: [gridRows, gridCols], dtype: scaleDType, device }),
      offsets: tensor(q.offsets, { shape: [gridRows, gridCols], dtype: scaleDType, device }),
    });
  }

  /** The uint8 codes (packed two per byte for int4). */
  get codes(): Tensor {
    return this.codeTensor;
  }

  /** The stored α tensor [out/blockRows, in/blockCols] (float16 or float32). Owned by this weight. */
  get scaleTensor(): Tensor {
    return this.alpha;
  }

  /** The stored β tensor, same layout as `scaleTensor`. Owned by this weight; `addToOffsets` replaces it. */
  get offsetTensor(): Tensor {
    return this.beta;
  }

  /** Storage dtype of α and β. */
  get scaleDType(): ScaleDType {
    return this.alpha.dtype as ScaleDType;
  }

  /** Blocks along [out, in]. */
  get grid(): [number, number] {
    return blockGrid(this.layout);
  }

  /** Geometry of the blocks. */
  get layout(): IntBlockLayout {
    return { outFeatures: this.outFeatures, inFeatures: this.inFeatures, blockRows: this.blockRows, blockCols: this.blockCols };
  }

  /** Attributes of the kernel ops for this weight. */
  get opAttrs(): IntOpAttrs {
    return this.layout;
  }

  /** α per block as a new float32 tensor. */
  scales(): Tensor {
    return tensor(this.alpha.toFloat64Array(), { shape: this.alpha.shape, dtype: 'float32', device: this.device });
  }

  /** β per block as a new float32 tensor. */
  offsets(): Tensor {
    return tensor(this.beta.toFloat64Array(), { shape: this.beta.shape, dtype: 'float32', device: this.device });
  }

  /** The dense weight [out, in]. */
  dequantize(dtype: DType = 'float32'): Tensor {
    return intDequantize(this.bits, this.codeTensor, this.alpha, this.beta, this.opAttrs, dtype);
  }

  /**
   * y = x · Wᵀ through the 'int4Matmul' / 'int8Matmul' op; from the second product on the same
   * tensors `settled` (`SettledWeight`: this weight changes them only through `addToOffsets`, and
   * its user may not).
   */
  matmul(x: Tensor, addend?: RepeatedAddend): Tensor {
    if (this.useDecodeTiles && intDecodeTilesFit(this.bits, this.opAttrs) && decodingProduct(x)) {
      const tiles = this.decodeTiles();
      const viaTiles = int4MatmulTiles(x, tiles, { ...this.opAttrs, settled: this.tilesSettled }, addend);
      this.tilesSettled ||= x.numel > 0;
      return viaTiles;
    }
    const y = intMatmul(this.bits, x, this.codeTensor, this.alpha, this.beta, { ...this.opAttrs, settled: this.settled }, addend);
    this.settled ||= x.numel > 0;
    return y;
  }

  /** The weight in the decode tile layout (`int4DecodeTiles`), built once and owned by this weight. */
  decodeTiles(): IntDecodeTiles {
    if (!this.tiles || [this.tiles.codes, this.tiles.scales, this.tiles.offsets].some((t) => t.isDisposed)) {
      const tiles = int4DecodeTiles(this.codeTensor, this.alpha, this.beta, this.opAttrs);
      this.tiles = { codes: keep(tiles.codes), scales: keep(tiles.scales), offsets: keep(tiles.offsets) };
      this.tilesSettled = false;
    }
    return this.tiles;
  }

  /** Frees the decode tiles (rebuilt on next use). */
  releaseCache(): void {
    for (const t of this.tiles ? [this.tiles.codes, this.tiles.scales, this.tiles.offsets] : []) t.dispose();
    this.tiles = null;
  }

  /** dx = dy · W through the 'int4MatmulT' / 'int8MatmulT' op. */
  matmulTransposed(dy: Tensor, addend?: RepeatedAddend): Tensor {
    return intMatmulT(this.bits, dy, this.codeTensor, this.alpha, this.beta, this.opAttrs, addend);
  }

  /**
   * Adds a constant to each block's offset: β_b ← β_b + delta_b (rounded to the scale dtype),
   * codes and scales untouched, so the dequantized block moves by exactly that constant (up to
   * the offset's rounding with float16 offsets). `delta` has one value per block, row-major
   * [out/blockRows, in/blockCols] (a tensor of that shape or numel, or an array).
   * The offsets tensor is replaced by a new one (the old one is disposed). Returns this.
   */
  addToOffsets(delta: Tensor | ArrayLike<number>): this {
    const where = 'addToOffsets';
    const [gridRows, gridCols] = this.grid;
    const values = (delta as Tensor).isTensor ? hostFloats(delta as Tensor) : Float64Array.from(delta as ArrayLike<number>);
    if (values.length !== gridRows * gridCols) {
      throw new RangeError(`${where}: expected one value per block, ${gridRows * gridCols} ([${gridRows}, ${gridCols}] blocks of ` +
        `${this.blockRows} x ${this.blockCols}), got ${values.length}`);
    }
    const beta = this.beta.toFloat64Array();
    const dtype = this.scaleDType;
    for (let b = 0; b < beta.length; b++) {
      const d = values[b]!;
      const sum = roundToScaleDType(beta[b]! + d, dtype);
      if (!Number.isFinite(sum)) {
        throw new RangeError(`${where}: block ${b} (row ${Math.floor(b / gridCols)}, col ${b % gridCols}): offset ${beta[b]} + ${d} ` +
          `is not a finite ${dtype}`);
      }
      beta[b] = sum;
    }
    const next = tensor(beta, { shape: this.beta.shape, dtype, device: this.device });
    this.beta.dispose();
    this.beta = next;
    this.settled = false;
    this.releaseCache();  // the tiles hold the old offsets
    return this;
  }

  /**
   * Adds a constant per tile of `tileRows` x `tileCols` (a QA-BLoRA merge: ΔW is constant on
   * each λ2 x λ1 tile). `values` is row-major [out/tileRows, in/tileCols]. Every block must lie
   * inside one tile: blockRows must divide tileRows and blockCols must divide tileCols.
   */
  addTileConstants(values: Tensor | ArrayLike<number>, tileRows: number, tileCols: number): this {
    const where = 'addTileConstants';
    for (const [name, v] of [['tileRows', tileRows], ['tileCols', tileCols]] as const) {
      if (!Number.isInteger(v) || v <= 0) throw new RangeError(`${where}: ${name} must be a positive integer, got ${v}`);
    }
    if (this.outFeatures % tileRows !== 0 || this.inFeatures % tileCols !== 0) {
      throw new RangeError(`${where}: tiles of ${tileRows} x ${tileCols} do not tile the weight ${formatShape(this.shape)}`);
    }
    if (tileRows % this.blockRows !== 0 || tileCols % this.blockCols !== 0) {
      throw new RangeError(`${where}: blocks of ${this.blockRows} x ${this.blockCols} do not lie inside tiles of ` +
        `${tileRows} x ${tileCols} (block rows must divide tile rows and block columns must divide tile columns)`);
    }
    const tiles = (values as Tensor).isTensor ? hostFloats(values as Tensor) : Float64Array.from(values as ArrayLike<number>);
    const tileGridCols = this.inFeatures / tileCols;
    const expected = (this.outFeatures / tileRows) * tileGridCols;
    if (tiles.length !== expected) {
      throw new RangeError(`${where}: expected ${expected} tile values ([${this.outFeatures / tileRows}, ${tileGridCols}]), got ${tiles.length}`);
    }
    const [gridRows, gridCols] = this.grid;
    const perBlock = new Float64Array(gridRows * gridCols);
    const rowsPerTile = tileRows / this.blockRows;
    const colsPerTile = tileCols / this.blockCols;
    for (let br = 0; br < gridRows; br++) {
      for (let bc = 0; bc < gridCols; bc++) {
        perBlock[br * gridCols + bc] = tiles[Math.floor(br / rowsPerTile) * tileGridCols + Math.floor(bc / colsPerTile)]!;
      }
    }
    return this.addToOffsets(perBlock);
  }

  /** Storage in bits per element: code bits + two parameters per block (5 for int4 / 32 / float16). */
  get bitsPerParameter(): number {
    const paramBits = this.scaleDType === 'float16' ? 16 : 32;
    return this.bits + (2 * paramBits) / (this.blockRows * this.blockCols);
  }

  /** The same weight on `device` (this object when already there; otherwise new tensors). */
  to(device: string): IntBlockLinear {
    if (device === this.device) return this;
    return new IntBlockLinear({
      format: this.format, outFeatures: this.outFeatures, inFeatures: this.inFeatures,
      blockRows: this.blockRows, blockCols: this.blockCols,
      codes: this.codeTensor.to(device), scales: this.alpha.to(device), offsets: this.beta.to(device),
    });
  }

  /** Releases codes, scales, offsets and the decode tiles. */
  dispose(): void {
    this.releaseCache();
    this.codeTensor.dispose();
    this.alpha.dispose();
    this.beta.dispose();
  }

  /** E.g. `int4 [4096, 4096] blocks 1x32, float16 scales on cpu`. */
  describe(): string {
    return `${this.format} ${formatShape(this.shape)} blocks ${this.blockRows}x${this.blockCols}, ${this.scaleDType} scales on ${this.device}`;
  }
}
