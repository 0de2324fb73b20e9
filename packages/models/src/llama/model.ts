// The Llama-family causal language model with Hugging Face's module tree and names:
// model.embed_tokens, model.layers.N.{self_attn,mlp,input_layernorm,post_attention_layernorm},
// model.norm and lm_head (absent when the embeddings are tied).
import {
  crossEntropy, indexSelect, isFloatDType, matmul, mul, reshape, slice, tensor, tidy, transpose,
  type DType, type Tensor,
} from '@blora/tensor';
import { Linear, Module, RMSNorm, assignInPlace, checkpoint, isGradEnabled } from '@blora/autograd';
import { LlamaAttention } from './attention.js';
import { LlamaDecoderLayer } from './block.js';
import type { LlamaConfig } from './config.js';
import type { KVCache } from './kv-cache.js';
import { TokenEmbedding, denseLinearFactory, linearFromWeight, toDType, type LinearFactory, type LinearModule } from './layers.js';
import { LlamaMLP } from './mlp.js';
import { ropeInverseFrequencies, ropeTablesFor } from './rope.js';

/** Token ids: an int32 tensor `[B, T]` or nested arrays of integers. */
export type TokenIds = Tensor | readonly (readonly number[])[];

/** Options of a forward pass. */
export interface ForwardOptions {
  /** Position of the first token (default: the cache's length, or 0). */
  positionOffset?: number;
  /** Past keys and values: read, then extended with this pass's tokens. */
  kvCache?: KVCache;
  /**
   * A one-token pass at a position held in device memory (`DecodeStep`, which records it as a
   * graph): with `kvCache`, whose buffers must have room. `position` and `keyLength` (position + 1)
   * are int32 tensors of one element; `cos` / `sin` the rotary tables of every position.
   */
  step?: DeviceStep;
}

/** The device-side position of a one-token pass (see `ForwardOptions.step`). */
export interface DeviceStep {
  position: Tensor;
  keyLength: Tensor;
  cos: Tensor;
  sin: Tensor;
}

/**
 * Supplies the initial value of each tensor while a model is built, by its full Hugging Face
 * name (`model.layers.0.mlp.up_proj.weight`) and expected shape. The returned tensor may have
 * any float dtype and belongs to the model afterwards. Returning null keeps the module's own
 * initial value (allowed for norm weights only).
 */
export type ParameterSource = (name: string, shape: readonly number[]) => Tensor | null;

/** How a model is built. */
export interface BuildOptions {
  /** Compute dtype of activations and dense parameters (default float32). */
  dtype?: DType;
  /** Device of the tensors (default 'cpu'). */
  device?: string;
  /** Makes the block projections (default: trainable dense layers). */
  linearFactory?: LinearFactory;
}

/** The names of the projections of one block, in the order they are built. */
export const ATTENTION_PROJECTIONS = ['q_proj', 'k_proj', 'v_proj', 'o_proj'] as const;
/** The names of the MLP projections, in the order they are built. */
export const MLP_PROJECTIONS = ['gate_proj', 'up_proj', 'down_proj'] as const;

/** Every tensor name and shape a checkpoint of `config` holds, in build order (lm_head only when untied). */
export function expectedTensors(config: LlamaConfig): [string, number[]][] {
  const { hiddenSize: d, intermediateSize: m, headDim: dh, numAttentionHeads: h, numKeyValueHeads: hkv } = config;
  const out: [string, number[]][] = [['model.embed_tokens.weight', [config.vocabSize, d]]];
  const shapes: Record<string, number[]> = {
    q_proj: [h * dh, d], k_proj: [hkv * dh, d], v_proj: [hkv * dh, d], o_proj: [d, h * dh],
    gate_proj: [m, d], up_proj: [m, d], down_proj: [d, m],
  };
  for (let i = 0; i < config.numHiddenLayers; i++) {
    const p = `model.layers.${i}`;
    for (const n of ATTENTION_PROJECTIONS) out.push([`${p}.self_attn.${n}.weight`, shapes[n]!]);
    for (const n of MLP_PROJECTIONS) out.push([`${p}.mlp.${n}.weight`, shapes[n]!]);
    out.push([`${p}.input_layernorm.weight`, [d]], [`${p}.post_attention_layernorm.weight`, [d]]);
  }
  out.push(['model.norm.weight', [d]]);
  if (!config.tieWordEmbeddings) out.push(['lm_head.weight', [config.vocabSize, d]]);
  return out;
}

