// Loading what the commands work on: a Hugging Face checkpoint directory (config.json,
// safetensors, tokenizer.json) as a model whose block projections are frozen bases (dense or
// quantized on load), the tokenizer, and adapters attached or loaded onto it.
import { existsSync, readFileSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { listDevices, SafetensorsReader } from '@blora/tensor';
import { assignInPlace, noGrad } from '@blora/autograd';
import { quantizeLinear, type QuantizeOptions } from '@blora/quant';
import { loadLlama, toDType, Tokenizer, type LinearFactory, type LlamaForCausalLM } from '@blora/models';
import type { AdapterMethod } from '../adapters/adapter.js';
import type { AdapterConfig } from '../adapters/config.js';
import { assertBlocksInsideTiles, QABLORA_DEFAULTS } from '../adapters/qablora.js';
import { adapterTensors, ADAPTER_WEIGHTS_NAME } from '../peft.js';
import type { AttachedAdapters } from '../attach.js';
import { DenseBase } from '../layers/dense-base.js';
import { QuantizedBase } from '../layers/quantized-base.js';
import { quantizedBaseFactory } from '../checkpoint/bases.js';
import type { WeightsIO } from '../train/trainer.js';
import { UsageError } from './errors.js';

/** The four methods the command line offers: LoRA on a dense base, LoRA on NF4 (QLoRA), Q-BLoRA, QA-BLoRA. */
export type CliMethod = 'lora' | 'qlora' | 'qblora' | 'qablora';

/** Every CLI method. */
export const CLI_METHODS: readonly CliMethod[] = ['lora', 'qlora', 'qblora', 'qablora'];

/** The adapter each CLI method trains. */
export function adapterMethodOf(method: CliMethod): AdapterMethod {
  return method === 'qlora' ? 'lora' : method;
}

/** How the base's block projections are stored: dense, NF4 (bitsandbytes) or INT4 blocks with offsets. */
export type BaseQuant = 'none' | 'nf4' | 'int4';

/** The base format a method uses unless told otherwise. */
export function defaultQuantOf(method: CliMethod): BaseQuant {
  return method === 'lora' ? 'none' : method === 'qablora' ? 'int4' : 'nf4';
}

/** Rows x columns of a 2-D block of INT4 weights, or of a QA-BLoRA adapter's λout x λin tile. */
export interface BlockShape {
  /** Output rows. */
  rows: number;
  /** Input columns. */
  cols: number;
}

/** The settings of the base model's quantization. */
export interface BaseQuantSettings {
  /** The format. */
  quant: BaseQuant;
  /** NF4 blocksize (default 64) or INT4 group size / 2-D block element count. */
  block?: number;
  /** For INT4 under QA-BLoRA: the adapter's tile λout x λin, inside which every block must lie. */
  tile?: BlockShape;
  /** INT4 2-D blocks of this shape (default under QA-BLoRA: the whole tile). Ignored by the other formats. */
  blocks?: BlockShape;
}

/**
 * Parses a block shape written `RxC` (rows x columns, both >= 1), as given to `flag`. Throws a
 * UsageError naming the flag otherwise.
 */
export function parseBlockShape(text: string, flag: string): BlockShape {
  const m = /^(\d+)x(\d+)$/.exec(text);
  const rows = m ? Number(m[1]) : 0;
  const cols = m ? Number(m[2]) : 0;
  if (!Number.isSafeInteger(rows) || !Number.isSafeInteger(cols) || rows < 1 || cols < 1) {
    throw new UsageError(`--${flag} must look like 8x4 (rows x columns), got '${text}'`);
  }
  return { rows, cols };
}

/**
 * Throws a UsageError, naming `label` and the numbers, unless every block of `blocks` lies inside
 * one tile of `tile` (block rows divide λout and block columns divide λin), which the exact
 * merge of a QA-BLoRA adapter into the blocks' offsets needs.
 */
export function checkBlocksInsideTile(label: string, blocks: BlockShape, tile: BlockShape): void {
  try {
    assertBlocksInsideTiles(label, '', blocks.rows, blocks.cols, tile.rows, tile.cols);
  } catch (error) {
    throw new UsageError((error as Error).message);
  }
}

/**
 * The quantizer options for `settings`, or null for a dense base. NF4: bitsandbytes blocks of
 * `block` (default 64) with double quantization. INT4: with `blocks` or a tile (QA-BLoRA), 2-D
 * blocks of `blocks` (default: exactly the tile, λout rows x λin columns); under a tile they
 * must lie inside it, so the merge is exact, and `block`, if given, must equal their element
 * count. Otherwise 1-D groups of `block` (default 32) input columns.
 */
export function quantizeOptionsFor(settings: BaseQuantSettings): QuantizeOptions | null {
  const { quant, block, tile, blocks } = settings;
  if (quant === 'none') return null;
  if (quant === 'nf4') {
    const blocksize = block ?? 64;
    if (![32, 64, 128, 256, 512, 1024, 2048, 4096].includes(blocksize)) {
      throw new UsageError(`--block for nf4 must be a power of two from 32 to 4096, got ${blocksize}`);
    }
    return { format: 'nf4', blocksize, doubleQuant: true };
  }
  const shape = blocks ?? tile;
  if (shape) {
    const wholeTile = tile !== undefined && shape.rows === tile.rows && shape.cols === tile.cols;
    if (block !== undefined && block !== shape.rows * shape.cols) {
      throw new UsageError(!wholeTile
        ? `--block ${block} does not match the INT4 blocks of ${shape.rows} x ${shape.cols} = ${shape.rows * shape.cols} elements ` +
          '(--tile RxC sets the block shape; omit --block or make it R·C)'
        : `--block ${block} does not match QA-BLoRA's tiles: INT4 blocks are λout x λin = ${shape.rows} x ${shape.cols} ` +
          `= ${shape.rows * shape.cols} elements (set --lambda-in / --lambda-out or --tile RxC instead, or omit --block)`);
    }
    if (tile && !wholeTile) checkBlocksInsideTile('QA-BLoRA', shape, tile);
    return { format: 'int4', blockRows: shape.rows, blockCols: shape.cols };
  }
  return { format: 'int4', groupSize: block ?? 32 };
}

/**
 * The tile and INT4 block shape with which the base of an adapter is quantized again (eval,
 * merge, generate): for QA-BLoRA, its λout x λin tile and the block shape its run.json stores
 * (run.json files without one used blocks of the whole tile); nothing for the other methods.
 */
export function adapterBlockSettings(run: Record<string, unknown> | null, config: AdapterConfig | null): Pick<BaseQuantSettings, 'tile' | 'blocks'> {
  if (config?.method !== 'qablora') return {};
  const tile = {
    rows: config.lambdaOut ?? config.lambda ?? QABLORA_DEFAULTS.lambdaOut, cols: config.lambdaIn ?? config.lambda ?? QABLORA_DEFAULTS.lambdaIn,
  };
  const stored = run?.blockShape as BlockShape | null | undefined;
  return { tile, ...(stored ? { blocks: { rows: stored.rows, cols: stored.cols } } : {}) };
}

/** Throws a UsageError unless `dir` looks like a Hugging Face checkpoint directory. */
export function checkModelDir(dir: string): void {
  if (!existsSync(dir) || !statSync(dir).isDirectory()) throw new UsageError(`--model ${dir}: no such directory`);
  for (const file of ['config.json', 'tokenizer.json']) {
    if (!existsSync(join(dir, file))) throw new UsageError(`--model ${dir}: missing ${file} (expected a Hugging Face checkpoint directory)`);
  }
  if (!existsSync(join(dir, 'model.safetensors')) && !existsSync(join(dir, 'model.safetensors.index.json'))) {
    throw new UsageError(`--model ${dir}: missing model.safetensors (or model.safetensors.index.json); only safetensors checkpoints are read`);
  }
}

/**
 * Makes the device available: on 'cpu' the native kernels of @blora/cpu-kernels when they are
 * built (the TypeScript kernels otherwise), on 'cuda' the CUDA backend. Throws when the device
 * cannot be used.
 */
export async function prepareDevice(device: string): Promise<void> {
  if (device === 'cpu') {
    const name = '@blora/cpu-kernels';
    try {
      await import(name); // registers its fast paths only when its addon is built; never throws for a missing build
    } catch {
      // Not installed: the TypeScript kernels serve every op.
    }
    return;
  }
  if (device === 'cuda') {
    if (!listDevices().includes('cuda')) {
      const name = '@blora/cuda-kernels';
      try {
        const cuda = (await import(name)) as { cudaAvailable(): boolean; cudaUnavailableReason(): string | null };
        if (!cuda.cudaAvailable()) throw new UsageError(`--device cuda: ${cuda.cudaUnavailableReason() ?? 'no usable GPU'}`);
      } catch (error) {
        if (error instanceof UsageError) throw error;
        throw new UsageError(`--device cuda: the CUDA backend could not be loaded (${(error as Error).message})`);
      }
    }
    if (!listDevices().includes('cuda')) throw new UsageError('--device cuda: the CUDA backend registered no device');
    return;
  }
  throw new UsageError(`--device must be cpu or cuda, got '${device}'`);
}

/** The linear factory that turns each block projection into a frozen dense or quantized base. */
export function baseLinearFactory(options: QuantizeOptions | null): LinearFactory {
  if (!options) return (_name, weight, context) => new DenseBase(toDType(weight, context.dtype));
  return (name, weight) => {
    try {
      return new QuantizedBase(noGrad(() => quantizeLinear(weight, options)));
    } catch (error) {
      throw new Error(`quantizing ${name}: ${(error as Error).message}`);
    } finally {
      weight.dispose();
    }
  };
}

/** A loaded base model and its tokenizer. */
export interface LoadedModel {
  /** The model, projections frozen. */
  model: LlamaForCausalLM;
  /** Its tokenizer. */
  tokenizer: Tokenizer;
  /** The checkpoint directory, absolute. */
  dir: string;
}

/** Loads the checkpoint in `dir` with frozen (optionally quantized) projections, and its tokenizer. */
export function loadBaseModel(dir: string, quant: QuantizeOptions | null, device: string): LoadedModel {
  // Projections a 4-bit checkpoint stores quantized are used as stored; the others follow `quant`.
  const model = loadLlama(dir, { device, linearFactory: baseLinearFactory(quant), quantizedLinearFactory: quantizedBaseFactory });
  const tokenizer = Tokenizer.fromFile(join(dir, 'tokenizer.json'));
  if (tokenizer.vocabSize > model.config.vocabSize) {
    throw new Error(`${dir}: the tokenizer has ${tokenizer.vocabSize} tokens but the model's vocabulary is ${model.config.vocabSize}`);
  }
  return { model, tokenizer, dir: resolve(dir) };
}

/** Checkpoint weights stored as a PEFT adapter directory (save with `save`, restore in place). */
export function adapterWeightsIO(attached: AttachedAdapters, save: (dir: string) => void): WeightsIO {
  return {
    save,
    load(dir: string) {
      const reader = SafetensorsReader.open(join(dir, ADAPTER_WEIGHTS_NAME));
      try {
        const expected = adapterTensors(attached);
        const names = new Set(reader.names());
        for (const name of expected.keys()) if (!names.has(name)) throw new Error(`${dir}: the checkpoint's adapter lacks '${name}'`);
        if (names.size !== expected.size) throw new Error(`${dir}: the checkpoint's adapter has ${names.size} tensors, the model ${expected.size}`);
        noGrad(() => {
          for (const [name, param] of expected) {
            const t = reader.readTensor(name, { dtype: param.dtype, device: param.device });
            if (t.rank !== param.rank || t.shape.some((d, i) => d !== param.shape[i])) {
              t.dispose();
              throw new Error(`${dir}: '${name}' has shape [${t.shape.join(', ')}], the adapter has [${param.shape.join(', ')}]`);
            }
            assignInPlace(param, t);
            t.dispose();
          }
        });
      } finally {
        reader.close();
      }
    },
  };
}

type FieldCheck = readonly [field: string, valid: (v: unknown) => boolean, want: string];

const isPath = (v: unknown): boolean => typeof v === 'string' && v !== '';
const isCount = (v: unknown): boolean => typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;
const isFiniteNumber = (v: unknown): boolean => typeof v === 'number' && Number.isFinite(v);
const oneOf = (choices: readonly string[]) => (v: unknown): boolean => typeof v === 'string' && choices.includes(v);
const orNull = (check: (v: unknown) => boolean) => (v: unknown): boolean => v === null || check(v);
const isPositive = (v: unknown): boolean => isCount(v) && (v as number) > 0;
const isBlockShape = (v: unknown): boolean => {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) return false;
  const shape = v as Record<string, unknown>;
  return Object.keys(shape).length === 2 && isPositive(shape.rows) && isPositive(shape.cols);
};

