// Hugging Face `config.json` of Llama-family checkpoints: parsing, defaults as the transformers
// config classes define them, and validation with errors that name the offending field.
import { readFileSync } from 'node:fs';
import type { DType } from '@blora/tensor';
import { jsonDepth, MAX_JSON_DEPTH } from '../json-depth.js';

/** The model classes (the `architectures` field of config.json) this package can build. */
export const SUPPORTED_ARCHITECTURES = ['LlamaForCausalLM', 'MistralForCausalLM', 'GemmaForCausalLM'] as const;

/** One of `SUPPORTED_ARCHITECTURES`. */
export type LlamaArchitecture = (typeof SUPPORTED_ARCHITECTURES)[number];

/** Architecture family: decides the defaults and the few places where the forward differs. */
export type LlamaFamily = 'llama' | 'mistral' | 'gemma';

/** The MLP's gate activation: `silu` (SwiGLU), `gelu_tanh` (GeGLU, tanh approximation) or exact `gelu`. */
export type MlpActivation = 'silu' | 'gelu_tanh' | 'gelu';

/** RoPE frequency scaling (`rope_scaling` in config.json). */
export type RopeScaling =
  | { type: 'linear'; factor: number }
  | { type: 'llama3'; factor: number; lowFreqFactor: number; highFreqFactor: number; originalMaxPositionEmbeddings: number };

/** The JSON object of a config.json file. */
export type ConfigJson = Record<string, unknown>;

/** A validated Llama-family configuration (camel-cased, defaults filled in). */
export interface LlamaConfig {
  /** The model class named in `architectures`. */
  architecture: LlamaArchitecture;
  /** `llama`, `mistral` or `gemma` (from the architecture). */
  family: LlamaFamily;
  vocabSize: number;
  hiddenSize: number;
  intermediateSize: number;
  numHiddenLayers: number;
  numAttentionHeads: number;
  /** Key/value heads (grouped-query attention); equals `numAttentionHeads` without GQA. */
  numKeyValueHeads: number;
  /** Per-head size: `head_dim` when given, else hiddenSize / numAttentionHeads. */
  headDim: number;
  rmsNormEps: number;
  ropeTheta: number;
  ropeScaling: RopeScaling | null;
  maxPositionEmbeddings: number;
  /** Mistral's attention window (a query sees this many keys, itself included); null = unlimited. */
  slidingWindow: number | null;
  hiddenAct: MlpActivation;
  /** The output projection shares the embedding table (no `lm_head.weight` stored). */
  tieWordEmbeddings: boolean;
  /** Standard deviation of the normal initialisation of fresh weights. */
  initializerRange: number;
  bosTokenId: number | null;
  /** End-of-sequence ids (config.json allows one id or a list). */
  eosTokenIds: number[];
  padTokenId: number | null;
  /** `torch_dtype` of the stored weights, when the config names a float dtype we know. */
  torchDType: DType | null;
  /** The JSON the config came from (unknown fields are preserved when saving). */
  raw: ConfigJson;
}

/** An invalid or unsupported config.json; the message names the file and the field. */
export class LlamaConfigError extends Error {
  override readonly name = 'LlamaConfigError';
}

const FAMILY_OF: Readonly<Record<LlamaArchitecture, LlamaFamily>> = {
  LlamaForCausalLM: 'llama',
  MistralForCausalLM: 'mistral',
  GemmaForCausalLM: 'gemma',
};

/** The transformers config classes' defaults for the optional fields, per family. */
const DEFAULTS: Readonly<Record<LlamaFamily, {
  maxPositionEmbeddings: number; slidingWindow: number | null; tie: boolean; bos: number; eos: number; pad: number | null;
}>> = {
  llama: { maxPositionEmbeddings: 2048, slidingWindow: null, tie: false, bos: 1, eos: 2, pad: null },
  mistral: { maxPositionEmbeddings: 4096 * 32, slidingWindow: 4096, tie: false, bos: 1, eos: 2, pad: null },
  gemma: { maxPositionEmbeddings: 8192, slidingWindow: null, tie: true, bos: 2, eos: 1, pad: 0 },
};

