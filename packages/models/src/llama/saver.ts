// Saving a model as a Hugging Face checkpoint directory: config.json plus model.safetensors,
// or numbered shards and model.safetensors.index.json when it is larger than the shard limit.
// Quantized layers are written dequantized, or (option `quantized`) as stored: bitsandbytes'
// tensors for NF4/FP4, codes/scales/offsets for INT blocks, with a quantization_config.
import { randomBytes } from 'node:crypto';
import { mkdirSync, readdirSync, renameSync, unlinkSync, writeFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import { cast, isFloatDType, itemSize, writeSafetensors, type DType, type RawTensor, type Tensor } from '@blora/tensor';
import { quantizedTensors, type QuantizedLinear } from '@blora/quant';
import { INDEX_FILE, SINGLE_FILE } from './checkpoint-files.js';
import { llamaConfigToJson } from './config.js';
import type { Module } from '@blora/autograd';
import type { LlamaForCausalLM } from './model.js';
import { expectedTensors } from './model.js';
import { holdsQuantizedWeight, quantizationConfigJson, quantizationConfigOf } from './quantized-checkpoint.js';

/** Options of `saveLlama`. */
export interface SaveOptions {
  /** Dtype the weights are written in (default: the model's compute dtype). */
  dtype?: DType;
  /** Largest shard in bytes before the checkpoint is split (default 5 GB, as transformers). */
  maxShardSize?: number;
  /**
   * Write layers holding a quantized weight (`QuantizedWeightHolder`) as stored, not
   * dequantized, and record their quantization in config.json's `quantization_config`
   * (default false). `dtype` then applies to the dense tensors only.
   */
  quantized?: boolean;
}

/** A layer that can give its weight as a dense tensor (quantized layers dequantize). */
interface DenseWeightSource {
  denseWeight(dtype: DType): Tensor;
}

/** Shard file name as transformers numbers them: `model-00001-of-00003.safetensors`. */
export function shardFileName(index: number, count: number): string {
  const pad = (n: number) => String(n).padStart(5, '0');
  return `model-${pad(index + 1)}-of-${pad(count)}.safetensors`;
}

const SHARD_PATTERN = /^model-\d{5}-of-\d{5}\.safetensors$/;

/** Produces the tensor `name` of `model` in `dtype`, and whether the caller must dispose it. */
function tensorOf(modules: Map<string, Module>, name: string, dtype: DType): { t: Tensor; owned: boolean } {
  const modulePath = name.slice(0, -'.weight'.length);
  const module = modules.get(modulePath);
  if (!module) throw new Error(`saveLlama: the model has no module '${modulePath}'`);
  const weight = (module as { weight?: unknown }).weight;
  if ((weight as Tensor | undefined)?.isTensor === true) {
    const w = weight as Tensor;
    return w.dtype === dtype ? { t: w, owned: false } : { t: cast(w, dtype), owned: true };
  }
  const dense = (module as Partial<DenseWeightSource>).denseWeight;
  if (typeof dense === 'function') return { t: dense.call(module, dtype), owned: true };
  throw new Error(`saveLlama: cannot save '${modulePath}' (${module.constructor.name}): it has neither a 'weight' tensor ` +
    'nor a denseWeight(dtype) method');
}

/** The quantized weight stored under `name`, when the module holding it is saved quantized. */
function quantizedWeightOf(modules: Map<string, Module>, name: string): QuantizedLinear | null {
  const module = modules.get(name.slice(0, -'.weight'.length));
  return holdsQuantizedWeight(module) ? module.quantized : null;
}

function byteLength(t: Tensor | RawTensor): number {
  return 'isTensor' in t ? t.numel * itemSize(t.dtype) : t.data.byteLength;
}

/** Splits `sizes` (in order) into consecutive groups of at most `limit` bytes (an oversized tensor gets its own). */
function planShards(entries: [string, number][], limit: number): [string, number][][] {
  const shards: [string, number][][] = [];
  let current: [string, number][] = [];
  let bytes = 0;
  for (const entry of entries) {
    if (current.length > 0 && bytes + entry[1] > limit) {
      shards.push(current);
      current = [];
      bytes = 0;
    }
    current.push(entry);
    bytes += entry[1];
  }
  if (current.length > 0) shards.push(current);
  return shards;
}

/** Writes text through a temporary file and a rename, so readers never see half a file. */
function writeTextAtomic(path: string, text: string): void {
  const temp = join(path, '..', `.${basename(path)}.${process.pid}.${randomBytes(6).toString('hex')}.tmp`);
  writeFileSync(temp, text);
  renameSync(temp, path);
}

/**
 * Saves `model` into `dir` (created if needed) in the layout transformers reads: config.json
 * (the fields it was loaded from, `torch_dtype` set to the saved dtype) and the weights under
 * Hugging Face names, in one `model.safetensors` or, above `maxShardSize`, numbered shards with
 * `model.safetensors.index.json`. Tied models store no `lm_head.weight`. Quantized layers are
 * written dequantized unless `quantized` is set: then layers holding a quantized weight are
 * written as stored (bitsandbytes' tensor names for NF4/FP4, codes, scales and offsets for INT
 * blocks) and config.json gets their `quantization_config`. Weight files of an earlier save
 * that this one does not rewrite are removed, so a stale file never shadows the new
 * checkpoint. Returns the files written.
 */
export function saveLlama(model: LlamaForCausalLM, dir: string, options: SaveOptions = {}): string[] {
  const dtype = options.dtype ?? model.dtype;
  if (!isFloatDType(dtype)) throw new TypeError(`saveLlama: dtype must be a float dtype, got ${dtype}`);
  const limit = options.maxShardSize ?? 5_000_000_000;
  if (!(limit > 0)) throw new RangeError(`saveLlama: maxShardSize must be positive, got ${limit}`);
  const modules = new Map(model.namedModules());
  // Weights saved in quantized form, by weight name (all of a weight's tensors go in one shard).
  const quantized = new Map<string, QuantizedLinear>();
  if (options.quantized) {
    for (const [name] of expectedTensors(model.config)) {
      const q = quantizedWeightOf(modules, name);
      if (q) quantized.set(name, q);
    }
  }
  const quantization = quantizationConfigOf(quantized, dtype === 'float64' ? 'float32' : dtype); // bitsandbytes computes in 16/32 bits
  mkdirSync(dir, { recursive: true });
  const entries = expectedTensors(model.config).map(([name, shape]): [string, number] => {
    const q = quantized.get(name);
    if (!q) return [name, shape.reduce((a, b) => a * b, 1) * itemSize(dtype)];
    return [name, Object.values(quantizedTensors(name, q).tensors).reduce((a, t) => a + byteLength(t), 0)];
  });
  const shards = planShards(entries, limit);
  const names = shards.length === 1 ? [SINGLE_FILE] : shards.map((_, i) => shardFileName(i, shards.length));
  const weightMap: Record<string, string> = {};
  shards.forEach((shard, i) => {
    // Only one shard's converted (or dequantized) tensors exist at a time; quantized tensors are the layers' own.
    const produced: [string, { t: Tensor; owned: boolean }][] = [];
    const tensors = new Map<string, Tensor | RawTensor>();
    const metadata: Record<string, string> = { format: 'pt' };
    try {
      for (const [name] of shard) {
        const q = quantized.get(name);
        if (q) {
          const stored = quantizedTensors(name, q);
          for (const [key, t] of Object.entries(stored.tensors)) tensors.set(key, t);
          Object.assign(metadata, stored.metadata);
          continue;
        }
        const p = tensorOf(modules, name, dtype);
        produced.push([name, p]);
        tensors.set(name, p.t);
      }
      writeSafetensors(join(dir, names[i]!), tensors, metadata);
    } finally {
      for (const [, p] of produced) if (p.owned) p.t.dispose();
    }
    for (const key of tensors.keys()) weightMap[key] = names[i]!;
  });
  const written = names.map((n) => join(dir, n));
  if (shards.length > 1) {
    const totalSize = entries.reduce((a, [, bytes]) => a + bytes, 0);
    writeTextAtomic(join(dir, INDEX_FILE), `${JSON.stringify({ metadata: { total_size: totalSize }, weight_map: weightMap }, null, 2)}\n`);
    written.push(join(dir, INDEX_FILE));
  }
  const configJson = llamaConfigToJson(model.config, dtype);
  delete configJson.quantization_config; // written only for what this save stores quantized
  if (quantization) configJson.quantization_config = quantizationConfigJson(quantization);
  writeTextAtomic(join(dir, 'config.json'), `${JSON.stringify(configJson, null, 2)}\n`);
  written.push(join(dir, 'config.json'));
  for (const file of readdirSync(dir)) {
    const stale = (file === SINGLE_FILE || file === INDEX_FILE || SHARD_PATTERN.test(file)) && !written.includes(join(dir, file));
    if (stale) unlinkSync(join(dir, file));
  }
  return written;
}
