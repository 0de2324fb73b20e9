// What every frozen base layer under an adapter offers: y = x · Wᵀ + b with W fixed, its
// dense weight on demand, and how many weight elements it stands for.
import { formatShape, type DType, type Tensor } from '@blora/tensor';
import { Module } from '@blora/autograd';

/**
 * A linear layer whose weight does not train: the base an adapter sits on. Subclasses keep
 * the weight dense (`DenseBase`) or quantized (`QuantizedBase`); gradients flow to the input
 * only (and to nothing in the layer itself).
 */
export abstract class FrozenLinear extends Module {
  /** Optional bias `[outFeatures]` (frozen too), or null. */
  abstract readonly bias: Tensor | null;

  constructor(
    /** Size of the input's last dim. */
    readonly inFeatures: number,
    /** Size of the output's last dim. */
    readonly outFeatures: number,
  ) {
    super();
  }

  /** `y = x · Wᵀ + b` for `x` of shape `[..., inFeatures]`. */
  abstract forward(x: Tensor): Tensor;

  /** A new dense copy of W `[outFeatures, inFeatures]` (dequantized when the layer is quantized). */
  abstract denseWeight(dtype?: DType): Tensor;

  /** Number of weight elements the layer represents (out · in, whatever the storage). */
  get weightElements(): number {
    return this.outFeatures * this.inFeatures;
  }

  /** Weight elements plus bias elements: the layer's share of a model's parameter count. */
  get baseParameters(): number {
    return this.weightElements + (this.bias?.numel ?? 0);
  }

  /** A one-line description of the storage, e.g. `dense float32 [64, 32]`. */
  abstract describe(): string;

  /** Throws unless `x` ends in `inFeatures`. */
  checkInput(x: Tensor): void {
    if (x.rank === 0 || x.shape[x.rank - 1] !== this.inFeatures) {
      throw new RangeError(`${this.constructor.name}: expected input [..., ${this.inFeatures}], got ${formatShape(x.shape)} (${x.describe()})`);
    }
  }
}

/** Checks a bias tensor against the layer's output size and freezes it. */
export function checkBias(bias: Tensor | null, outFeatures: number, where: string): Tensor | null {
  if (bias === null) return null;
  bias.assertAlive(where);
  if (bias.rank !== 1 || bias.shape[0] !== outFeatures) {
    throw new RangeError(`${where}: bias must have shape [${outFeatures}], got ${formatShape(bias.shape)}`);
  }
  return bias;
}
