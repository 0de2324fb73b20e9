// NF4 / FP4 linear weights in bitsandbytes' layout: packed codes of the flattened weight,
// a float32 absmax per block (or its double quantization), and the 16-value code table.
import { formatShape, keep, tensor, type DType, type Tensor } from '@blora/tensor';
import { blockCount, quantizeFourBit } from './blockwise.js';
import { codeTable, type FourBitType } from './codes.js';
import { DEFAULT_NESTED_BLOCKSIZE, doubleQuantize, fourBitBitsPerParameter } from './double-quant.js';
import { decodeTilesFit, decodingProduct } from './decode-tiles.js';
import {
  dequantizeBlockwise8, nf4DecodeTiles, nf4Dequantize, nf4Matmul, nf4MatmulT, nf4MatmulTiles, type DecodeTiles, type FourBitOpAttrs,
  type RepeatedAddend,
} from './ops.js';
import { packedLength } from './pack.js';
import { QuantizedLinear, readWeightValues } from './quantized-linear.js';
import { assertFourBitBlocksize, assertWeightShape } from './validate.js';

/** Options for NF4 / FP4 quantization. */
export interface FourBitOptions {
  /** 'nf4' (default) or 'fp4'. */
  format?: FourBitType;
  /** Elements per absmax block: a power of two from 32 to 4096 (default 64). */
  blocksize?: number;
  /** Quantize the absmax values to 8 bits as well (default true, as in QLoRA). */
  doubleQuant?: boolean;
  /** Absmax values per nested block when double quantizing (default 256). */
  nestedBlocksize?: number;
}

/** Double-quantized absmax of a 4-bit weight, as tensors. */
export interface DoubleQuantTensors {
  /** uint8 code of each absmax value [ceil(n / blocksize)]. */
  codes: Tensor;
  /** float32 absmax of each nested block [ceil(blocks / nestedBlocksize)]. */
  nestedAbsmax: Tensor;
  /** float32 [256] code book (bitsandbytes' signed dynamic map). */
  code: Tensor;
  /** float32 mean subtracted before quantizing. */
  offset: number;
  /** Absmax values per nested block. */
  nestedBlocksize: number;
}

/** Everything a 4-bit weight is made of (see `FourBitLinear`). */
export interface FourBitParts {
  format: FourBitType;
  outFeatures: number;
  inFeatures: number;
  blocksize: number;
  /** uint8 [ceil(n / 2)], two codes per byte, element 2j in the high nibble. */
  packed: Tensor;
  /** float32 absmax per block, or null when `doubleQuant` is given. */
  absmax: Tensor | null;
  doubleQuant: DoubleQuantTensors | null;
  /** float32 [16] code values (the format's table unless a checkpoint says otherwise). */
  table: Tensor;
  /** dtype of the weight before quantization (recorded in bitsandbytes checkpoints). */
  sourceDType: DType;
}

/** An NF4 or FP4 weight [out, in] with bitsandbytes' block-wise absmax quantization. */
export class FourBitLinear extends QuantizedLinear {
  readonly format: FourBitType;
  /** Elements per absmax block of the flattened weight. */
  readonly blocksize: number;
  /** Packed codes, uint8 [ceil(n / 2)]. */
  readonly packed: Tensor;
  /** float32 absmax per block; null when double quantized (see `doubleQuant`). */
  readonly absmax: Tensor | null;
  /** The double quantization of the absmax values, or null. */
  readonly doubleQuant: DoubleQuantTensors | null;
  /** float32 [16] code values. */
  readonly table: Tensor;
  /** dtype of the weight before quantization. */
  readonly sourceDType: DType;
  private restored: Tensor | null = null;
  private tiles: DecodeTiles | null = null;
  /**
   * Whether a product has read the tiles / the other tensors since they were made (so the kernel
   * that made them is long done, and later products may pass `settled`).
   */
  private tilesSettled = false;
  private partsSettled = false;
  /**
   * Decoding mode: when true, `matmul` of at most 16 activation rows in bfloat16 / float16 on a
   * GPU, needing no gradient, reads the weight from the decode tile layout (built on first use
   * and kept until `releaseCache`: a second copy of the codes and absmax, 4.5 bits a
   * parameter). Ignored for weights that cannot take it (`decodeTilesFit`). Off by default; for
   * generation.
   */
  useDecodeTiles = false;

