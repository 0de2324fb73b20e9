// Root-mean-square normalisation as a layer (Llama, Mistral; Gemma with offset 1).
import { full, rmsNorm, type DType, type Tensor } from '@blora/tensor';
import { Module } from './module.js';

/** Options of `RMSNorm`. */
export interface RMSNormOptions {
  /** Added to mean(x^2) before the square root (default 1e-6). */
  eps?: number;
  /** Gain offset: 0 scales by `weight` (Llama, default), 1 scales by `1 + weight` (Gemma). */
  offset?: number;
  /** Parameter dtype (default float32); it must match the input's dtype. */
  dtype?: DType;
  /** Device (default 'cpu'). */
  device?: string;
}

/**
 * `y = x / sqrt(mean(x^2) + eps) * (offset + weight)` over the last dim, with a learned
 * `weight` `[dim]` (state dict name `weight`, as in Hugging Face checkpoints). The weight
 * starts at `1 - offset`, so a fresh layer scales by exactly 1. Runs the fused `rmsNorm` op.
 */
export class RMSNorm extends Module {
  /** `[dim]`. */
  readonly weight: Tensor;
  /** Added to mean(x^2). */
  readonly eps: number;
  /** Gain offset (0 or 1 in practice). */
  readonly offset: number;

  constructor(readonly dim: number, options: RMSNormOptions = {}) {
    super();
    if (!Number.isInteger(dim) || dim < 1) throw new RangeError(`RMSNorm: dim must be a positive integer, got ${dim}`);
    this.eps = options.eps ?? 1e-6;
    this.offset = options.offset ?? 0;
    if (!(this.eps >= 0) || !Number.isFinite(this.eps)) throw new RangeError(`RMSNorm: eps must be a finite number >= 0, got ${this.eps}`);
    if (!Number.isFinite(this.offset)) throw new RangeError(`RMSNorm: offset must be a finite number, got ${this.offset}`);
    const init = full([dim], 1 - this.offset, { dtype: options.dtype ?? 'float32', device: options.device ?? 'cpu' });
    this.weight = this.registerParameter('weight', init);
  }

  /** Normalises `x` `[..., dim]` (same dtype as the weight). */
  forward(x: Tensor): Tensor {
    if (x.rank === 0 || x.shape[x.rank - 1] !== this.dim) {
      throw new RangeError(`RMSNorm: expected input [..., ${this.dim}], got ${x.describe()}`);
    }
    return rmsNorm(x, this.weight, this.eps, { offset: this.offset });
  }
}
