// Checkpoints whose block projections are stored quantized: the `quantization_config` of
// config.json (bitsandbytes' 4-bit one, or this project's "blora-int" one for INT4/INT8 blocks
// with offsets), finding each stored weight's tensors, and reading them without dequantizing.
import type { DType } from '@blora/tensor';
import {
  FourBitLinear, IntBlockLinear, loadQuantized, quantizedFormatOf, QuantizedLinear, type QuantFormat,
} from '@blora/quant';
import { CheckpointError, type CheckpointFiles } from './checkpoint-files.js';
import { jsonDepth, MAX_JSON_DEPTH } from '../json-depth.js';
import { LlamaConfigError, parseLlamaConfig, readConfigJson, type ConfigJson, type LlamaConfig } from './config.js';
import type { LinearContext, LinearModule } from './layers.js';
import { ATTENTION_PROJECTIONS, MLP_PROJECTIONS, expectedTensors } from './model.js';

/** bitsandbytes 4-bit quantization as transformers records it (`quant_method: "bitsandbytes"`). */
export interface BnbFourBitConfig {
  method: 'bitsandbytes';
  /** `bnb_4bit_quant_type`. */
  quantType: 'nf4' | 'fp4';
  /** `bnb_4bit_use_double_quant`: the absmax values are quantized to 8 bits as well. */
  doubleQuant: boolean;
  /** `bnb_4bit_compute_dtype`. */
  computeDType: DType;
}

/** INT4 / INT8 blocks with a scale and an offset per block (`quant_method: "blora-int"`). */
export interface IntBlockConfig {
  method: 'blora-int';
  /** Code width. */
  bits: 4 | 8;
  /** Output rows per block. */
  blockRows: number;
  /** Input columns per block. */
  blockCols: number;
  /** Storage dtype of scales and offsets. */
  scaleDType: 'float16' | 'float32';
}

/** The quantization of a checkpoint, parsed from config.json's `quantization_config`. */
export type QuantizationConfig = BnbFourBitConfig | IntBlockConfig;

/** The `quant_method` of our INT block checkpoints. */
export const INT_QUANT_METHOD = 'blora-int';

/** Something holding a quantized weight (a frozen quantized base layer): saved in its stored form. */
export interface QuantizedWeightHolder {
  /** The quantized weight `[out, in]`. */
  readonly quantized: QuantizedLinear;
}

/** True when `m` holds a quantized weight (has a `quantized` field that is a `QuantizedLinear`). */
export function holdsQuantizedWeight(m: unknown): m is QuantizedWeightHolder {
  return m !== null && typeof m === 'object' && (m as { quantized?: unknown }).quantized instanceof QuantizedLinear;
}

/**
 * Makes the layer called `name` (e.g. `model.layers.0.mlp.up_proj`) from a weight stored
 * quantized in the checkpoint, read as it is (codes, scales and offsets untouched). The factory
 * owns the weight.
 */
export type QuantizedLinearFactory = (name: string, weight: QuantizedLinear, context: LinearContext) => LinearModule;

const COMPUTE_DTYPES: Readonly<Record<string, DType>> = { float32: 'float32', float16: 'float16', bfloat16: 'bfloat16' };

function configError(source: string, message: string): never {
  throw new LlamaConfigError(`${source}: field 'quantization_config' ${message}`);
}

/** A field value for a message: short, and safe for any nesting depth. */
function show(v: unknown): string {
  if (v !== null && typeof v === 'object' && jsonDepth(v, 8) > 8) return Array.isArray(v) ? '[...]' : '{...}';
  const text = typeof v === 'number' ? String(v) : (JSON.stringify(v) ?? String(v));
  return text.length > 80 ? `${text.slice(0, 77)}...` : text;
}

/**
 * Parses a `quantization_config` object. Supported: transformers' bitsandbytes 4-bit config
 * (nf4 or fp4, with or without double quantization, uint8 storage) and "blora-int". Anything
 * else (8-bit bitsandbytes, GPTQ, AWQ, other storage types, malformed fields) is a
 * `LlamaConfigError` naming the file and what is wrong.
 */