/** `hidden_act` spellings of transformers' activation table that this package implements. */
const ACTIVATIONS: Readonly<Record<string, MlpActivation>> = {
  silu: 'silu',
  swish: 'silu',
  gelu_pytorch_tanh: 'gelu_tanh',
  gelu_new: 'gelu_tanh',
  gelu_fast: 'gelu_tanh',
  gelu: 'gelu',
};

const TORCH_DTYPES: Readonly<Record<string, DType>> = {
  float32: 'float32',
  float16: 'float16',
  bfloat16: 'bfloat16',
  float64: 'float64',
};

/** `table[key]` when `key` is a string naming an own entry (never an inherited one such as 'constructor'). */
function lookup<T>(table: Readonly<Record<string, T>>, key: unknown): T | undefined {
  return typeof key === 'string' && Object.hasOwn(table, key) ? table[key] : undefined;
}

/**
 * Limits that stop a damaged or hostile config.json before anything is allocated from it:
 * far above any released model (the largest have about 126 layers and 2.1e9-element
 * embedding tables), far below what would exhaust memory or loop for hours.
 */
export const CONFIG_LIMITS = {
  /** Most decoder layers. */
  maxLayers: 1024,
  /** Most elements of one weight tensor (the longest typed array Node.js 20 allocates). */
  maxTensorElements: 2 ** 32,
} as const;

/** Reads a field with checks; every error names the source and the field. */
class FieldReader {
  constructor(readonly json: ConfigJson, readonly source: string) {}

  fail(field: string, message: string): never {
    throw new LlamaConfigError(`${this.source}: field '${field}' ${message}`);
  }

  has(field: string): boolean {
    return this.json[field] !== undefined && this.json[field] !== null;
  }

  positiveInt(field: string, fallback?: number): number {
    const v = this.json[field];
    if (v === undefined || v === null) {
      if (fallback === undefined) this.fail(field, 'is missing (a positive integer is required)');
      return fallback;
    }
    if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 1) this.fail(field, `must be a positive integer, got ${show(v)}`);
    return v;
  }

  positiveNumber(field: string, fallback: number): number {
    const v = this.json[field];
    if (v === undefined || v === null) return fallback;
    if (typeof v !== 'number' || !Number.isFinite(v) || v <= 0) this.fail(field, `must be a positive number, got ${show(v)}`);
    return v;
  }

  boolean(field: string, fallback: boolean): boolean {
    const v = this.json[field];
    if (v === undefined || v === null) return fallback;
    if (typeof v !== 'boolean') this.fail(field, `must be true or false, got ${show(v)}`);
    return v;
  }

  tokenId(field: string, fallback: number | null): number | null {
    if (!(field in this.json)) return fallback;
    const v = this.json[field];
    if (v === null) return null;
    if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0) this.fail(field, `must be a non-negative integer or null, got ${show(v)}`);
    return v;
  }

  tokenIds(field: string, fallback: number): number[] {
    if (!(field in this.json)) return [fallback];
    const v = this.json[field];
    if (v === null) return [];
    const list = Array.isArray(v) ? v : [v];
    for (const id of list) {
      if (typeof id !== 'number' || !Number.isSafeInteger(id) || id < 0) {
        this.fail(field, `must be a non-negative integer, a list of them, or null; got ${show(v)}`);
      }
    }
    return list as number[];
  }
}

function show(v: unknown): string {
  if (typeof v === 'number') return String(v); // JSON.stringify writes Infinity (1e400 in a file) as null
  const s = JSON.stringify(v);
  return s === undefined ? String(v) : s.length > 80 ? `${s.slice(0, 77)}...` : s;
}

function readArchitecture(f: FieldReader): LlamaArchitecture {
  const supported = SUPPORTED_ARCHITECTURES.join(', ');
  const value = f.json.architectures;
  if (value === undefined || value === null) {
    f.fail('architectures', `is missing; expected a list naming one of ${supported}`);
  }
  if (!Array.isArray(value) || value.length === 0 || !value.every((a) => typeof a === 'string')) {
    f.fail('architectures', `must be a non-empty list of class names, got ${show(value)}`);
  }
  const found = (value as string[]).find((a): a is LlamaArchitecture => (SUPPORTED_ARCHITECTURES as readonly string[]).includes(a));
  if (!found) {
    f.fail('architectures', `names ${show(value)}, which is not supported; supported architectures: ${supported}`);
  }
  return found;
}

