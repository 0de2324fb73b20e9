// Test fixtures for the Llama-family models: tiny config.json files with the field sets of
// real Hugging Face checkpoints, seeded weights written with the safetensors writer, and an
// independent float64 forward pass written with plain loops.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { tensor, writeSafetensors, type DType, type Tensor } from '@blora/tensor';
import { randomValues } from '@blora/tensor/testing';

/** A tiny TinyLlama-1.1B-shaped config (grouped-query attention), same fields as the real file. */
export function tinyLlamaJson(overrides: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    architectures: ['LlamaForCausalLM'],
    attention_bias: false,
    bos_token_id: 1,
    eos_token_id: 2,
    hidden_act: 'silu',
    hidden_size: 16,
    initializer_range: 0.02,
    intermediate_size: 24,
    max_position_embeddings: 2048,
    model_type: 'llama',
    num_attention_heads: 4,
    num_hidden_layers: 2,
    num_key_value_heads: 2,
    pretraining_tp: 1,
    rms_norm_eps: 1e-5,
    rope_scaling: null,
    rope_theta: 10000.0,
    tie_word_embeddings: false,
    torch_dtype: 'bfloat16',
    transformers_version: '4.35.0',
    use_cache: true,
    vocab_size: 37,
    ...overrides,
  };
}

/** A tiny Llama-2-7b-hf-shaped config: no rope_theta, no grouped-query attention. */
export function tinyLlama2Json(overrides: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    _name_or_path: 'meta-llama/Llama-2-7b-hf',
    architectures: ['LlamaForCausalLM'],
    bos_token_id: 1,
    eos_token_id: 2,
    hidden_act: 'silu',
    hidden_size: 16,
    initializer_range: 0.02,
    intermediate_size: 20,
    max_position_embeddings: 4096,
    model_type: 'llama',
    num_attention_heads: 4,
    num_hidden_layers: 2,
    num_key_value_heads: 4,
    pretraining_tp: 1,
    rms_norm_eps: 1e-5,
    rope_scaling: null,
    tie_word_embeddings: false,
    torch_dtype: 'float16',
    transformers_version: '4.31.0.dev0',
    use_cache: true,
    vocab_size: 29,
    ...overrides,
  };
}

/** A tiny LLaMA-1 (huggyllama/llama-7b)-shaped config: no num_key_value_heads. */
export function tinyLlama1Json(overrides: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    architectures: ['LlamaForCausalLM'],
    bos_token_id: 1,
    eos_token_id: 2,
    hidden_act: 'silu',
    hidden_size: 12,
    initializer_range: 0.02,
    intermediate_size: 20,
    max_position_embeddings: 2048,
    max_sequence_length: 2048,
    model_type: 'llama',
    num_attention_heads: 3,
    num_hidden_layers: 1,
    pad_token_id: 0,
    rms_norm_eps: 1e-6,
    tie_word_embeddings: false,
    torch_dtype: 'float16',
    transformers_version: '4.28.0.dev0',
    use_cache: true,
    vocab_size: 23,
    ...overrides,
  };
}

/** A tiny Mistral-7B-v0.1-shaped config with a sliding window of 3 (shorter than the test sequences). */
export function tinyMistralJson(overrides: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    architectures: ['MistralForCausalLM'],
    bos_token_id: 1,
    eos_token_id: 2,
    hidden_act: 'silu',
    hidden_size: 16,
    initializer_range: 0.02,
    intermediate_size: 28,
    max_position_embeddings: 32768,
    model_type: 'mistral',
    num_attention_heads: 4,
    num_hidden_layers: 2,
    num_key_value_heads: 2,
    rms_norm_eps: 1e-5,
    rope_theta: 10000.0,
    sliding_window: 3,
    tie_word_embeddings: false,
    torch_dtype: 'bfloat16',
    transformers_version: '4.34.0.dev0',
    use_cache: true,
    vocab_size: 31,
    ...overrides,
  };
}

/**
 * A tiny gemma-2b-shaped config: one key/value head, head_dim given (and different from
 * hidden_size / num_attention_heads), "gelu" in hidden_act (transformers uses the tanh GELU
 * anyway), no tie_word_embeddings field (tied by default).
 */