/** The decoder layers, registered as children `0`, `1`, ... */
export class LayerList extends Module {
  /** The layers in order. */
  readonly items: readonly LlamaDecoderLayer[];

  constructor(layers: LlamaDecoderLayer[]) {
    super();
    layers.forEach((layer, i) => this.registerModule(String(i), layer));
    this.items = layers;
  }
}

/** Embeddings, decoder layers and the final norm (Hugging Face's `model` submodule). */
export class LlamaModel extends Module {
  /** Token embeddings `[vocab, hidden]`. */
  readonly embed_tokens: TokenEmbedding;
  /** The decoder layers. */
  readonly layers: LayerList;
  /** The final norm. */
  readonly norm: RMSNorm;

  constructor(embed: TokenEmbedding, layers: LlamaDecoderLayer[], norm: RMSNorm) {
    super();
    this.embed_tokens = this.registerModule('embed_tokens', embed);
    this.layers = this.registerModule('layers', new LayerList(layers));
    this.norm = this.registerModule('norm', norm);
  }
}

/**
 * A LLaMA / LLaMA-2 / Mistral / Gemma causal language model. Build one with `createLlama`
 * (fresh weights) or `loadLlama` (a Hugging Face checkpoint directory).
 */
export class LlamaForCausalLM extends Module {
  /** Embeddings, decoder layers and final norm. */
  readonly model: LlamaModel;
  /** The output projection; null when it is tied to `model.embed_tokens`. */
  readonly lm_head: Linear | null;
  /** Compute dtype of activations and dense parameters. */
  readonly dtype: DType;
  /** Device of the model's tensors. */
  readonly device: string;
  /** Recompute each block in backward instead of keeping its activations (training only). */
  gradientCheckpointing = false;
  private readonly invFreq: Float64Array;

  /**
   * Builds the module tree, asking `source` for each tensor in checkpoint order and passing
   * block projection weights to the linear factory as they arrive.
   */
  constructor(readonly config: LlamaConfig, source: ParameterSource, options: BuildOptions = {}) {
    super();
    this.dtype = options.dtype ?? 'float32';
    this.device = options.device ?? 'cpu';
    if (!isFloatDType(this.dtype)) throw new TypeError(`LlamaForCausalLM: dtype must be a float dtype, got ${this.dtype}`);
    const factory = options.linearFactory ?? denseLinearFactory;
    const context = { dtype: this.dtype, device: this.device };
    const shapes = new Map(expectedTensors(config));
    const take = (name: string): Tensor => {
      const t = source(name, shapes.get(name)!);
      if (!t) throw new Error(`LlamaForCausalLM: no value for '${name}'`);
      return t;
    };
    const linear = (module: string): LinearModule => factory(module, take(`${module}.weight`), context);
    const norm = (name: string): RMSNorm => {
      const layer = new RMSNorm(config.hiddenSize, {
        eps: config.rmsNormEps, offset: config.family === 'gemma' ? 1 : 0, dtype: this.dtype, device: this.device,
      });
      const value = source(name, shapes.get(name)!);
      if (value) {
        assignInPlace(layer.weight, value);
        value.dispose();
      }
      return layer;
    };
    const embed = new TokenEmbedding(toDType(take('model.embed_tokens.weight'), this.dtype));
    const layers: LlamaDecoderLayer[] = [];
    for (let i = 0; i < config.numHiddenLayers; i++) {
      const p = `model.layers.${i}`;
      const attn = new LlamaAttention(config, {
        q_proj: linear(`${p}.self_attn.q_proj`), k_proj: linear(`${p}.self_attn.k_proj`),
        v_proj: linear(`${p}.self_attn.v_proj`), o_proj: linear(`${p}.self_attn.o_proj`),
      });
      const mlp = new LlamaMLP(config, {
        gate_proj: linear(`${p}.mlp.gate_proj`), up_proj: linear(`${p}.mlp.up_proj`), down_proj: linear(`${p}.mlp.down_proj`),
      });
      layers.push(new LlamaDecoderLayer(attn, mlp, norm(`${p}.input_layernorm.weight`), norm(`${p}.post_attention_layernorm.weight`)));
    }
    this.model = this.registerModule('model', new LlamaModel(embed, layers, norm('model.norm.weight')));
    this.lm_head = config.tieWordEmbeddings
      ? null
      : this.registerModule('lm_head', linearFromWeight(take('lm_head.weight'), this.dtype));
    this.invFreq = ropeInverseFrequencies(config);
  }

