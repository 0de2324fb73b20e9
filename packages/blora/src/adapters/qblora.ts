// Q-BLoRA: LoRA between two parameter-free maps. The input is average-pooled over runs of
// λin consecutive features, the output of B·A is repeat-interleaved λout times:
//   Δy = s · repeatInterleave(B · A · dropout(avgPool_λin(x)), λout)
// A: (r·λin) x (in/λin), B: (out/λout) x (r·λin), s = α / r with the nominal r.
// With λin = λout = λ the trainable count is r·λ·(in + out)/λ = r·(in + out), LoRA's at rank r.
import { Adapter, type AdapterOptions } from './adapter.js';

/** The balancing factors of a Q-BLoRA adapter. */
export interface QBLoraFactors {
  /** Pooling factor of the input (default: `lambda`). */
  lambdaIn?: number;
  /** Repeat factor of the output (default: `lambda`, else `lambdaIn`). */
  lambdaOut?: number;
  /** Shorthand for λin = λout (default 2, the paper's choice for LLaMA / LLaMA-2). */
  lambda?: number;
}

/** Default λ of Q-BLoRA (the paper's best for LLaMA / LLaMA-2; it reports 8 for Mistral / Gemma). */
export const QBLORA_DEFAULT_LAMBDA = 2;

/**
 * A Q-BLoRA adapter. The rank of B·A is r · λin: with equal factors this is the paper's
 * r · λ and keeps LoRA's parameter count; with λin ≠ λout the count is
 * r · (in + out · λin / λout). ΔW is constant on every λout x λin tile:
 * ΔW[i, k] = (s / λin) · (B·A)[⌊i / λout⌋, ⌊k / λin⌋]. λ = 1 is exactly LoRA.
 */
export class QBLoraAdapter extends Adapter {
  constructor(inFeatures: number, outFeatures: number, factors: QBLoraFactors, options: AdapterOptions) {
    const lambdaIn = factors.lambdaIn ?? factors.lambda ?? QBLORA_DEFAULT_LAMBDA;
    const lambdaOut = factors.lambdaOut ?? factors.lambda ?? lambdaIn;
    super('qblora', { inFeatures, outFeatures, lambdaIn, lambdaOut, form: 'factors' }, options);
  }
}
