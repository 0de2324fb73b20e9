// A frozen dense base layer: the weight stays a float tensor (the LoRA-on-full-precision case,
// and the target of dense merges).
import { add, cast, clone, formatShape, isFloatDType, matmul, transpose, type DType, type Tensor } from '@blora/tensor';
import { assignInPlace, noGrad, type Linear } from '@blora/autograd';
import { checkBias, FrozenLinear } from './frozen-linear.js';

/**
 * `y = x · Wᵀ + b` with a dense W `[out, in]` that does not require grad. W and b are
 * registered as (frozen) parameters named `weight` and `bias`, so they count in a model's
 * parameter total and appear in its state dict.
 */
export class DenseBase extends FrozenLinear {
  /** `[outFeatures, inFeatures]`, frozen. */
  readonly weight: Tensor;
  readonly bias: Tensor | null;

  constructor(weight: Tensor, bias: Tensor | null = null) {
    weight.assertAlive('DenseBase');
    if (weight.rank !== 2 || !isFloatDType(weight.dtype)) {
      throw new RangeError(`DenseBase: weight must be a 2-D float tensor [out, in], got ${weight.describe()}`);
    }
    super(weight.shape[1]!, weight.shape[0]!);
    this.weight = this.registerParameter('weight', weight);
    weight.requiresGrad = false;
    this.bias = checkBias(bias, this.outFeatures, 'DenseBase');
    if (this.bias) {
      this.registerParameter('bias', this.bias);
      this.bias.requiresGrad = false;
    }
  }

  /** Wraps the tensors of a `Linear` (shared, not copied) as a frozen base. */
  static fromLinear(linear: Linear): DenseBase {
    return new DenseBase(linear.weight, linear.bias);
  }

  /** `x · Wᵀ + b`; the gradient reaches `x` through matmul's rule. */
  forward(x: Tensor): Tensor {
    this.checkInput(x);
    const y = matmul(x, transpose(this.weight));
    return this.bias ? add(y, this.bias) : y;
  }

  /** A copy of W in `dtype` (default: W's own dtype). */
  denseWeight(dtype?: DType): Tensor {
    return noGrad(() => (dtype && dtype !== this.weight.dtype ? cast(this.weight, dtype) : clone(this.weight)));
  }

  /** W ← W + delta, in place (anything holding W sees the merged values). */
  addToWeight(delta: Tensor): void {
    if (delta.rank !== 2 || delta.shape[0] !== this.outFeatures || delta.shape[1] !== this.inFeatures) {
      throw new RangeError(`DenseBase.addToWeight: delta ${formatShape(delta.shape)} does not match the weight ${formatShape(this.weight.shape)}`);
    }
    noGrad(() => {
      const sum = add(this.weight, delta.dtype === this.weight.dtype ? delta : cast(delta, this.weight.dtype));
      assignInPlace(this.weight, sum);
      sum.dispose();
    });
  }

  /** E.g. `dense float32 [64, 32] + bias`. */
  describe(): string {
    return `dense ${this.weight.dtype} ${formatShape(this.weight.shape)}${this.bias ? ' + bias' : ''}`;
  }
}
