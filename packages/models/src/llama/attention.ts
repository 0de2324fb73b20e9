// Multi-head self-attention of Llama-family blocks: grouped-query heads, rotary position
// embeddings (rotate_half layout), a causal mask and Mistral's sliding window.
import { attention, permute, reshape, rope, type Tensor } from '@blora/tensor';
import { Module, recomputeForBackward } from '@blora/autograd';
import type { LlamaConfig } from './config.js';
import type { KVCache } from './kv-cache.js';
import type { LinearModule } from './layers.js';
import type { RopeTables } from './rope.js';

/** The four projections of an attention layer, by Hugging Face name. */
export interface AttentionProjections {
  q_proj: LinearModule;
  k_proj: LinearModule;
  v_proj: LinearModule;
  o_proj: LinearModule;
}

/** Where an attention call reads and writes past keys and values. */
export interface AttentionCache {
  cache: KVCache;
  layer: number;
  /**
   * A one-token step whose position lives in device memory (`DecodeStep`): the new keys and values
   * are written at `position` into the cache's buffers, and attention reads their first
   * `keyLength` positions, so one recorded step serves every position.
   */
  step?: { position: Tensor; keyLength: Tensor };
}

/**
 * `o_proj(attention(rope(q_proj(x)), rope(k_proj(x)), v_proj(x)))` with `numAttentionHeads`
 * query heads sharing `numKeyValueHeads` key/value heads, scale `1/sqrt(headDim)`, a causal
 * mask and, when the config has one, a sliding window (a query sees the `slidingWindow`
 * latest keys, itself included).
 */
export class LlamaAttention extends Module {
  /** hidden -> heads · headDim. */
  readonly q_proj: LinearModule;
  /** hidden -> kvHeads · headDim. */
  readonly k_proj: LinearModule;
  /** hidden -> kvHeads · headDim. */
  readonly v_proj: LinearModule;
  /** heads · headDim -> hidden. */
  readonly o_proj: LinearModule;
  private readonly heads: number;
  private readonly kvHeads: number;
  private readonly headDim: number;
  private readonly window: number | null;

  constructor(config: LlamaConfig, projections: AttentionProjections) {
    super();
    this.heads = config.numAttentionHeads;
    this.kvHeads = config.numKeyValueHeads;
    this.headDim = config.headDim;
    this.window = config.slidingWindow;
    const { hiddenSize: d } = config;
    const expect: Record<keyof AttentionProjections, [number, number]> = {
      q_proj: [d, this.heads * this.headDim],
      k_proj: [d, this.kvHeads * this.headDim],
      v_proj: [d, this.kvHeads * this.headDim],
      o_proj: [this.heads * this.headDim, d],
    };
    for (const [name, [inF, outF]] of Object.entries(expect) as [keyof AttentionProjections, [number, number]][]) {
      const p = projections[name];
      if (p.inFeatures !== inF || p.outFeatures !== outF) {
        throw new RangeError(`LlamaAttention: ${name} must map ${inF} -> ${outF} features, got ${p.inFeatures} -> ${p.outFeatures}`);
      }
    }
    this.q_proj = this.registerModule('q_proj', projections.q_proj);
    this.k_proj = this.registerModule('k_proj', projections.k_proj);
    this.v_proj = this.registerModule('v_proj', projections.v_proj);
    this.o_proj = this.registerModule('o_proj', projections.o_proj);
  }

  /** `x` `[B, T, hidden]` at the positions of `tables`; appends to `cache` when given. */
  forward(x: Tensor, tables: RopeTables, cache?: AttentionCache): Tensor {
    const [b, t] = x.shape as [number, number, number];
    // [B, T, n * Dh] -> [B, n, T, Dh], a view.
    const heads = (y: Tensor, n: number) => permute(reshape(y, [b, t, n, this.headDim]), [0, 2, 1, 3]);
    const q = rope(heads(this.q_proj.forward(x), this.heads), tables.cos, tables.sin);
    let k = rope(heads(this.k_proj.forward(x), this.kvHeads), tables.cos, tables.sin);
    let v = heads(this.v_proj.forward(x), this.kvHeads);
    const options = { causal: true, window: this.window, scale: 1 / Math.sqrt(this.headDim) };
    let o: Tensor;
    if (cache?.step) {
      const buffers = cache.cache.writeAt(cache.layer, k, v, cache.step.position);
      o = attention(q, buffers.k, buffers.v, { ...options, keyLength: cache.step.keyLength });
    } else {
      if (cache) ({ k, v } = cache.cache.append(cache.layer, k, v));
      o = attention(q, k, v, options);
    }
    // The merged copy of o is rebuilt from o (which attention keeps) when backward needs it.
    const merged = recomputeForBackward([o], (y) => reshape(permute(y, [0, 2, 1, 3]), [b, t, this.heads * this.headDim]));
    return this.o_proj.forward(merged);
  }
}