export function parseQuantizationConfig(value: unknown, source = 'config.json'): QuantizationConfig {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) configError(source, `must be an object, got ${show(value)}`);
  const q = value as Record<string, unknown>;
  const method = q.quant_method;
  if (method === 'bitsandbytes') {
    if (q.load_in_8bit === true) configError(source, 'asks for 8-bit bitsandbytes (LLM.int8), which is not supported; only 4-bit is');
    if (q.load_in_4bit !== true) configError(source, `is bitsandbytes without load_in_4bit true (got ${show(q.load_in_4bit)})`);
    const quantType = q.bnb_4bit_quant_type ?? 'fp4'; // transformers' default
    if (quantType !== 'nf4' && quantType !== 'fp4') configError(source, `has bnb_4bit_quant_type ${show(quantType)}; expected "nf4" or "fp4"`);
    const doubleQuant = q.bnb_4bit_use_double_quant ?? false;
    if (typeof doubleQuant !== 'boolean') configError(source, `has bnb_4bit_use_double_quant ${show(doubleQuant)}; expected true or false`);
    const storage = q.bnb_4bit_quant_storage ?? 'uint8';
    if (storage !== 'uint8') configError(source, `has bnb_4bit_quant_storage ${show(storage)}; only "uint8" packing is supported`);
    const compute = q.bnb_4bit_compute_dtype ?? 'float32';
    const computeDType = typeof compute === 'string' && Object.hasOwn(COMPUTE_DTYPES, compute) ? COMPUTE_DTYPES[compute]! : null;
    if (!computeDType) configError(source, `has bnb_4bit_compute_dtype ${show(compute)}; expected float32, float16 or bfloat16`);
    return { method, quantType, doubleQuant, computeDType };
  }
  if (method === INT_QUANT_METHOD) {
    const bits = q.bits;
    if (bits !== 4 && bits !== 8) configError(source, `has bits ${show(bits)}; expected 4 or 8`);
    const positive = (field: string): number => {
      const v = q[field];
      if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 1) configError(source, `has ${field} ${show(v)}; expected a positive integer`);
      return v;
    };
    const scaleDType = q.scale_dtype;
    if (scaleDType !== 'float16' && scaleDType !== 'float32') {
      configError(source, `has scale_dtype ${show(scaleDType)}; expected "float16" or "float32"`);
    }
    return { method, bits, blockRows: positive('block_rows'), blockCols: positive('block_cols'), scaleDType };
  }
  return configError(source, `names quant_method ${show(method)}, which is not supported; supported: ` +
    `"bitsandbytes" (4-bit nf4 / fp4) and "${INT_QUANT_METHOD}" (INT4 / INT8 blocks)`);
}

/**
 * The `quantization_config` object for `config`. bitsandbytes: the fields of transformers'
 * `BitsAndBytesConfig.to_dict()` for a 4-bit model, except `llm_int8_threshold` (transformers
 * checks it is a Python float, and JSON written from JavaScript would give the integer 6; its
 * default 6.0 applies).
 */
export function quantizationConfigJson(config: QuantizationConfig): ConfigJson {
  if (config.method === 'bitsandbytes') {
    return {
      quant_method: 'bitsandbytes',
      _load_in_4bit: true,
      _load_in_8bit: false,
      llm_int8_skip_modules: null,
      llm_int8_enable_fp32_cpu_offload: false,
      llm_int8_has_fp16_weight: false,
      bnb_4bit_quant_type: config.quantType,
      bnb_4bit_use_double_quant: config.doubleQuant,
      bnb_4bit_compute_dtype: config.computeDType,
      bnb_4bit_quant_storage: 'uint8',
      load_in_4bit: true,
      load_in_8bit: false,
    };
  }
  return {
    quant_method: INT_QUANT_METHOD,
    bits: config.bits,
    block_rows: config.blockRows,
    block_cols: config.blockCols,
    scale_dtype: config.scaleDType,
  };
}

/** The quantization config describing one weight (`computeDType` for bitsandbytes). */
function configOfWeight(q: QuantizedLinear, computeDType: DType): QuantizationConfig {
  if (q instanceof FourBitLinear) return { method: 'bitsandbytes', quantType: q.format, doubleQuant: q.doubleQuant !== null, computeDType };
  if (q instanceof IntBlockLinear) return { method: INT_QUANT_METHOD, bits: q.bits, blockRows: q.blockRows, blockCols: q.blockCols, scaleDType: q.scaleDType };
  throw new TypeError(`cannot store ${q.describe()} in a checkpoint`);
}

/**
 * The one quantization config that describes every weight of `weights` (by layer name), or
 * null when there are none. Layers must agree (one format, one set of block settings; NF4
 * blocksizes may differ, as bitsandbytes records them per weight); the error names two that do not.
 */
export function quantizationConfigOf(weights: ReadonlyMap<string, QuantizedLinear>, computeDType: DType): QuantizationConfig | null {
  let first: [string, QuantizationConfig, string] | null = null;
  for (const [name, q] of weights) {
    const config = configOfWeight(q, computeDType);
    const key = JSON.stringify(quantizationConfigJson(config));
    if (!first) first = [name, config, key];
    else if (key !== first[2]) {
      throw new Error(`cannot write one quantization_config for layers stored differently: '${first[0]}' is ` +
        `${weights.get(first[0])!.describe()}, '${name}' is ${q.describe()}`);
    }
  }
  return first ? first[1] : null;
}

/**
 * Reads config.json: the model config (validated as `parseLlamaConfig` does) and, when the
 * file has a `quantization_config`, its parsed quantization. The model config's `raw` keeps
 * every field except `quantization_config` (a save writes it again only for quantized layers).
 */
export function readCheckpointConfig(path: string): { config: LlamaConfig; quantization: QuantizationConfig | null } {
  const json = readConfigJson(path);
  if (json !== null && typeof json === 'object' && jsonDepth(json) > MAX_JSON_DEPTH) {
    throw new LlamaConfigError(`${path}: nested more than ${MAX_JSON_DEPTH} levels deep`);
  }
  if (json === null || typeof json !== 'object' || Array.isArray(json) || !('quantization_config' in json)) {
    return { config: parseLlamaConfig(json, path), quantization: null };
  }
  const { quantization_config: qc, ...rest } = json as ConfigJson;
  const config = parseLlamaConfig(rest, path);
  return { config, quantization: parseQuantizationConfig(qc, path) };
}

