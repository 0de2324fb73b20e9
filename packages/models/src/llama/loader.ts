// Loading a Hugging Face Llama-family checkpoint directory (config.json + safetensors), tensor
// by tensor, optionally quantizing the block projections as they are read; projections stored
// quantized (a `quantization_config` in config.json) are read as they are stored.
import { join } from 'node:path';
import { empty, formatShape, type DType, type SafetensorsDType } from '@blora/tensor';
import type { QuantizedLinear } from '@blora/quant';
import { CheckpointError, CheckpointFiles, type StoredTensor } from './checkpoint-files.js';
import type { LlamaConfig } from './config.js';
import { denseLinearFactory, type LinearFactory } from './layers.js';
import { LlamaForCausalLM, expectedTensors } from './model.js';
import {
  findQuantizedWeights, missingQuantizedFactory, readCheckpointConfig, readQuantizedWeights,
  type QuantizedLinearFactory, type StoredQuantizedWeight,
} from './quantized-checkpoint.js';

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
  /**
   * Makes the projections a quantized checkpoint stores quantized, from their weights read as
   * stored (required for such checkpoints; projections it stores dense still go through
   * `linearFactory`).
   */
  quantizedLinearFactory?: QuantizedLinearFactory;
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
 * dtypes) before anything is read; every error names the tensors and their files. Weights in
 * `quantized` are stored as the listed tensors instead (their shapes are checked when read).
 */
export function validateCheckpoint(config: LlamaConfig, files: CheckpointFiles,
  quantized: ReadonlyMap<string, StoredQuantizedWeight> = new Map()): void {
  const stored = files.tensors();
  const where = files.indexFile ?? files.dir;
  const expected = expectedTensors(config);
  const parts = [...quantized.values()].flatMap((q) => q.tensors);
  const missing = [...expected.map(([name]) => name), ...parts].filter((name) => !stored.has(name));
  if (missing.length) {
    const hint = missing.includes('lm_head.weight') && missing.length === 1 ? ' (config.json has tie_word_embeddings false)' : '';
    throw new CheckpointError(`${where}: missing tensors ${listNames(missing, null)}${hint}`);
  }
  const wanted = new Set([...expected.map(([name]) => name), ...parts]);
  const extra = [...stored.keys()].filter((name) => !wanted.has(name) && !ignorable(name, config));
  if (extra.length) {
    throw new CheckpointError(`${where}: unexpected tensors ${listNames(extra, stored)} that a ${config.architecture} ` +
      `with ${config.numHiddenLayers} layers does not have`);
  }
  for (const [name, shape] of expected) {
    if (quantized.has(name)) continue;
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
 * A checkpoint with a `quantization_config` (bitsandbytes 4-bit, or INT blocks written by
 * `saveLlama({ quantized: true })`) has its quantized projections read as stored, checked
 * against the config, and handed to `quantizedLinearFactory`.
 */
export function loadLlama(dir: string, options: LoadOptions = {}): LlamaForCausalLM {
  const { config, quantization } = readCheckpointConfig(join(dir, 'config.json'));
  const device = options.device ?? 'cpu';
  const files = CheckpointFiles.open(dir);
  const build = { ...(options.dtype ? { dtype: options.dtype } : {}), device };
  try {
    const found = quantization ? findQuantizedWeights(config, files, quantization) : new Map<string, StoredQuantizedWeight>();
    validateCheckpoint(config, files, found);
    if (found.size === 0) {
      return new LlamaForCausalLM(config, (name) => files.read(name, { device }), {
        ...build, ...(options.linearFactory ? { linearFactory: options.linearFactory } : {}),
      });
    }
    const quantizedFactory = options.quantizedLinearFactory;
    if (!quantizedFactory) throw missingQuantizedFactory(dir, quantization!);
    const weights: Map<string, QuantizedLinear> = readQuantizedWeights(config, files, found, quantization!, device);
    const denseFactory = options.linearFactory ?? denseLinearFactory;
    try {
      // A quantized weight has no dense tensor to hand over: the model gets an empty
      // placeholder for it, which the factory below drops for the weight read as stored.
      return new LlamaForCausalLM(config, (name) => (weights.has(name) ? empty([0], { device }) : files.read(name, { device })), {
        ...build,
        linearFactory: (name, weight, context) => {
          const q = weights.get(`${name}.weight`);
          if (!q) return denseFactory(name, weight, context);
          weight.dispose();
          weights.delete(`${name}.weight`);
          return quantizedFactory(name, q, context);
        },
      });
    } finally {
      for (const q of weights.values()) q.dispose(); // left over only when building failed
    }
  } finally {
    files.close();
  }
}