function readActivation(f: FieldReader, family: LlamaFamily): MlpActivation {
  // transformers' Gemma uses `hidden_activation` and, when it is absent, always the tanh GELU
  // (early Gemma configs say "gelu" in `hidden_act`, which the model overrides).
  const field = family === 'gemma' ? 'hidden_activation' : 'hidden_act';
  if (!f.has(field)) return family === 'gemma' ? 'gelu_tanh' : 'silu';
  const name = f.json[field];
  const act = lookup(ACTIVATIONS, name);
  if (!act) f.fail(field, `names an unsupported activation ${show(name)}; supported: ${Object.keys(ACTIVATIONS).join(', ')}`);
  return act;
}

function readRopeScaling(f: FieldReader): RopeScaling | null {
  const field = 'rope_scaling';
  const v = f.json[field];
  if (v === undefined || v === null) return null;
  if (typeof v !== 'object' || Array.isArray(v)) f.fail(field, `must be an object or null, got ${show(v)}`);
  const s = v as Record<string, unknown>;
  const type = s.rope_type ?? s.type;
  const number = (key: string): number => {
    const x = s[key];
    if (typeof x !== 'number' || !Number.isFinite(x) || x <= 0) f.fail(field, `needs a positive number '${key}', got ${show(x)}`);
    return x;
  };
  if (type === 'default') return null;
  if (type === 'linear') return { type, factor: number('factor') };
  if (type === 'llama3') {
    const scaling: RopeScaling = {
      type,
      factor: number('factor'),
      lowFreqFactor: number('low_freq_factor'),
      highFreqFactor: number('high_freq_factor'),
      originalMaxPositionEmbeddings: number('original_max_position_embeddings'),
    };
    if (scaling.highFreqFactor <= scaling.lowFreqFactor) f.fail(field, 'needs high_freq_factor > low_freq_factor');
    return scaling;
  }
  return f.fail(field, `has rope type ${show(type)}, which is not supported; supported: default, linear, llama3`);
}

/**
 * Rejects sizes whose weight tensors could not be allocated. The error blames the larger of
 * the two fields that make the tensor too big.
 */
function checkTensorSizes(f: FieldReader, c: Pick<LlamaConfig,
  'vocabSize' | 'hiddenSize' | 'intermediateSize' | 'numAttentionHeads' | 'numKeyValueHeads' | 'headDim'>): void {
  const heads = (field: string, count: number): [string, number] => (c.headDim > count ? ['head_dim', c.headDim] : [field, count]);
  const tensors: [string, number, number, [string, number]][] = [
    ['model.embed_tokens.weight', c.vocabSize, c.hiddenSize, ['vocab_size', c.vocabSize]],
    ['mlp.gate_proj.weight', c.intermediateSize, c.hiddenSize, ['intermediate_size', c.intermediateSize]],
    ['self_attn.q_proj.weight', c.numAttentionHeads * c.headDim, c.hiddenSize, heads('num_attention_heads', c.numAttentionHeads)],
    ['self_attn.k_proj.weight', c.numKeyValueHeads * c.headDim, c.hiddenSize, heads('num_key_value_heads', c.numKeyValueHeads)],
  ];
  for (const [name, rows, cols, [rowField, rowFactor]] of tensors) {
    if (rows * cols <= CONFIG_LIMITS.maxTensorElements) continue;
    const field = c.hiddenSize > rowFactor ? 'hidden_size' : rowField;
    f.fail(field, `makes ${name} [${rows}, ${cols}] hold ${rows * cols} elements, more than the limit of ${CONFIG_LIMITS.maxTensorElements}`);
  }
}

/**
 * Validates the JSON of a config.json and fills in the defaults of the transformers config
 * class of its architecture. `source` (a path or label) starts every error message.
 * Throws `LlamaConfigError` naming the field for anything missing, malformed or unsupported.
 */
