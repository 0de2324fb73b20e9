// Loading a Hugging Face Llama-family checkpoint directory (config.json + safetensors), tensor
// by tensor, optionally quantizing the block projections as they are read.
import { join } from 'node:path';
import { formatShape, type DType, type SafetensorsDType } from '@blora/tensor';
import { CheckpointError, CheckpointFiles, type StoredTensor } from './checkpoint-files.js';
import { readLlamaConfig, type LlamaConfig } from './config.js';
import type { LinearFactory } from './layers.js';
import { LlamaForCausalLM, expectedTensors } from './model.js';

/** Options of `loadLlama`. */
export interface LoadOptions {
  /** Compute dtype of activations and dense parameters (default float32). */
  dtype?: DType;
  /** Device of the model's tensors (default 'cpu'). */
  device?: string;
  /**
   * Makes the block projections from their weights as they are read (default: trainable
   * dense `Linear` layers). A factory that quantizes each weight and disposes it gives a
   * quantized model without the dense model ever being in memory.
   */
  linearFactory?: LinearFactory;
}

/** Stored dtypes a weight may have (converted to the compute dtype on load). */
const FLOAT_STORED: readonly SafetensorsDType[] = ['F32', 'F16', 'BF16', 'F64'];

/**
 * Tensors a checkpoint may hold that the model does not use: rotary frequency buffers saved by
 * older conversions, and `lm_head.weight` of a model whose head is tied to its embeddings.
 */
function ignorable(name: string, config: LlamaConfig): boolean {
  return /^model\.layers\.\d+\.self_attn\.rotary_emb\.inv_freq$/.test(name) || (config.tieWordEmbeddings && name === 'lm_head.weight');
}

function listNames(names: string[], files: Map<string, StoredTensor> | null): string {
  const shown = names.slice(0, 8).map((n) => {
    const file = files?.get(n)?.file;
    return file ? `'${n}' (in ${file})` : `'${n}'`;
  });
  return shown.join(', ') + (names.length > 8 ? `, and ${names.length - 8} more` : '');
}

/**
 * Checks that the checkpoint holds exactly the tensors `config` needs (names, shapes, float
 * dtypes) before anything is read; every error names the tensors and their files.
 */
export function validateCheckpoint(config: LlamaConfig, files: CheckpointFiles): void {
  const stored = files.tensors();
  const where = files.indexFile ?? files.dir;
  const expected = expectedTensors(config);
  const missing = expected.filter(([name]) => !stored.has(name)).map(([name]) => name);
  if (missing.length) {
    const hint = missing.includes('lm_head.weight') && missing.length === 1 ? ' (config.json has tie_word_embeddings false)' : '';
    throw new CheckpointError(`${where}: missing tensors ${listNames(missing, null)}${hint}`);
  }
  const wanted = new Set(expected.map(([name]) => name));
  const extra = [...stored.keys()].filter((name) => !wanted.has(name) && !ignorable(name, config));
  if (extra.length) {
    throw new CheckpointError(`${where}: unexpected tensors ${listNames(extra, stored)} that a ${config.architecture} ` +
      `with ${config.numHiddenLayers} layers does not have`);
  }
  for (const [name, shape] of expected) {
    const s = stored.get(name)!;
    if (!FLOAT_STORED.includes(s.dtype)) {
      throw new CheckpointError(`${s.file}: tensor '${name}' has dtype ${s.dtype}; expected one of ${FLOAT_STORED.join(', ')}`);
    }
    if (s.shape.length !== shape.length || s.shape.some((d, i) => d !== shape[i])) {
      throw new CheckpointError(`${s.file}: tensor '${name}' has shape ${formatShape(s.shape)}, but config.json implies ${formatShape(shape)}`);
    }
  }
}

/**
 * Loads `dir/config.json` and the safetensors weights (`model.safetensors` or shards listed in
 * `model.safetensors.index.json`). Each tensor is read, converted or quantized, and its stored
 * copy dropped before the next is read, so loading needs about the model's final size in
 * memory plus one tensor. Projections become trainable dense `Linear` layers, or whatever
 * `linearFactory` makes of them (frozen or quantized base layers, for instance).
 */
export function loadLlama(dir: string, options: LoadOptions = {}): LlamaForCausalLM {
  const config = readLlamaConfig(join(dir, 'config.json'));
  const device = options.device ?? 'cpu';
  const files = CheckpointFiles.open(dir);
  try {
    validateCheckpoint(config, files);
    return new LlamaForCausalLM(config, (name) => files.read(name, { device }), {
      ...(options.dtype ? { dtype: options.dtype } : {}),
      device,
      ...(options.linearFactory ? { linearFactory: options.linearFactory } : {}),
    });
  } finally {
    files.close();
  }
}
