// A frozen quantized base layer: the forward runs the quantized matmul op of the weight's
// format ('nf4Matmul', 'int4Matmul', ...), whose gradient rule (rules/quantized.ts) gives the
// input its gradient through the transposed op and the weight none.
import { add, type DType, type Tensor } from '@blora/tensor';
import { IntBlockLinear, type QuantizedLinear } from '@blora/quant';
import '../rules/quantized.js';
import { checkBias, FrozenLinear } from './frozen-linear.js';

/**
 * `y = x · dequant(W)ᵀ + b` for a quantized W (NF4/FP4 for QLoRA and Q-BLoRA, INT4/INT8
 * blocks for QA-BLoRA), computed by the format's matmul op without building W. The quantized
 * tensors are not module parameters (they are not float and never train); the bias, if any,
 * is a frozen parameter named `bias`.
 */
export class QuantizedBase extends FrozenLinear {
  readonly bias: Tensor | null;

  constructor(
    /** The quantized weight. An exact QA-BLoRA merge updates its offsets in place. */
    readonly quantized: QuantizedLinear,
    bias: Tensor | null = null,
  ) {
    super(quantized.inFeatures, quantized.outFeatures);
    this.bias = checkBias(bias, this.outFeatures, 'QuantizedBase');
    if (this.bias) {
      this.registerParameter('bias', this.bias);
      this.bias.requiresGrad = false;
    }
  }

  /** The quantized format ('nf4', 'fp4', 'int4', 'int8'). */
  get format(): QuantizedLinear['format'] {
    return this.quantized.format;
  }

  /** Block shape [rows, cols] of an INT4/INT8 weight, or null for NF4/FP4 (flat absmax blocks). */
  get blockShape(): [number, number] | null {
    return this.quantized instanceof IntBlockLinear ? [this.quantized.blockRows, this.quantized.blockCols] : null;
  }

  /** `x · dequant(W)ᵀ + b` through the quantized matmul op. */
  forward(x: Tensor): Tensor {
    this.checkInput(x);
    const y = this.quantized.matmul(x);
    return this.bias ? add(y, this.bias) : y;
  }

  /** The dequantized weight (float32 values, encoded to `dtype`). */
  denseWeight(dtype: DType = 'float32'): Tensor {
    return this.quantized.dequantize(dtype);
  }

  /** E.g. `nf4 [64, 32] blocksize 64, double-quantized (256) on cpu`. */
  describe(): string {
    return `${this.quantized.describe()}${this.bias ? ' + bias' : ''}`;
  }

  /** Releases the quantized weight and the bias. */
  override dispose(): void {
    this.quantized.dispose();
    super.dispose();
  }
}