/** A projection weight stored quantized: its format and every tensor name that stores it. */
export interface StoredQuantizedWeight {
  format: QuantFormat;
  /** The weight's tensors (codes first), all of which the checkpoint must hold. */
  tensors: string[];
}

const BNB_STATE = 'quant_state.bitsandbytes__';

/**
 * Finds the projection weights that `files` stores quantized (the others must be dense), and
 * checks each against `quantization`. Errors name the tensor and the file.
 */
export function findQuantizedWeights(config: LlamaConfig, files: CheckpointFiles, quantization: QuantizationConfig): Map<string, StoredQuantizedWeight> {
  const stored = files.tensors();
  const projections = expectedTensors(config).map(([name]) => name)
    .filter((name) => [...ATTENTION_PROJECTIONS, ...MLP_PROJECTIONS].some((p) => name.endsWith(`.${p}.weight`)));
  const found = new Map<string, StoredQuantizedWeight>();
  for (const name of projections) {
    const where = stored.get(name);
    if (!where) continue; // reported as missing by the checkpoint validation
    const bnb = (['nf4', 'fp4'] as const).find((t) => stored.has(`${name}.${BNB_STATE}${t}`));
    const format = bnb ?? quantizedFormatOf(files.readerOf(name), name);
    if (format === null) continue;
    const expected = quantization.method === 'bitsandbytes' ? quantization.quantType : quantization.bits === 4 ? 'int4' : 'int8';
    if (format !== expected) {
      throw new CheckpointError(`${where.file}: '${name}' is stored as ${format}, but quantization_config in config.json says ${expected}`);
    }
    if (quantization.method === 'bitsandbytes') {
      const tensors = [name, `${name}.absmax`, `${name}.quant_map`, `${name}.${BNB_STATE}${format}`];
      if (quantization.doubleQuant) tensors.push(`${name}.nested_absmax`, `${name}.nested_quant_map`);
      else if (stored.has(`${name}.nested_absmax`)) {
        throw new CheckpointError(`${where.file}: '${name}' is double-quantized, but quantization_config says bnb_4bit_use_double_quant false`);
      }
      found.set(name, { format, tensors });
    } else {
      found.set(name, { format, tensors: [name, `${name}.scales`, `${name}.offsets`] });
    }
  }
  return found;
}

/**
 * Reads every weight of `found` as stored (no dequantization), checking that all its tensors
 * sit in one file, that its shape is the one `config` implies and, for INT blocks, that its
 * block settings are the config's. On error, what was read is released.
 */
export function readQuantizedWeights(
  config: LlamaConfig, files: CheckpointFiles, found: ReadonlyMap<string, StoredQuantizedWeight>,
  quantization: QuantizationConfig, device: string,
): Map<string, QuantizedLinear> {
  const shapes = new Map(expectedTensors(config));
  const out = new Map<string, QuantizedLinear>();
  try {
    for (const [name, { tensors }] of found) {
      const file = files.stored(name).file;
      const other = tensors.find((t) => files.stored(t).file !== file);
      if (other) throw new CheckpointError(`${file}: the tensors of '${name}' are split across shard files ('${other}' is in ${files.stored(other).file}); not supported`);
      let q: QuantizedLinear;
      try {
        q = loadQuantized(files.readerOf(name), name, { device });
      } catch (e) {
        throw new CheckpointError(`${file}: ${(e as Error).message}`);
      }
      out.set(name, q);
      const [rows, cols] = shapes.get(name)!;
      if (q.outFeatures !== rows || q.inFeatures !== cols) {
        throw new CheckpointError(`${file}: '${name}' is stored with shape [${q.outFeatures}, ${q.inFeatures}], but config.json implies [${rows}, ${cols}]`);
      }
      if (quantization.method === INT_QUANT_METHOD && q instanceof IntBlockLinear &&
        (q.blockRows !== quantization.blockRows || q.blockCols !== quantization.blockCols || q.scaleDType !== quantization.scaleDType)) {
        throw new CheckpointError(`${file}: '${name}' is ${q.describe()}, but quantization_config says blocks of ` +
          `${quantization.blockRows}x${quantization.blockCols} with ${quantization.scaleDType} scales`);
      }
    }
  } catch (e) {
    for (const q of out.values()) q.dispose();
    throw e;
  }
  return out;
}

/** The error for a quantized checkpoint loaded without a `quantizedLinearFactory`. */
export function missingQuantizedFactory(dir: string, quantization: QuantizationConfig): Error {
  const what = quantization.method === 'bitsandbytes' ? `bitsandbytes ${quantization.quantType}` : `${INT_QUANT_METHOD} int${quantization.bits}`;
  return new CheckpointError(`${dir}: the checkpoint is stored quantized (${what}); pass a quantizedLinearFactory to build its layers`);
}
