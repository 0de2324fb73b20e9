// Adapter files in PEFT's layout: a directory with adapter_config.json (LoraConfig's fields)
// and adapter_model.safetensors with tensors named
//   base_model.model.<module path>.lora_A.weight   [rank, in/λin]
//   base_model.model.<module path>.lora_B.weight   [out/λout, rank]
//   base_model.model.<module path>.lora_M.weight   [out/λ2, in/λ1]   (QA-BLoRA matrix form)
// A plain LoRA adapter is exactly what PEFT writes and reads. Q-BLoRA / QA-BLoRA add their
// settings under the config key "blora"; PEFT cannot run those (its LoRA has no pooling).
import { existsSync, mkdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { formatShape, SafetensorsReader, writeSafetensors, type Tensor } from '@blora/tensor';
import { assignInPlace, type Module } from '@blora/autograd';
import { ADAPTER_METHODS, type AdapterForm, type AdapterMethod } from './adapters/adapter.js';
import { resolveAdapterConfig, type AdapterConfig } from './adapters/config.js';
import { attachAdapters, type AttachedAdapters, type AttachOptions } from './attach.js';
import { writeFileAtomic as writeFileAtomicSynced } from './train/files.js';

/** File name of the config in an adapter directory. */
export const ADAPTER_CONFIG_NAME = 'adapter_config.json';
/** File name of the tensors in an adapter directory. */
export const ADAPTER_WEIGHTS_NAME = 'adapter_model.safetensors';
/** Prefix PEFT puts before module paths in tensor names. */
export const PEFT_PREFIX = 'base_model.model.';
/** Version of the "blora" config section. */
export const BLORA_CONFIG_VERSION = 1;

/** The "blora" section of adapter_config.json for Q-BLoRA / QA-BLoRA adapters. */
export interface BloraConfigSection {
  method: AdapterMethod;
  lambda_in: number;
  lambda_out: number;
  form: AdapterForm;
  /** Rank of B·A relative to r: always λin (B·A has rank r · λin). */
  rank_multiplier: number;
  version: number;
}

/** Options of `saveAdapter`. */
export interface SaveAdapterOptions {
  /** PEFT's base_model_name_or_path (default null). */
  baseModelNameOrPath?: string | null;
  /** PEFT's revision (default null). */
  revision?: string | null;
  /** PEFT's task_type (default 'CAUSAL_LM'). */
  taskType?: string | null;
}

/** Full tensor name in an adapter file: `base_model.model.<path>.<suffix>`. */
export function peftTensorName(modulePath: string, suffix: string): string {
  return `${PEFT_PREFIX}${modulePath}.${suffix}`;
}

/** The adapter tensors of `attached` under their file names. */
export function adapterTensors(attached: AttachedAdapters): Map<string, Tensor> {
  const out = new Map<string, Tensor>();
  for (const [path, layer] of attached.layers) {
    for (const [suffix, t] of Object.entries(layer.adapter.fileTensors())) out.set(peftTensorName(path, suffix), t);
  }
  return out;
}

/**
 * The adapter_config.json object of `attached`: PEFT's LoraConfig fields (the set PEFT 0.7+
 * writes and reads), plus a "blora" section for Q-BLoRA / QA-BLoRA.
 */
export function adapterConfigJson(attached: AttachedAdapters, options: SaveAdapterOptions = {}): Record<string, unknown> {
  const c = attached.config;
  const json: Record<string, unknown> = {
    alpha_pattern: { ...c.alphaPattern },
    auto_mapping: null,
    base_model_name_or_path: options.baseModelNameOrPath ?? null,
    bias: 'none',
    fan_in_fan_out: false,
    inference_mode: true,
    init_lora_weights: true,
    layers_pattern: c.layersPattern === null ? null : typeof c.layersPattern === 'string' ? c.layersPattern : [...c.layersPattern],
    layers_to_transform: c.layersToTransform === null ? null : typeof c.layersToTransform === 'number' ? c.layersToTransform : [...c.layersToTransform],
    lora_alpha: c.alpha,
    lora_dropout: c.dropout,
    modules_to_save: null,
    peft_type: 'LORA',
    r: c.r,
    rank_pattern: { ...c.rankPattern },
    revision: options.revision ?? null,
    target_modules: typeof attached.targetModules === 'string' ? attached.targetModules : [...attached.targetModules],
    task_type: options.taskType === undefined ? 'CAUSAL_LM' : options.taskType,
    use_rslora: c.useRslora,
  };
  if (c.excludeModules !== null) json.exclude_modules = typeof c.excludeModules === 'string' ? c.excludeModules : [...c.excludeModules];
  if (c.method !== 'lora') {
    const section: BloraConfigSection = {
      method: c.method, lambda_in: c.lambdaIn, lambda_out: c.lambdaOut, form: c.form, rank_multiplier: c.lambdaIn, version: BLORA_CONFIG_VERSION,
    };
    json.blora = section;
  }
  return json;
}

/**
 * Writes `text` to `path` atomically: a hidden temporary file in the same directory, flushed,
 * then renamed over `path`; on failure the temporary file is removed and `path` is untouched.
 */
export function writeFileAtomic(path: string, text: string): void {
  writeFileAtomicSynced(path, text);
}

/**
 * Saves the adapters of `attached` to directory `dir` (created if needed) as
 * adapter_config.json + adapter_model.safetensors, each written atomically. Returns the two paths.
 */
export function saveAdapter(dir: string, attached: AttachedAdapters, options: SaveAdapterOptions = {}): { config: string; weights: string } {
  attached.assertAttached('saveAdapter');
  mkdirSync(dir, { recursive: true });
  const weights = join(dir, ADAPTER_WEIGHTS_NAME);
  const config = join(dir, ADAPTER_CONFIG_NAME);
  writeSafetensors(weights, adapterTensors(attached), { format: 'pt' });
  writeFileAtomic(config, `${JSON.stringify(sortKeys(adapterConfigJson(attached, options)), null, 2)}\n`);
  return { config, weights };
}

function sortKeys(o: Record<string, unknown>): Record<string, unknown> {
  return Object.fromEntries(Object.keys(o).sort().map((k) => [k, o[k]]));
}

// PEFT settings this package does not implement: loading them would silently change the meaning.
const UNSUPPORTED: readonly [string, (v: unknown) => boolean, string][] = [
  ['fan_in_fan_out', (v) => v === true, 'transposed (Conv1D) weights'],
  ['bias', (v) => v !== undefined && v !== null && v !== 'none', 'trained biases'],
  ['modules_to_save', (v) => Array.isArray(v) && v.length > 0, 'fully trained extra modules'],
  ['use_dora', (v) => v === true, 'DoRA'],
  ['lora_bias', (v) => v === true, 'a bias on lora_B'],
  ['layer_replication', (v) => v !== undefined && v !== null, 'layer replication'],
  ['use_qalora', (v) => v === true, "PEFT's QA-LoRA"],
  ['target_parameters', (v) => Array.isArray(v) && v.length > 0, 'parameter targets'],
  ['trainable_token_indices', (v) => v !== undefined && v !== null, 'trainable tokens'],
];

function fail(label: string, message: string): never {
  throw new Error(`${label}: ${message}`);
}

/** A JSON value for an error message: cut to 80 characters, and safe for any nesting depth. */
function show(value: unknown): string {
  if (typeof value === 'number') return String(value); // JSON.stringify writes Infinity (1e400 in a file) as null
  let text: string | undefined;
  try {
    text = JSON.stringify(value);
  } catch {
    text = undefined; // nested too deeply to print
  }
  text ??= Array.isArray(value) ? '[...]' : value !== null && typeof value === 'object' ? '{...}' : String(value);
  return text.length > 80 ? `${text.slice(0, 77)}...` : text;
}

/** Throws naming `key` unless `pattern` compiles as the regular expression it is used in. */
function checkPattern(label: string, key: string, pattern: string, wrap: (p: string) => string = (p) => p): void {
  try {
    new RegExp(wrap(pattern));
  } catch (e) {
    fail(label, `${key} holds an invalid regular expression ${show(pattern)} (${(e as Error).message})`);
  }
}

/**
 * Reads an adapter_config.json object (PEFT's fields, plus our "blora" section) into an
 * `AdapterConfig`. Everything is checked here, naming the field and the value, so a config
 * that parses also resolves (see `resolveAdapterConfig`).
 */
export function adapterConfigFromJson(json: unknown, label = ADAPTER_CONFIG_NAME): AdapterConfig {
  if (json === null || typeof json !== 'object' || Array.isArray(json)) fail(label, 'expected a JSON object');
  const c = json as Record<string, unknown>;
  if (c.peft_type !== 'LORA') fail(label, `peft_type must be "LORA", got ${show(c.peft_type)}`);
  for (const [key, isSet, what] of UNSUPPORTED) {
    if (isSet(c[key])) fail(label, `${key} = ${show(c[key])} asks for ${what}, which this package does not support`);
  }
  const stringList = (key: string, allowString: boolean): readonly string[] | string | null => {
    const v = c[key];
    if (v === undefined || v === null) return null;
    if (allowString && typeof v === 'string') return v;
    if (Array.isArray(v) && v.every((x) => typeof x === 'string')) return v as string[];
    return fail(label, `${key} must be a list of strings${allowString ? ' or a string' : ''}, got ${show(v)}`);
  };
  const numberMap = (key: string): Record<string, number> => {
    const v = c[key] ?? {};
    if (typeof v !== 'object' || v === null || Array.isArray(v) || !Object.values(v).every((x) => typeof x === 'number')) {
      fail(label, `${key} must map module patterns to numbers, got ${show(v)}`);
    }
    for (const pattern of Object.keys(v)) checkPattern(label, key, pattern, (p) => `(.*\\.)?(${p})`);
    return v as Record<string, number>;
  };
  // Only the type of a number is checked here; resolveAdapterConfig (below) checks its range.
  const optionalNumber = (key: string, value: unknown): number | undefined => {
    if (value === undefined || value === null) return undefined;
    if (typeof value !== 'number') fail(label, `${key} must be a number, got ${show(value)}`);
    return value;
  };
  const targets = stringList('target_modules', true);
  if (targets === null) fail(label, 'target_modules is missing; name the adapted modules explicitly');
  if (typeof targets === 'string') checkPattern(label, 'target_modules', targets);
  const excluded = stringList('exclude_modules', true);
  if (typeof excluded === 'string') checkPattern(label, 'exclude_modules', excluded);
  const layersPattern = stringList('layers_pattern', true);
  for (const p of typeof layersPattern === 'string' ? [layersPattern] : layersPattern ?? []) checkPattern(label, 'layers_pattern', p);
  const layers = c.layers_to_transform;
  if (!(layers === undefined || layers === null || Number.isInteger(layers) || (Array.isArray(layers) && layers.every(Number.isInteger)))) {
    fail(label, `layers_to_transform must be an integer or a list of integers, got ${show(layers)}`);
  }
  if (c.use_rslora !== undefined && c.use_rslora !== null && typeof c.use_rslora !== 'boolean') {
    fail(label, `use_rslora must be true or false, got ${show(c.use_rslora)}`);
  }
  const config: AdapterConfig = {
    method: 'lora',
    useRslora: c.use_rslora === true,
    targetModules: targets,
    excludeModules: excluded,
    layersToTransform: (layers ?? null) as number | number[] | null,
    layersPattern,
    rankPattern: numberMap('rank_pattern'),
    alphaPattern: numberMap('alpha_pattern'),
  };
  const r = optionalNumber('r', c.r);
  const alpha = optionalNumber('lora_alpha', c.lora_alpha);
  const dropout = optionalNumber('lora_dropout', c.lora_dropout);
  if (r !== undefined) config.r = r;
  if (alpha !== undefined) config.alpha = alpha;
  if (dropout !== undefined) config.dropout = dropout;
  const b = c.blora;
  if (b !== undefined && b !== null) {
    if (typeof b !== 'object' || Array.isArray(b)) fail(label, `"blora" must be an object, got ${show(b)}`);
    const s = b as Record<string, unknown>;
    if (!ADAPTER_METHODS.includes(s.method as AdapterMethod)) fail(label, `blora.method must be one of ${ADAPTER_METHODS.join(', ')}, got ${show(s.method)}`);
    const version = optionalNumber('blora.version', s.version);
    if (version !== undefined && version > BLORA_CONFIG_VERSION) fail(label, `blora.version ${version} is newer than this package reads (${BLORA_CONFIG_VERSION})`);
    const lambdaIn = optionalNumber('blora.lambda_in', s.lambda_in);
    const lambdaOut = optionalNumber('blora.lambda_out', s.lambda_out);
    const multiplier = optionalNumber('blora.rank_multiplier', s.rank_multiplier);
    if (multiplier !== undefined && multiplier !== lambdaIn) {
      fail(label, `blora.rank_multiplier ${multiplier} differs from lambda_in ${show(lambdaIn)}; this package builds B·A of rank r · λin`);
    }
    if (s.form !== undefined && s.form !== 'factors' && s.form !== 'matrix') fail(label, `blora.form must be "factors" or "matrix", got ${show(s.form)}`);
    config.method = s.method as AdapterMethod;
    if (s.method !== 'lora') {
      if (lambdaIn !== undefined) config.lambdaIn = lambdaIn;
      if (lambdaOut !== undefined) config.lambdaOut = lambdaOut;
      if (s.form !== undefined) config.form = s.form as AdapterForm;
    }
  }
  try {
    resolveAdapterConfig(config);
  } catch (e) {
    fail(label, (e as Error).message);
  }
  return config;
}

/** Reads and parses `dir`/adapter_config.json. */
export function readAdapterConfig(dir: string): AdapterConfig {
  const path = join(dir, ADAPTER_CONFIG_NAME);
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    return fail(path, `cannot read (${(e as Error).message})`);
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    return fail(path, `not valid JSON (${(e as Error).message})`);
  }
  return adapterConfigFromJson(json, path);
}