export function parseLlamaConfig(json: unknown, source = 'config.json'): LlamaConfig {
  if (json === null || typeof json !== 'object' || Array.isArray(json)) {
    throw new LlamaConfigError(`${source}: expected a JSON object, got ${Array.isArray(json) ? 'an array' : show(json)}`);
  }
  // The document is kept (raw) and written back later: refuse nesting that would overflow that walk.
  if (jsonDepth(json) > MAX_JSON_DEPTH) {
    throw new LlamaConfigError(`${source}: nested more than ${MAX_JSON_DEPTH} levels deep`);
  }
  const f = new FieldReader(json as ConfigJson, source);
  const architecture = readArchitecture(f);
  const family = FAMILY_OF[architecture];
  const modelType = f.json.model_type;
  if (modelType !== undefined && modelType !== family) {
    f.fail('model_type', `is ${show(modelType)}, but architecture ${architecture} has model_type "${family}"`);
  }
  for (const field of ['attention_bias', 'mlp_bias']) {
    if (f.boolean(field, false)) f.fail(field, 'is true: projections with a bias are not supported');
  }
  if (f.has('quantization_config')) {
    f.fail('quantization_config', 'is present: pre-quantized checkpoints are not supported; load the unquantized ' +
      'checkpoint and quantize it while loading');
  }
  const d = DEFAULTS[family];
  const hiddenSize = f.positiveInt('hidden_size');
  const numAttentionHeads = f.positiveInt('num_attention_heads');
  const numKeyValueHeads = f.positiveInt('num_key_value_heads', numAttentionHeads);
  if (numAttentionHeads % numKeyValueHeads !== 0) {
    f.fail('num_key_value_heads', `(${numKeyValueHeads}) must divide num_attention_heads (${numAttentionHeads})`);
  }
  if (!f.has('head_dim') && hiddenSize % numAttentionHeads !== 0) {
    f.fail('hidden_size', `(${hiddenSize}) must be a multiple of num_attention_heads (${numAttentionHeads}) when head_dim is not given`);
  }
  const headDim = f.positiveInt('head_dim', hiddenSize / numAttentionHeads);
  if (headDim % 2 !== 0) f.fail('head_dim', `must be even for rotary embeddings, got ${headDim}`);
  const ropeTheta = f.positiveNumber('rope_theta', 10000);
  const slidingWindow = family === 'mistral'
    ? (('sliding_window' in f.json) ? (f.json.sliding_window === null ? null : f.positiveInt('sliding_window')) : d.slidingWindow)
    : null;
  const vocabSize = f.positiveInt('vocab_size');
  const intermediateSize = f.positiveInt('intermediate_size');
  const numHiddenLayers = f.positiveInt('num_hidden_layers');
  if (numHiddenLayers > CONFIG_LIMITS.maxLayers) {
    f.fail('num_hidden_layers', `is ${numHiddenLayers}, more than the limit of ${CONFIG_LIMITS.maxLayers}`);
  }
  checkTensorSizes(f, { vocabSize, hiddenSize, intermediateSize, numAttentionHeads, numKeyValueHeads, headDim });
  return {
    architecture,
    family,
    vocabSize,
    hiddenSize,
    intermediateSize,
    numHiddenLayers,
    numAttentionHeads,
    numKeyValueHeads,
    headDim,
    rmsNormEps: f.positiveNumber('rms_norm_eps', 1e-6),
    ropeTheta,
    ropeScaling: readRopeScaling(f),
    maxPositionEmbeddings: f.positiveInt('max_position_embeddings', d.maxPositionEmbeddings),
    slidingWindow,
    hiddenAct: readActivation(f, family),
    tieWordEmbeddings: f.boolean('tie_word_embeddings', d.tie),
    initializerRange: f.positiveNumber('initializer_range', 0.02),
    bosTokenId: f.tokenId('bos_token_id', d.bos),
    eosTokenIds: f.tokenIds('eos_token_id', d.eos),
    padTokenId: f.tokenId('pad_token_id', d.pad),
    torchDType: lookup(TORCH_DTYPES, f.json.torch_dtype) ?? null,
    raw: { ...(json as ConfigJson) },
  };
}

/** The parsed JSON of a config.json file; errors name the file. */
export function readConfigJson(path: string): unknown {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    throw new LlamaConfigError(`${path}: cannot read (${(e as Error).message})`);
  }
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new LlamaConfigError(`${path}: not valid JSON (${(e as Error).message})`);
  }
}

/** Reads and validates a config.json file. */
export function readLlamaConfig(path: string): LlamaConfig {
  return parseLlamaConfig(readConfigJson(path), path);
}