/** The type of every field `blora finetune` writes to run.json (ranges are checked where the values are used). */
const RUN_FIELDS: readonly FieldCheck[] = [
  ['model', isPath, 'a path'], ['data', isPath, 'a path'],
  ['method', oneOf(CLI_METHODS), `one of ${CLI_METHODS.join(', ')}`],
  ['quant', oneOf(['none', 'nf4', 'int4']), 'one of none, nf4, int4'],
  ['form', oneOf(['matrix', 'factors']), 'matrix or factors'],
  ['device', oneOf(['cpu', 'cuda']), 'cpu or cuda'],
  ['nonFinite', oneOf(['stop', 'skip']), 'stop or skip'],
  ['evalData', orNull(isPath), 'a path or null'], ['mc', orNull(isPath), 'a path or null'],
  ['block', orNull(isCount), 'a non-negative integer or null'],
  ['blockShape', orNull(isBlockShape), 'null or {"rows": R, "cols": C} with positive integers R and C'],
  ['gradientCheckpointing', (v) => typeof v === 'boolean', 'true or false'],
  ...['alpha', 'dropout', 'lr', 'warmupRatio', 'maxGradNorm'].map((f): FieldCheck => [f, isFiniteNumber, 'a finite number']),
  ...['rank', 'lambdaIn', 'lambdaOut', 'steps', 'batch', 'gradAccum', 'seed', 'maxSourceLen', 'maxTargetLen', 'evalEvery', 'evalSize',
    'mcLimit', 'evalBatch', 'saveEvery', 'keepCheckpoints'].map((f): FieldCheck => [f, isCount, 'a non-negative integer']),
];