export function tinyGemmaJson(overrides: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    architectures: ['GemmaForCausalLM'],
    attention_bias: false,
    attention_dropout: 0.0,
    bos_token_id: 2,
    eos_token_id: 1,
    head_dim: 6,
    hidden_act: 'gelu',
    hidden_size: 16,
    initializer_range: 0.02,
    intermediate_size: 24,
    max_position_embeddings: 8192,
    model_type: 'gemma',
    num_attention_heads: 4,
    num_hidden_layers: 2,
    num_key_value_heads: 1,
    pad_token_id: 0,
    rms_norm_eps: 1e-6,
    rope_scaling: null,
    rope_theta: 10000.0,
    torch_dtype: 'bfloat16',
    transformers_version: '4.38.0.dev0',
    use_cache: true,
    vocab_size: 41,
    ...overrides,
  };
}

/** The sizes the reference forward needs, read from a config.json object independently of the package. */
export interface RefConfig {
  family: 'llama' | 'mistral' | 'gemma';
  vocab: number;
  hidden: number;
  inter: number;
  layers: number;
  heads: number;
  kvHeads: number;
  headDim: number;
  eps: number;
  theta: number;
  window: number | null;
  tied: boolean;
}

/** Reads a config.json object with transformers' defaults. */
export function refConfig(json: Record<string, unknown>): RefConfig {
  const arch = (json.architectures as string[])[0]!;
  const family = arch === 'GemmaForCausalLM' ? 'gemma' : arch === 'MistralForCausalLM' ? 'mistral' : 'llama';
  const hidden = json.hidden_size as number;
  const heads = json.num_attention_heads as number;
  return {
    family,
    vocab: json.vocab_size as number,
    hidden,
    inter: json.intermediate_size as number,
    layers: json.num_hidden_layers as number,
    heads,
    kvHeads: (json.num_key_value_heads as number | undefined) ?? heads,
    headDim: (json.head_dim as number | undefined) ?? hidden / heads,
    eps: (json.rms_norm_eps as number | undefined) ?? 1e-6,
    theta: (json.rope_theta as number | undefined) ?? 10000,
    window: family === 'mistral' ? ((json.sliding_window as number | null | undefined) ?? null) : null,
    tied: (json.tie_word_embeddings as boolean | undefined) ?? family === 'gemma',
  };
}

/** Weights by Hugging Face name: row-major float64 values and shape. */
export type RefWeights = Map<string, { values: Float64Array; shape: number[] }>;

/** Seeded weights for every tensor of `c` (norm weights near their neutral value, so they matter but stay tame). */
export function randomWeights(c: RefConfig, seed: number): RefWeights {
  const w: RefWeights = new Map();
  let s = seed;
  const add = (name: string, shape: number[], low: number, high: number) => {
    w.set(name, { values: randomValues(shape.reduce((a, b) => a * b, 1), s++, low, high), shape });
  };
  const normLow = c.family === 'gemma' ? -0.3 : 0.7;
  const normHigh = c.family === 'gemma' ? 0.3 : 1.3;
  add('model.embed_tokens.weight', [c.vocab, c.hidden], -1, 1);
  for (let l = 0; l < c.layers; l++) {
    const p = `model.layers.${l}`;
    const scale = (fanIn: number) => 1.5 / Math.sqrt(fanIn);
    add(`${p}.self_attn.q_proj.weight`, [c.heads * c.headDim, c.hidden], -scale(c.hidden), scale(c.hidden));
    add(`${p}.self_attn.k_proj.weight`, [c.kvHeads * c.headDim, c.hidden], -scale(c.hidden), scale(c.hidden));
    add(`${p}.self_attn.v_proj.weight`, [c.kvHeads * c.headDim, c.hidden], -scale(c.hidden), scale(c.hidden));
    add(`${p}.self_attn.o_proj.weight`, [c.hidden, c.heads * c.headDim], -scale(c.heads * c.headDim), scale(c.heads * c.headDim));
    add(`${p}.mlp.gate_proj.weight`, [c.inter, c.hidden], -scale(c.hidden), scale(c.hidden));
    add(`${p}.mlp.up_proj.weight`, [c.inter, c.hidden], -scale(c.hidden), scale(c.hidden));
    add(`${p}.mlp.down_proj.weight`, [c.hidden, c.inter], -scale(c.inter), scale(c.inter));
    add(`${p}.input_layernorm.weight`, [c.hidden], normLow, normHigh);
    add(`${p}.post_attention_layernorm.weight`, [c.hidden], normLow, normHigh);
  }
  add('model.norm.weight', [c.hidden], normLow, normHigh);
  if (!c.tied) add('lm_head.weight', [c.vocab, c.hidden], -0.5, 0.5);
  return w;
}

