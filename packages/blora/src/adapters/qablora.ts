// QA-BLoRA: the quantization-aware variant. Input factor λ1 (avgPool), output factor λ2
// (repeatInterleave); the update is constant on λ2 x λ1 tiles, so when every quantization
// block of the INT4/INT8 base lies inside one tile the trained adapter merges exactly into the
// blocks' offsets β (codes and scales untouched). The paper's adapter is one zero-initialised
// matrix M (out/λ2) x (in/λ1); a factor pair B·A (rank r·λ1) is available as an option.
import { QuantizedBase } from '../layers/quantized-base.js';
import type { FrozenLinear } from '../layers/frozen-linear.js';
import { Adapter, type AdapterForm, type AdapterOptions } from './adapter.js';

/** The factors and form of a QA-BLoRA adapter. */
export interface QABLoraFactors {
  /** λ1: pooling factor of the input (default 4, as in the released LLaMA setup). */
  lambdaIn?: number;
  /** λ2: repeat factor of the output (default 8). */
  lambdaOut?: number;
  /** 'matrix' (default, the paper's single M) or 'factors' (B·A). */
  form?: AdapterForm;
}

/** Released defaults for LLaMA with quantization blocks of 32: λ1 = 4, λ2 = 8. */
export const QABLORA_DEFAULTS = { lambdaIn: 4, lambdaOut: 8, form: 'matrix' } as const;

/**
 * Throws unless a block of `blockRows` x `blockCols` lies inside one tile of
 * `lambdaOut` x `lambdaIn` (block rows divide λ2 and block columns divide λ1), naming the
 * method (`label`), the layer and the numbers.
 */
export function assertBlocksInsideTiles(
  label: string, layerName: string, blockRows: number, blockCols: number, lambdaOut: number, lambdaIn: number,
): void {
  if (lambdaOut % blockRows === 0 && lambdaIn % blockCols === 0) return;
  const layer = layerName ? ` on layer '${layerName}'` : '';
  const why = [
    lambdaOut % blockRows !== 0 ? `block rows ${blockRows} do not divide λ2 = ${lambdaOut}` : '',
    lambdaIn % blockCols !== 0 ? `block columns ${blockCols} do not divide λ1 = ${lambdaIn}` : '',
  ].filter(Boolean).join(' and ');
  throw new RangeError(`${label}${layer}: quantization blocks of ${blockRows} x ${blockCols} (rows x cols) do not lie inside ` +
    `the adapter's tiles of λ2 x λ1 = ${lambdaOut} x ${lambdaIn}: ${why}, so the update could not be merged into the ` +
    `blocks' offsets (choose λ2 a multiple of ${blockRows} and λ1 a multiple of ${blockCols})`);
}

/**
 * A QA-BLoRA adapter: Δy = s · repeatInterleave(M · dropout(avgPool_λ1(x)), λ2) with M zero at
 * the start (or B·A in the factor form), s = α / r. ΔW[i, k] = (s / λ1) · M[⌊i / λ2⌋, ⌊k / λ1⌋].
 * On a quantized base it requires an offset-carrying format (INT4/INT8 blocks) whose blocks fit
 * inside the λ2 x λ1 tiles; a dense base is accepted (the check then happens at merge time).
 */
export class QABLoraAdapter extends Adapter {
  constructor(inFeatures: number, outFeatures: number, factors: QABLoraFactors, options: AdapterOptions) {
    super('qablora', {
      inFeatures, outFeatures,
      lambdaIn: factors.lambdaIn ?? QABLORA_DEFAULTS.lambdaIn,
      lambdaOut: factors.lambdaOut ?? QABLORA_DEFAULTS.lambdaOut,
      form: factors.form ?? QABLORA_DEFAULTS.form,
    }, options);
  }

  /** Also checks that a quantized base carries offsets and that its blocks fit inside the tiles. */
  override checkBase(base: FrozenLinear): void {
    super.checkBase(base);
    if (!(base instanceof QuantizedBase)) return;
    const blocks = base.blockShape;
    if (!blocks) {
      throw new TypeError(`${this.where()}: the base is ${base.format} (absmax blocks, no offset), which cannot absorb the ` +
        `adapter's update; QA-BLoRA needs an INT4/INT8 base with block offsets (quantize with format 'int4'), or use Q-BLoRA`);
    }
    assertBlocksInsideTiles(this.label, this.layerName, blocks[0], blocks[1], this.lambdaOut, this.lambdaIn);
  }
}