  /** Assembles a weight from its parts, checking that they fit together. */
  constructor(parts: FourBitParts) {
    super(parts.outFeatures, parts.inFeatures);
    const where = `FourBitLinear(${parts.format})`;
    if (parts.format !== 'nf4' && parts.format !== 'fp4') throw new TypeError(`FourBitLinear: unknown format '${String(parts.format)}'`);
    assertWeightShape([parts.outFeatures, parts.inFeatures], where);
    assertFourBitBlocksize(parts.blocksize, where);
    const n = parts.outFeatures * parts.inFeatures;
    const blocks = blockCount(n, parts.blocksize);
    const expect = (name: string, t: Tensor, dtype: DType, numel: number): void => {
      if (t.dtype !== dtype || t.numel !== numel) {
        throw new RangeError(`${where}: ${name} must be ${dtype} with ${numel} elements for a weight ` +
          `${formatShape([parts.outFeatures, parts.inFeatures])} (blocksize ${parts.blocksize}), got ${t.describe()}`);
      }
    };
    expect('packed codes', parts.packed, 'uint8', packedLength(n));
    expect('code table', parts.table, 'float32', 16);
    if ((parts.absmax === null) === (parts.doubleQuant === null)) {
      throw new TypeError(`${where}: give exactly one of absmax and doubleQuant`);
    }
    if (parts.absmax) expect('absmax', parts.absmax, 'float32', blocks);
    const dq = parts.doubleQuant;
    if (dq) {
      if (!Number.isInteger(dq.nestedBlocksize) || dq.nestedBlocksize <= 0) {
        throw new RangeError(`${where}: nestedBlocksize must be a positive integer, got ${dq.nestedBlocksize}`);
      }
      if (!Number.isFinite(dq.offset)) throw new RangeError(`${where}: double-quantization offset must be finite, got ${dq.offset}`);
      expect('double-quantized absmax codes', dq.codes, 'uint8', blocks);
      expect('nested absmax', dq.nestedAbsmax, 'float32', blockCount(blocks, dq.nestedBlocksize));
      expect('nested code book', dq.code, 'float32', 256);
    }
    this.format = parts.format;
    this.blocksize = parts.blocksize;
    this.packed = parts.packed;
    this.absmax = parts.absmax;
    this.doubleQuant = dq;
    this.table = parts.table;
    this.sourceDType = parts.sourceDType;
  }

  /** Quantizes a float weight [out, in] (on any device; the work happens on the CPU). */
  static quantize(weight: Tensor, options: FourBitOptions = {}): FourBitLinear {
    const format = options.format ?? 'nf4';
    const where = `quantize ${format}`;
    if (format !== 'nf4' && format !== 'fp4') throw new TypeError(`${where}: unknown 4-bit format '${String(format)}'; expected 'nf4' or 'fp4'`);
    const blocksize = options.blocksize ?? 64;
    assertFourBitBlocksize(blocksize, where);
    const values = readWeightValues(weight, where);
    const [outFeatures, inFeatures] = weight.shape as [number, number];
    const { packed, absmax } = quantizeFourBit(values, format, blocksize);
    const device = weight.device;
    let doubleQuant: DoubleQuantTensors | null = null;
    if (options.doubleQuant ?? true) {
      const dq = doubleQuantize(absmax, options.nestedBlocksize ?? DEFAULT_NESTED_BLOCKSIZE);
      doubleQuant = {
        codes: tensor(dq.codes, { dtype: 'uint8', device }),
        nestedAbsmax: tensor(dq.nestedAbsmax, { dtype: 'float32', device }),
        code: tensor(dq.code, { dtype: 'float32', device }),
        offset: dq.offset,
        nestedBlocksize: dq.nestedBlocksize,
      };
    }
    return new FourBitLinear({
      format, outFeatures, inFeatures, blocksize, doubleQuant,
      packed: tensor(packed, { dtype: 'uint8', device }),
      absmax: doubleQuant ? null : tensor(absmax, { dtype: 'float32', device }),
      table: tensor(codeTable(format), { dtype: 'float32', device }),
      sourceDType: weight.dtype === 'float64' ? 'float32' : weight.dtype,
    });
  }

  /** The packed codes (same as `packed`). */
  get codes(): Tensor {
    return this.packed;
  }

  /** Attributes of the kernel ops for this weight. */
  get opAttrs(): FourBitOpAttrs {
    return { outFeatures: this.outFeatures, inFeatures: this.inFeatures, blocksize: this.blocksize };
  }

  /**
   * The float32 absmax per block used by the kernels: `absmax`, or the double quantization
   * restored once and cached (released by `releaseCache`). Owned by this weight.
   */
  absmaxTensor(): Tensor {
    if (this.absmax) return this.absmax;
    if (!this.restored || this.restored.isDisposed) {
      const dq = this.doubleQuant!;
      // Kept past the caller's tidy scope: the cache belongs to the weight, not to the forward pass.
      this.restored = keep(dequantizeBlockwise8(dq.codes, dq.nestedAbsmax, dq.code, { blocksize: dq.nestedBlocksize, offset: dq.offset }));
      this.partsSettled = false;
    }
    return this.restored;
  }