/** The weights as tensors of `dtype` (for the safetensors writer). */
export function weightTensors(w: RefWeights, dtype: DType = 'float32'): Map<string, Tensor> {
  return new Map([...w].map(([name, { values, shape }]) => [name, tensor(values, { shape, dtype })]));
}

/** Rounds each value to float32 (the weights as a float32 checkpoint stores them). */
export function roundedToFloat32(w: RefWeights): RefWeights {
  return new Map([...w].map(([name, { values, shape }]) => [name, { values: Float64Array.from(Float32Array.from(values)), shape }]));
}

/** A fresh temporary directory; `cleanup` removes it. */
export function tempDir(): { dir: string; cleanup: () => void } {
  const dir = mkdtempSync(join(tmpdir(), 'blora-llama-'));
  return { dir, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

/** Writes config.json and model.safetensors (the weights in `dtype`) into `dir`. */
export function writeCheckpoint(dir: string, json: Record<string, unknown>, w: RefWeights, dtype: DType = 'float32'): void {
  writeFileSync(join(dir, 'config.json'), JSON.stringify(json, null, 2));
  writeSafetensors(join(dir, 'model.safetensors'), weightTensors(w, dtype), { format: 'pt' });
}

// ---- the float64 reference forward ----

function rmsNormRef(x: Float64Array, weight: Float64Array, eps: number, offset: number): Float64Array {
  let ms = 0;
  for (const v of x) ms += v * v;
  const r = 1 / Math.sqrt(ms / x.length + eps);
  return x.map((v, i) => v * r * (offset + weight[i]!));
}

/** y[o] = sum_i W[o, i] x[i]. */
function linearRef(x: Float64Array, w: { values: Float64Array; shape: number[] }): Float64Array {
  const [out, inF] = w.shape as [number, number];
  const y = new Float64Array(out);
  for (let o = 0; o < out; o++) {
    let s = 0;
    for (let i = 0; i < inF; i++) s += w.values[o * inF + i]! * x[i]!;
    y[o] = s;
  }
  return y;
}

/** Rotates one head vector (rotate_half layout) for position p. */
function ropeRef(v: Float64Array, p: number, theta: number): Float64Array {
  const dh = v.length;
  const half = dh / 2;
  const out = new Float64Array(dh);
  for (let i = 0; i < half; i++) {
    const angle = p * Math.pow(theta, (-2 * i) / dh);
    const c = Math.cos(angle);
    const s = Math.sin(angle);
    out[i] = v[i]! * c - v[i + half]! * s;
    out[i + half] = v[i + half]! * c + v[i]! * s;
  }
  return out;
}

const silu = (x: number) => x / (1 + Math.exp(-x));
const geluTanh = (x: number) => 0.5 * x * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (x + 0.044715 * x * x * x)));

/**
 * Logits `[B][T][V]` of the model described by `c` and `w` for `ids` (rows of equal length),
 * the first token at position `offset`. Plain loops in float64.
 */
