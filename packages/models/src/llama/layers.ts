// How the model's linear layers are made (a factory hook, so another package can supply
// frozen or quantized layers), and the embedding table built from a given tensor.
import { cast, embedding, type DType, type Tensor } from '@blora/tensor';
import { Linear, Module } from '@blora/autograd';

/** What the model needs from a linear layer: `y = x Wᵀ` for `x` `[..., inFeatures]`. */
export interface LinearLayer {
  /** Size of the input's last dim. */
  readonly inFeatures: number;
  /** Size of the output's last dim. */
  readonly outFeatures: number;
  /** Applies the layer. */
  forward(x: Tensor): Tensor;
}

/** A linear layer that is also a `Module` (its parameters and buffers join the model's). */
export type LinearModule = Module & LinearLayer;

/** What a linear factory is told besides the layer's name and weight. */
export interface LinearContext {
  /** The model's compute dtype (activations and dense parameters). */
  dtype: DType;
  /** Device of the model's tensors. */
  device: string;
}

/**
 * Makes the linear layer called `name` (the Hugging Face module name, e.g.
 * `model.layers.0.self_attn.q_proj`) from its weight `[out, in]`. The weight is the tensor as
 * stored in the checkpoint (any float dtype) or freshly initialised; the factory owns it: it
 * keeps it or disposes it (a quantizing factory drops it once the codes are made, so a
 * checkpoint never needs its dense size in memory). Only the seven projections of each block go
 * through the factory; `lm_head` stays a dense `Linear`. A layer the saver can write has a
 * float `weight` tensor or a `denseWeight(dtype)` method.
 */
export type LinearFactory = (name: string, weight: Tensor, context: LinearContext) => LinearModule;

/** Converts `t` to `dtype`, disposing the original when a copy was made. */
export function toDType(t: Tensor, dtype: DType): Tensor {
  if (t.dtype === dtype) return t;
  const out = cast(t, dtype);
  t.dispose();
  return out;
}

/** A trainable, bias-free autograd `Linear` over `weight` (converted to `dtype`), drawing no initial values. */
export function linearFromWeight(weight: Tensor, dtype: DType): Linear {
  const w = toDType(weight, dtype);
  return new Linear(w.shape[1]!, w.shape[0]!, { bias: false, weight: w });
}

/** The default factory: a trainable autograd `Linear` (no bias) holding the weight in the compute dtype. */
export const denseLinearFactory: LinearFactory = (_name, weight, context) => linearFromWeight(weight, context.dtype);

/** A token embedding table `[vocab, hidden]` (parameter `weight`) with a given initial value. */
export class TokenEmbedding extends Module {
  /** `[count, dim]`. */
  readonly weight: Tensor;

  constructor(weight: Tensor) {
    super();
    if (weight.rank !== 2) throw new RangeError(`TokenEmbedding: weight must be [vocab, dim], got ${weight.describe()}`);
    this.weight = this.registerParameter('weight', weight);
  }

  /** Number of rows (token ids `0 .. count - 1`). */
  get count(): number {
    return this.weight.shape[0]!;
  }

  /** Length of each vector. */
  get dim(): number {
    return this.weight.shape[1]!;
  }

  /** Looks up int32 `ids` of any shape: `[...ids] -> [...ids, dim]`. */
  forward(ids: Tensor): Tensor {
    return embedding(this.weight, ids);
  }
}
