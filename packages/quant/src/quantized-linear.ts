// The common face of a quantized linear weight W [out, in]: codes plus per-block scale
// (and offset), with dequantize and two matmuls that never materialise W on the CPU.
import { formatShape, type DType, type Tensor } from '@blora/tensor';
import type { RepeatedAddend } from './ops.js';
import { assertFinite } from './validate.js';

/** Quantized weight formats. */
export type QuantFormat = 'nf4' | 'fp4' | 'int4' | 'int8';

/** Every format name, for validation messages. */
export const QUANT_FORMATS: readonly QuantFormat[] = ['nf4', 'fp4', 'int4', 'int8'];

/** A quantized [out, in] weight of a linear layer (y = x · Wᵀ). */
export abstract class QuantizedLinear {
  /** The format of the codes. */
  abstract readonly format: QuantFormat;

  constructor(
    /** Output features (rows of W). */
    readonly outFeatures: number,
    /** Input features (columns of W). */
    readonly inFeatures: number,
  ) {}

  /** [out, in]. */
  get shape(): [number, number] {
    return [this.outFeatures, this.inFeatures];
  }

  /** Number of weight elements. */
  get numel(): number {
    return this.outFeatures * this.inFeatures;
  }

  /** The uint8 tensor of codes (packed two per byte for 4-bit formats). */
  abstract get codes(): Tensor;

  /** Device holding the codes and block parameters. */
  get device(): string {
    return this.codes.device;
  }

  /** Per-block scales as a new float32 tensor (absmax for NF4/FP4, α for INT). The caller owns it. */
  abstract scales(): Tensor;

  /** Per-block offsets β as a new float32 tensor, or null for formats without an offset (NF4/FP4). */
  abstract offsets(): Tensor | null;

  /** The dense weight [out, in] (float32 values, encoded to `dtype`). */
  abstract dequantize(dtype?: DType): Tensor;

  /**
   * y = x · Wᵀ for x [..., in]; y [..., out] in x's dtype. With `addend`, `scale ·
   * repeatInterleave(values, lambda)` is added to the product before its rounding (in the
   * kernel's epilogue where the device fuses it).
   */
  abstract matmul(x: Tensor, addend?: RepeatedAddend): Tensor;

  /**
   * dx = dy · W for dy [..., out]; dx [..., in] in dy's dtype (the backward of `matmul` w.r.t.
   * x), plus `addend` as for `matmul`.
   */
  abstract matmulTransposed(dy: Tensor, addend?: RepeatedAddend): Tensor;

  /** The same weight on `device` (a new object; this one is unchanged). */
  abstract to(device: string): QuantizedLinear;

  /** Storage cost in bits per weight element (codes plus block statistics). */
  abstract get bitsPerParameter(): number;

  /** Releases every tensor this weight holds. */
  abstract dispose(): void;

  /** A one-line description, e.g. `nf4 [4096, 4096] blocksize 64 on cpu`. */
  abstract describe(): string;
}

/**
 * The values of a 2-D float weight as float32 numbers, checked: finite, and representable in
 * float32 (a float64 weight is rounded to float32 first, as bitsandbytes only takes 16/32-bit floats).
 */
export function readWeightValues(weight: Tensor, where: string): Float32Array {
  weight.assertAlive(where);
  if (weight.rank !== 2) throw new RangeError(`${where}: expected a weight of shape [out, in], got ${formatShape(weight.shape)}`);
  if (weight.shape[0] === 0 || weight.shape[1] === 0) {
    throw new RangeError(`${where}: cannot quantize an empty weight ${formatShape(weight.shape)}`);
  }
  if (!['float32', 'float64', 'float16', 'bfloat16'].includes(weight.dtype)) {
    throw new TypeError(`${where}: expected a float weight, got ${weight.describe()}`);
  }
  const raw = weight.toFloat64Array();
  assertFinite(raw, weight.shape, where);
  const values = Float32Array.from(raw);
  if (weight.dtype === 'float64') {
    for (let i = 0; i < values.length; i++) {
      if (!Number.isFinite(values[i]!)) {
        throw new RangeError(`${where}: value ${raw[i]} at flat index ${i} (row ${Math.floor(i / weight.shape[1]!)}, ` +
          `col ${i % weight.shape[1]!}) does not fit float32`);
      }
    }
  }
  return values;
}