export function referenceLogits(c: RefConfig, w: RefWeights, ids: number[][], offset = 0): number[][][] {
  const get = (name: string) => w.get(name)!;
  const norm = (x: Float64Array, name: string) => rmsNormRef(x, get(name).values, c.eps, c.family === 'gemma' ? 1 : 0);
  const act = c.family === 'gemma' ? geluTanh : silu;
  return ids.map((row) => {
    const t = row.length;
    // Embedding (Gemma scales by sqrt(hidden)).
    let h = row.map((id) => {
      const e = get('model.embed_tokens.weight').values.slice(id * c.hidden, (id + 1) * c.hidden);
      return c.family === 'gemma' ? e.map((v) => v * Math.sqrt(c.hidden)) : e;
    });
    for (let l = 0; l < c.layers; l++) {
      const p = `model.layers.${l}`;
      const a = h.map((x) => norm(x, `${p}.input_layernorm.weight`));
      const q = a.map((x) => linearRef(x, get(`${p}.self_attn.q_proj.weight`)));
      const k = a.map((x) => linearRef(x, get(`${p}.self_attn.k_proj.weight`)));
      const v = a.map((x) => linearRef(x, get(`${p}.self_attn.v_proj.weight`)));
      const headOf = (vec: Float64Array, head: number) => vec.slice(head * c.headDim, (head + 1) * c.headDim);
      const merged = Array.from({ length: t }, () => new Float64Array(c.heads * c.headDim));
      for (let head = 0; head < c.heads; head++) {
        const g = Math.floor(head / (c.heads / c.kvHeads));
        for (let i = 0; i < t; i++) {
          const qi = ropeRef(headOf(q[i]!, head), offset + i, c.theta);
          // Causal (j <= i) and, with a window, j > i - window.
          const visible: number[] = [];
          for (let j = 0; j <= i; j++) if (c.window === null || j > i - c.window) visible.push(j);
          const scores = visible.map((j) => {
            const kj = ropeRef(headOf(k[j]!, g), offset + j, c.theta);
            let s = 0;
            for (let d = 0; d < c.headDim; d++) s += qi[d]! * kj[d]!;
            return s / Math.sqrt(c.headDim);
          });
          const m = Math.max(...scores);
          const e = scores.map((s) => Math.exp(s - m));
          const z = e.reduce((x, y) => x + y, 0);
          for (let d = 0; d < c.headDim; d++) {
            let o = 0;
            visible.forEach((j, n) => (o += (e[n]! / z) * headOf(v[j]!, g)[d]!));
            merged[i]![head * c.headDim + d] = o;
          }
        }
      }
      h = h.map((x, i) => {
        const o = linearRef(merged[i]!, get(`${p}.self_attn.o_proj.weight`));
        return x.map((xv, d) => xv + o[d]!);
      });
      h = h.map((x) => {
        const m = norm(x, `${p}.post_attention_layernorm.weight`);
        const gate = linearRef(m, get(`${p}.mlp.gate_proj.weight`));
        const up = linearRef(m, get(`${p}.mlp.up_proj.weight`));
        const down = linearRef(gate.map((gv, i) => act(gv) * up[i]!), get(`${p}.mlp.down_proj.weight`));
        return x.map((xv, d) => xv + down[d]!);
      });
    }
    const head = c.tied ? get('model.embed_tokens.weight') : get('lm_head.weight');
    return h.map((x) => Array.from(linearRef(norm(x, 'model.norm.weight'), head)));
  });
}

/** Mean next-token cross-entropy of reference logits against labels (skipping -100), in float64. */
export function referenceLoss(logits: number[][][], labels: number[][]): number {
  let sum = 0;
  let count = 0;
  logits.forEach((rows, b) => {
    for (let t = 0; t + 1 < rows.length; t++) {
      const target = labels[b]![t + 1]!;
      if (target === -100) continue;
      const row = rows[t]!;
      const m = Math.max(...row);
      const lse = m + Math.log(row.reduce((a, x) => a + Math.exp(x - m), 0));
      sum += lse - row[target]!;
      count++;
    }
  });
  return count === 0 ? 0 : sum / count;
}

/** Log-softmax of one reference logits row, at `target`. */
export function referenceLogProb(row: number[], target: number): number {
  const m = Math.max(...row);
  return row[target]! - m - Math.log(row.reduce((a, x) => a + Math.exp(x - m), 0));
}