  /** Frees the restored absmax cache of a double-quantized weight and the decode tiles (rebuilt on next use). */
  releaseCache(): void {
    this.restored?.dispose();
    this.restored = null;
    this.tiles?.codes.dispose();
    this.tiles?.absmax.dispose();
    this.tiles = null;
  }

  /** The weight in the decode tile layout (`nf4DecodeTiles`), built once and owned by this weight. */
  decodeTiles(): DecodeTiles {
    if (!this.tiles || this.tiles.codes.isDisposed || this.tiles.absmax.isDisposed) {
      const tiles = nf4DecodeTiles(this.packed, this.absmaxTensor(), this.opAttrs);
      this.tiles = { codes: keep(tiles.codes), absmax: keep(tiles.absmax) };
      this.tilesSettled = false;
    }
    return this.tiles;
  }

  /** Whether `matmul(x)` reads the decode tiles (see `useDecodeTiles`). */
  private decodesWithTiles(x: Tensor): boolean {
    return this.useDecodeTiles && decodeTilesFit(this.opAttrs) && decodingProduct(x);
  }

  /** Per-block absmax as a new float32 tensor (restored from double quantization if needed). */
  scales(): Tensor {
    return copyOf(this.absmaxTensor());
  }

  /** NF4 and FP4 have no offsets. */
  offsets(): null {
    return null;
  }

  /** The dense weight [out, in]. */
  dequantize(dtype: DType = 'float32'): Tensor {
    return nf4Dequantize(this.packed, this.absmaxTensor(), this.table, this.opAttrs, dtype);
  }

  /**
   * y = x · Wᵀ through the 'nf4Matmul' op (a fused kernel where the device has one), or in
   * decoding mode through 'nf4MatmulTiles' (see `useDecodeTiles`). From the second product on its
   * tensors the product is `settled` (`SettledWeight`): this weight does not change them after they
   * are made, and neither may its user.
   */
  matmul(x: Tensor, addend?: RepeatedAddend): Tensor {
    // Once a product has read them, the weight's tensors are settled: nothing writes them again.
    if (this.decodesWithTiles(x)) {
      const tiles = this.decodeTiles();
      const y = nf4MatmulTiles(x, tiles, this.table, { ...this.opAttrs, settled: this.tilesSettled }, addend);
      this.tilesSettled ||= x.numel > 0;
      return y;
    }
    const absmax = this.absmaxTensor();
    const y = nf4Matmul(x, this.packed, absmax, this.table, { ...this.opAttrs, settled: this.partsSettled }, addend);
    this.partsSettled ||= x.numel > 0;
    return y;
  }

  /** dx = dy · W through the 'nf4MatmulT' op. */
  matmulTransposed(dy: Tensor, addend?: RepeatedAddend): Tensor {
    return nf4MatmulT(dy, this.packed, this.absmaxTensor(), this.table, this.opAttrs, addend);
  }

  /** Storage in bits per element: 4.5 at blocksize 64, 4.127 with double quantization at 64/256. */
  get bitsPerParameter(): number {
    return fourBitBitsPerParameter(this.blocksize, this.doubleQuant ? this.doubleQuant.nestedBlocksize : null);
  }

  /** The same weight on `device` (this object when already there; otherwise new tensors). */
  to(device: string): FourBitLinear {
    if (device === this.device) return this;
    const dq = this.doubleQuant;
    return new FourBitLinear({
      format: this.format, outFeatures: this.outFeatures, inFeatures: this.inFeatures, blocksize: this.blocksize,
      packed: this.packed.to(device),
      absmax: this.absmax ? this.absmax.to(device) : null,
      doubleQuant: dq ? { ...dq, codes: dq.codes.to(device), nestedAbsmax: dq.nestedAbsmax.to(device), code: dq.code.to(device) } : null,
      table: this.table.to(device),
      sourceDType: this.sourceDType,
    });
  }

  /** Releases the codes, statistics and cache. */
  dispose(): void {
    this.releaseCache();
    for (const t of [this.packed, this.absmax, this.table, this.doubleQuant?.codes, this.doubleQuant?.nestedAbsmax, this.doubleQuant?.code]) {
      t?.dispose();
    }
  }

  /** E.g. `nf4 [4096, 4096] blocksize 64, double-quantized (256) on cpu`. */
  describe(): string {
    const dq = this.doubleQuant ? `, double-quantized (${this.doubleQuant.nestedBlocksize})` : '';
    return `${this.format} ${formatShape(this.shape)} blocksize ${this.blocksize}${dq} on ${this.device}`;
  }
}

function copyOf(t: Tensor): Tensor {
  return tensor(t.toTypedArray(), { shape: t.shape, dtype: t.dtype, device: t.device });
}