  /** The block projections by Hugging Face module name (`model.layers.0.self_attn.q_proj`, ...). */
  linearLayers(): [string, LinearModule][] {
    const out: [string, LinearModule][] = [];
    this.model.layers.items.forEach((layer, i) => {
      for (const n of ATTENTION_PROJECTIONS) out.push([`model.layers.${i}.self_attn.${n}`, layer.self_attn[n]]);
      for (const n of MLP_PROJECTIONS) out.push([`model.layers.${i}.mlp.${n}`, layer.mlp[n]]);
    });
    return out;
  }

  /** Final hidden states `[B, T, hidden]` (after `model.norm`) for `ids` `[B, T]`. */
  hiddenStates(ids: TokenIds, options: ForwardOptions = {}): Tensor {
    return tidy(() => this.runLayers(toIdTensor(ids, this.device, 'hiddenStates'), options));
  }

  private runLayers(input: Tensor, options: ForwardOptions): Tensor {
    const [, t] = input.shape as [number, number];
    const cache = options.kvCache;
    if (cache && cache.numLayers !== this.config.numHiddenLayers) {
      throw new RangeError(`hiddenStates: the KV cache has ${cache.numLayers} layers, the model ${this.config.numHiddenLayers}`);
    }
    const step = options.step;
    if (step && (!cache || t !== 1)) throw new RangeError('hiddenStates: a device-position step takes one token and a KV cache');
    const offset = options.positionOffset ?? cache?.length ?? 0;
    if (!Number.isInteger(offset) || offset < 0) throw new RangeError(`hiddenStates: positionOffset must be a non-negative integer, got ${offset}`);
    if (cache && !step && offset !== cache.length) {
      throw new RangeError(`hiddenStates: positionOffset ${offset} does not continue the KV cache, which holds ${cache.length} positions`);
    }
    const recompute = this.gradientCheckpointing && this.training && isGradEnabled() && !cache;
    // A device step gathers its table rows on the device; otherwise they are computed on the host.
    const tables = step
      ? { cos: indexSelect(step.cos, 0, step.position), sin: indexSelect(step.sin, 0, step.position) }
      : ropeTablesFor(this.invFreq, t, offset, this.dtype, this.device);
    let h = this.model.embed_tokens.forward(input);
    // Gemma scales the embeddings by sqrt(hidden), the factor rounded to the activation dtype.
    if (this.config.family === 'gemma') h = mul(h, Math.sqrt(this.config.hiddenSize));
    // Each layer runs in its own scope, so its temporaries (what the tape does not keep for
    // backward) are freed as soon as the layer is done rather than at the end of the forward.
    this.model.layers.items.forEach((layer, i) => {
      const x = h;
      if (recompute) {
        // The tables are inputs (not captured) so the checkpoint keeps them for the recomputation.
        const run = (y: Tensor, cos: Tensor, sin: Tensor) => layer.forward(y, { cos, sin });
        h = tidy(() => checkpoint(run, [x, tables.cos, tables.sin]));
      } else {
        h = tidy(() => layer.forward(x, tables, cache ? { cache, layer: i, step } : undefined));
      }
    });
    return this.model.norm.forward(h);
  }