/** The rope_scaling object of config.json for a scaling. */
function ropeScalingJson(s: RopeScaling | null): ConfigJson | null {
  if (s === null) return null;
  // `type` is the older spelling some transformers versions still read.
  if (s.type === 'linear') return { rope_type: 'linear', type: 'linear', factor: s.factor };
  return {
    rope_type: 'llama3',
    factor: s.factor,
    low_freq_factor: s.lowFreqFactor,
    high_freq_factor: s.highFreqFactor,
    original_max_position_embeddings: s.originalMaxPositionEmbeddings,
  };
}

/**
 * The config.json object for `config`: the fields it was read from (unknown ones kept), with
 * every field this package interprets written from the parsed values. `torchDType` overrides
 * `torch_dtype` (the dtype the weights are saved in).
 */
export function llamaConfigToJson(config: LlamaConfig, torchDType: DType | null = config.torchDType): ConfigJson {
  const out: ConfigJson = {
    ...config.raw,
    architectures: [config.architecture],
    model_type: config.family,
    vocab_size: config.vocabSize,
    hidden_size: config.hiddenSize,
    intermediate_size: config.intermediateSize,
    num_hidden_layers: config.numHiddenLayers,
    num_attention_heads: config.numAttentionHeads,
    num_key_value_heads: config.numKeyValueHeads,
    head_dim: config.headDim,
    rms_norm_eps: config.rmsNormEps,
    rope_theta: config.ropeTheta,
    rope_scaling: ropeScalingJson(config.ropeScaling),
    max_position_embeddings: config.maxPositionEmbeddings,
    tie_word_embeddings: config.tieWordEmbeddings,
    initializer_range: config.initializerRange,
    bos_token_id: config.bosTokenId,
    eos_token_id: config.eosTokenIds.length === 1 ? config.eosTokenIds[0] : config.eosTokenIds,
    pad_token_id: config.padTokenId,
  };
  const activation = config.hiddenAct === 'silu' ? 'silu' : config.hiddenAct === 'gelu' ? 'gelu' : 'gelu_pytorch_tanh';
  if (config.family === 'gemma') out.hidden_activation = activation;
  else out.hidden_act = activation;
  if (config.family === 'mistral') out.sliding_window = config.slidingWindow;
  if (torchDType) out.torch_dtype = torchDType;
  // Fresh configs get the flags transformers writes for these models.
  if (config.family !== 'mistral') out.attention_bias ??= false;
  if (config.family === 'llama') out.mlp_bias ??= false;
  out.use_cache ??= true;
  return out;
}

/** The fields of `LlamaConfig` a caller may set when building a config without a file. */
export type LlamaConfigInit = Partial<Omit<LlamaConfig, 'raw' | 'family'>> &
  Pick<LlamaConfig, 'vocabSize' | 'hiddenSize' | 'intermediateSize' | 'numHiddenLayers' | 'numAttentionHeads'>;

/**
 * Builds a validated config from camel-cased fields (for fresh models and tests), going
 * through the same checks and defaults as a config.json.
 */
export function llamaConfig(init: LlamaConfigInit): LlamaConfig {
  const architecture = init.architecture ?? 'LlamaForCausalLM';
  const family = FAMILY_OF[architecture] ?? 'llama';
  const base: LlamaConfig = {
    architecture,
    family,
    numKeyValueHeads: init.numAttentionHeads,
    headDim: init.headDim ?? init.hiddenSize / init.numAttentionHeads,
    rmsNormEps: 1e-6,
    ropeTheta: 10000,
    ropeScaling: null,
    maxPositionEmbeddings: DEFAULTS[family].maxPositionEmbeddings,
    slidingWindow: DEFAULTS[family].slidingWindow,
    hiddenAct: family === 'gemma' ? 'gelu_tanh' : 'silu',
    tieWordEmbeddings: DEFAULTS[family].tie,
    initializerRange: 0.02,
    bosTokenId: DEFAULTS[family].bos,
    eosTokenIds: [DEFAULTS[family].eos],
    padTokenId: DEFAULTS[family].pad,
    torchDType: null,
    ...init,
    raw: {},
  };
  return parseLlamaConfig(llamaConfigToJson(base), 'llamaConfig');
}
