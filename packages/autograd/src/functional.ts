// Differentiable building blocks written as compositions of tensor ops, so their gradients
// come from the rules of the ops they use.
import { bernoulli, gelu, mul, siluMul, type Generator, type Tensor } from '@blora/tensor';

/** Options of `dropout`. */
export interface DropoutOptions {
  /** Apply dropout (true) or return the input unchanged (false, evaluation). Default true. */
  training?: boolean;
  /** The random stream the mask is drawn from (default: the package-wide default generator). */
  generator?: Generator;
}

/**
 * Zeroes each element with probability `p` and scales the rest by 1 / (1 - p), so the
 * expectation is unchanged. The mask is drawn from a seeded generator, so a run is
 * reproducible and a recomputation (see `checkpoint`) that restores the generator draws
 * the same mask. The gradient is the same mask times the scale.
 */
export function dropout(x: Tensor, p: number, options: DropoutOptions = {}): Tensor {
  if (typeof p !== 'number' || !(p >= 0 && p < 1)) throw new RangeError(`dropout: p must be in [0, 1), got ${p}`);
  if (options.training === false || p === 0) return x;
  const keepMask = bernoulli(1 - p, x.shape, { dtype: x.dtype, device: x.device, ...(options.generator ? { generator: options.generator } : {}) });
  return mul(x, mul(keepMask, 1 / (1 - p)));
}

/** SwiGLU: silu(gate) * up (the LLaMA / Mistral MLP activation), one op (`siluMul`). */
export function swiglu(gate: Tensor, up: Tensor): Tensor {
  return siluMul(gate, up);
}

/** GeGLU: gelu(gate) * up, with the tanh approximation by default (as Gemma uses). */
export function geglu(gate: Tensor, up: Tensor, approximate: 'tanh' | 'none' = 'tanh'): Tensor {
  return mul(gelu(gate, approximate), up);
}