/** Options of `loadAdapter`. */
export type LoadAdapterOptions = AttachOptions;

/**
 * Loads the adapter in `dir` (PEFT layout: a PEFT LoRA adapter, or one saved by `saveAdapter`)
 * onto `model`: attaches adapters as its config says, then fills them from the safetensors
 * file. Every tensor must match a selected layer by name and shape; otherwise nothing is left
 * attached and the error names the layer and the shapes. Adapters load frozen and in eval mode
 * (no dropout) unless `trainable` is true (as PEFT's `is_trainable`).
 */
export function loadAdapter(dir: string, model: Module, options: LoadAdapterOptions = {}): AttachedAdapters {
  if (!existsSync(dir) || !statSync(dir).isDirectory()) fail(dir, 'not an adapter directory');
  const config = readAdapterConfig(dir);
  const weightsPath = join(dir, ADAPTER_WEIGHTS_NAME);
  if (!existsSync(weightsPath)) fail(weightsPath, 'missing (an adapter directory holds adapter_config.json and adapter_model.safetensors)');
  let attached: AttachedAdapters;
  try {
    attached = attachAdapters(model, config, { ...options, trainable: options.trainable ?? false });
  } catch (e) {
    return fail(dir, `the adapter does not fit the model: ${(e as Error).message}`);
  }
  const reader = SafetensorsReader.open(weightsPath);
  try {
    const expected = adapterTensors(attached);
    const names = new Set(reader.names());
    const missing = [...expected.keys()].filter((n) => !names.has(n));
    const unexpected = [...names].filter((n) => !expected.has(n));
    const problems: string[] = [];
    if (missing.length) problems.push(`missing tensors ${list(missing)}`);
    if (unexpected.length) problems.push(`tensors for no adapted layer ${list(unexpected)}`);
    for (const [name, param] of expected) {
      const entry = reader.entries.get(name);
      if (entry && (entry.shape.length !== param.rank || entry.shape.some((d, i) => d !== param.shape[i]))) {
        const layer = name.slice(PEFT_PREFIX.length, name.lastIndexOf('.', name.lastIndexOf('.') - 1));
        const adapter = attached.layers.get(layer)?.adapter;
        problems.push(`'${name}' has shape ${formatShape(entry.shape)} but layer '${layer}' (${adapter?.describe() ?? '?'}) expects ${formatShape(param.shape)}`);
      }
    }
    if (problems.length) fail(weightsPath, `does not match the model and ${ADAPTER_CONFIG_NAME}: ${problems.join('; ')}`);
    for (const [name, param] of expected) {
      const t = reader.readTensor(name, { dtype: param.dtype, device: param.device });
      assignInPlace(param, t);
      t.dispose();
    }
  } catch (e) {
    attached.detach();
    throw e;
  } finally {
    reader.close();
  }
  // Frozen adapters are for inference: no dropout.
  if (!(options.trainable ?? false)) for (const layer of attached.layers.values()) layer.adapter.eval();
  return attached;
}

function list(names: readonly string[], n = 6): string {
  const shown = names.slice(0, n).map((x) => `'${x}'`).join(', ');
  return names.length > n ? `${shown}, ... (${names.length} in all)` : shown;
}
