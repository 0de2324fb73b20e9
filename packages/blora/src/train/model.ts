// What the trainer and the evaluation need from a model, and the causal language-modelling
// loss over a padded batch.
import { crossEntropy, mul, reshape, type Tensor } from '@blora/tensor';

/**
 * A causal language model: int32 token ids `[B, T]` in, logits `[B, T, V]` out, where the
 * logits at position t predict token t + 1. Parameters are listed by dotted name; those that
 * require grad are the ones trained. `train()` / `eval()` switch dropout on and off.
 * A `Module` with such a `forward` (the Llama models of this project) fits.
 */
export interface CausalLM {
  /** Logits `[B, T, V]` for ids `[B, T]`. */
  forward(inputIds: Tensor): Tensor;
  /** Every parameter by dotted name. */
  namedParameters(): [string, Tensor][];
  /** True in training mode (dropout on). */
  training?: boolean;
  /** Training mode on (true) or off (false). */
  train?(mode?: boolean): unknown;
  /** Evaluation mode (dropout off). */
  eval?(): unknown;
}

/** The parameters that require grad, by name, in model order. */
export function trainableParameters(model: CausalLM): [string, Tensor][] {
  return model.namedParameters().filter(([, t]) => t.requiresGrad);
}

/**
 * Summed negative log-likelihood of `targets` (int32 `[B, T]`, -100 = skip) under `logits`
 * `[B, T, V]`, divided by `normalizer` (the number of counted targets of the whole optimizer
 * step, so micro-batches of a gradient-accumulation step add up to the token mean).
 */
export function causalLmLoss(logits: Tensor, targets: Tensor, normalizer: number): Tensor {
  if (logits.rank !== 3) throw new RangeError(`causalLmLoss: logits must be [B, T, V], got ${logits.describe()}`);
  const [b, t, v] = logits.shape as [number, number, number];
  if (targets.rank !== 2 || targets.shape[0] !== b || targets.shape[1] !== t) {
    throw new RangeError(`causalLmLoss: targets must be [${b}, ${t}] to match logits ${logits.describe()}, got ${targets.describe()}`);
  }
  if (!(normalizer > 0)) throw new RangeError(`causalLmLoss: normalizer must be positive, got ${normalizer}`);
  const flat = reshape(logits, [b * t, v]);
  const total = crossEntropy(flat, reshape(targets, [b * t]), { reduction: 'sum' });
  return normalizer === 1 ? total : mul(total, 1 / normalizer);
}
