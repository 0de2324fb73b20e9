// One pre-norm decoder block: x + attn(norm(x)), then h + mlp(norm(h)).
import { add, tidy, type Tensor } from '@blora/tensor';
import { Module, RMSNorm, recomputeForBackward } from '@blora/autograd';
import type { AttentionCache, LlamaAttention } from './attention.js';
import type { LlamaMLP } from './mlp.js';
import type { RopeTables } from './rope.js';

/** A decoder layer with Hugging Face's child names (`self_attn`, `mlp`, `input_layernorm`, `post_attention_layernorm`). */
export class LlamaDecoderLayer extends Module {
  /** Self-attention. */
  readonly self_attn: LlamaAttention;
  /** Gated MLP. */
  readonly mlp: LlamaMLP;
  /** Norm before the attention. */
  readonly input_layernorm: RMSNorm;
  /** Norm before the MLP. */
  readonly post_attention_layernorm: RMSNorm;

  constructor(selfAttn: LlamaAttention, mlp: LlamaMLP, inputLayernorm: RMSNorm, postAttentionLayernorm: RMSNorm) {
    super();
    // Registration order follows transformers, so parameters are listed in the same order.
    this.self_attn = this.registerModule('self_attn', selfAttn);
    this.mlp = this.registerModule('mlp', mlp);
    this.input_layernorm = this.registerModule('input_layernorm', inputLayernorm);
    this.post_attention_layernorm = this.registerModule('post_attention_layernorm', postAttentionLayernorm);
  }

  /**
   * `x` `[B, T, hidden]` -> `[B, T, hidden]`. Each half runs in its own scope, so its
   * temporaries are freed when it ends. The normalised inputs are rebuilt in backward from the
   * norms' inputs (which the norms keep anyway) rather than kept beside them.
   */
  forward(x: Tensor, tables: RopeTables, cache?: AttentionCache): Tensor {
    const attended = tidy(() => {
      const normed = recomputeForBackward([x], (t) => this.input_layernorm.forward(t));
      return this.self_attn.forward(normed, tables, cache);
    });
    const h = add(x, attended);
    const mixed = tidy(() => this.mlp.forward(recomputeForBackward([h], (t) => this.post_attention_layernorm.forward(t))));
    return add(h, mixed);
  }
}