/** A JSON value for an error message: cut to 80 characters, and safe for any nesting depth. */
function show(value: unknown): string {
  let text: string | undefined;
  try {
    text = JSON.stringify(value);
  } catch {
    text = Array.isArray(value) ? '[...]' : '{...}'; // nested too deeply to print
  }
  text ??= String(value);
  return text.length > 80 ? `${text.slice(0, 77)}...` : text;
}

/**
 * The run settings saved next to an adapter by `blora finetune` (run.json), or null when there
 * is none. A file that is not JSON, not an object, or holds a field of the wrong type is an
 * error naming the file and the field (its values steer a resumed run and the base format).
 */
export function readRunSettings(dir: string): Record<string, unknown> | null {
  const path = join(dir, 'run.json');
  if (!existsSync(path)) return null;
  let value: unknown;
  try {
    value = JSON.parse(readFileSync(path, 'utf8')) as unknown;
  } catch (error) {
    throw new Error(`${path}: not valid JSON (${(error as Error).message})`);
  }
  if (value === null || typeof value !== 'object' || Array.isArray(value)) throw new Error(`${path}: expected a JSON object of run settings`);
  const settings = value as Record<string, unknown>;
  for (const [field, valid, want] of RUN_FIELDS) {
    if (settings[field] !== undefined && !valid(settings[field])) throw new Error(`${path}: field '${field}' must be ${want}, got ${show(settings[field])}`);
  }
  return settings;
}