  /** Logits `[..., vocab]` from hidden states `[..., hidden]` (lm_head, or the tied embedding table). */
  logitsFrom(hidden: Tensor): Tensor {
    if (this.lm_head) return this.lm_head.forward(hidden);
    return matmul(hidden, transpose(this.model.embed_tokens.weight));
  }

  /** Logits `[B, T, vocab]` for `ids` `[B, T]`, in the compute dtype. */
  forward(ids: TokenIds, options: ForwardOptions = {}): Tensor {
    return tidy(() => this.logitsFrom(this.hiddenStates(ids, options)));
  }

  /**
   * Mean next-token cross-entropy as transformers computes it: logits at positions
   * `0 .. T-2` against `labels` at `1 .. T-1`, skipping labels equal to -100. `labels`
   * defaults to `ids`.
   */
  loss(ids: TokenIds, labels: TokenIds = ids): Tensor {
    return tidy(() => {
      const input = toIdTensor(ids, this.device, 'loss');
      const target = toIdTensor(labels, this.device, 'loss', true);
      const [b, t] = input.shape as [number, number];
      if (target.shape[0] !== b || target.shape[1] !== t) {
        throw new RangeError(`loss: labels ${target.describe()} must have the shape of ids [${b}, ${t}]`);
      }
      if (t < 2) throw new RangeError(`loss: needs sequences of at least 2 tokens, got ${input.describe()}`);
      const hidden = slice(this.runLayers(input, {}), 1, 0, t - 1);
      const logits = this.logitsFrom(hidden);
      const flat = reshape(logits, [b * (t - 1), this.config.vocabSize]);
      return crossEntropy(flat, reshape(slice(target, 1, 1, t), [b * (t - 1)]), { ignoreIndex: -100 });
    });
  }
}

/** Converts ids to an int32 tensor `[B, T]` with T >= 1, checking the values. */
export function toIdTensor(ids: TokenIds, device: string, where: string, allowIgnore = false): Tensor {
  if ((ids as Tensor).isTensor === true) {
    const t = ids as Tensor;
    t.assertAlive(where);
    if (t.dtype !== 'int32' || t.rank !== 2 || t.shape[1] === 0 || t.shape[0] === 0) {
      throw new TypeError(`${where}: ids must be an int32 tensor [B, T] with B, T >= 1, got ${t.describe()}`);
    }
    return t.device === device ? t : t.to(device);
  }
  const rows = ids as readonly (readonly number[])[];
  if (!Array.isArray(rows) || rows.length === 0 || !rows.every((r) => Array.isArray(r))) {
    throw new TypeError(`${where}: ids must be an int32 tensor [B, T] or a non-empty array of token id arrays`);
  }
  const t = rows[0]!.length;
  if (t === 0 || rows.some((r) => r.length !== t)) {
    throw new RangeError(`${where}: every sequence must have the same, non-zero length (got lengths ${rows.map((r) => r.length).join(', ')})`);
  }
  const flat = new Int32Array(rows.length * t);
  rows.forEach((r, i) => r.forEach((id, j) => {
    if (!Number.isInteger(id) || (id < 0 && !(allowIgnore && id === -100)) || id > 0x7fffffff) {
      throw new RangeError(`${where}: token id ${id} at [${i}, ${j}] is not a valid id`);
    }
    flat[i * t + j] = id;
  }));
  return tensor(flat, { shape: [rows.length, t], dtype: 'int32', device });
}
