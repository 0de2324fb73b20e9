// What the training-step benchmark measures, read from BLORA_BENCH_TRAIN_* environment
// variables. The defaults are the PEFT peer's (bench/gpu/peers.py): a Llama with TinyLlama's
// shapes, batch 8 x 512 tokens, r = 64 and alpha = 16 on every block projection.

/** The adapter setups our side times. */
export const TRAIN_VARIANTS = ['qlora', 'qblora', 'lora-dense'] as const;

/** One adapter setup: QLoRA (NF4 base + LoRA), Q-BLoRA (NF4 base), or LoRA on a dense base. */
export type TrainVariant = (typeof TRAIN_VARIANTS)[number];

/** Compute dtypes the benchmark accepts for the model and for the adapters. */
export type TrainDType = 'bfloat16' | 'float32';

/** Model and batch shapes. */
export interface TrainShape {
  /** Decoder layers built. */
  readonly layers: number;
  readonly hidden: number;
  readonly intermediate: number;
  readonly heads: number;
  readonly kvHeads: number;
  readonly vocab: number;
  /** Sequences per step. */
  readonly batch: number;
  /** Tokens per sequence. */
  readonly seq: number;
}

/** TinyLlama-1.1B: 22 layers, hidden 2048, MLP 5632, 32 heads, 4 KV heads, vocabulary 32000; batch 8 x 512. */
export const TINYLLAMA_SHAPE: TrainShape = {
  layers: 22, hidden: 2048, intermediate: 5632, heads: 32, kvHeads: 4, vocab: 32000, batch: 8, seq: 512,
};

/** A tiny model for checking on the CPU that the step runs end to end (seconds, not minutes). */
export const SMOKE_SHAPE: TrainShape = {
  layers: 2, hidden: 64, intermediate: 96, heads: 4, kvHeads: 2, vocab: 101, batch: 2, seq: 16,
};

/** Everything the training-step benchmark needs to know, resolved from the environment. */
export interface TrainBenchConfig {
  /** Where the JSON report goes. */
  readonly out: string;
  /** 'cuda' for the measurement; 'cpu' for a smoke run. */
  readonly device: 'cuda' | 'cpu';
  readonly quick: boolean;
  readonly variants: readonly TrainVariant[];
  readonly shape: TrainShape;
  /** Untimed steps first. */
  readonly warmup: number;
  /** Timed steps (the median is reported). */
  readonly steps: number;
  /** Stop timing a variant after this many seconds of timed steps (at least one step is timed). */
  readonly budgetSeconds: number;
  /** Compute dtype of activations and dense weights. */
  readonly dtype: TrainDType;
  /** dtype of the adapter parameters (PEFT keeps them in float32 on a bfloat16 model). */
  readonly adapterDType: TrainDType;
  /** Nominal rank r of every adapter. */
  readonly rank: number;
  readonly alpha: number;
  /** Q-BLoRA's balancing factor (λin = λout). */
  readonly lambda: number;
  /** Elements per NF4 absmax block. */
  readonly blocksize: number;
  readonly lr: number;
  /** Recompute each block in the backward pass. */
  readonly checkpointing: boolean;
  /** Take one extra step with every op timed (BLORA_BENCH_TRAIN_PROFILE=1) and report where the time goes. */
  readonly profile: boolean;
  /** On out-of-memory, retry with half the layers and scale the figures (labelled as such). */
  readonly fallback: boolean;
  readonly seed: number;
}

function isOn(value: string | undefined): boolean {
  return value === '1' || value === 'true';
}

function positiveInteger(env: NodeJS.ProcessEnv, name: string, fallback: number): number {
  const raw = env[name];
  if (raw === undefined || raw === '') return fallback;
  const value = Number(raw);
  if (!Number.isSafeInteger(value) || value <= 0) throw new Error(`${name} must be a positive integer, got '${raw}'`);
  return value;
}

function positiveNumber(env: NodeJS.ProcessEnv, name: string, fallback: number): number {
  const raw = env[name];
  if (raw === undefined || raw === '') return fallback;
  const value = Number(raw);
  if (!(value > 0) || !Number.isFinite(value)) throw new Error(`${name} must be a positive number, got '${raw}'`);
  return value;
}

function dtypeOf(env: NodeJS.ProcessEnv, name: string, fallback: TrainDType): TrainDType {
  const raw = env[name] || fallback;
  if (raw !== 'bfloat16' && raw !== 'float32') throw new Error(`${name} must be bfloat16 or float32, got '${raw}'`);
  return raw;
}

/** Parses a comma list of variant names (checked, duplicates dropped). */
export function parseVariants(text: string): TrainVariant[] {
  const names = text.split(',').map((s) => s.trim()).filter((s) => s !== '');
  if (names.length === 0) throw new Error('BLORA_BENCH_TRAIN_VARIANTS: no variant given');
  for (const n of names) {
    if (!(TRAIN_VARIANTS as readonly string[]).includes(n)) {
      throw new Error(`BLORA_BENCH_TRAIN_VARIANTS: unknown variant '${n}' (known: ${TRAIN_VARIANTS.join(', ')})`);
    }
  }
  return [...new Set(names)] as TrainVariant[];
}

/** Reads the configuration from `env` (see docs/benchmarks.md, "Training step"). */
export function readTrainConfig(env: NodeJS.ProcessEnv = process.env): TrainBenchConfig {
  const quick = isOn(env.BLORA_BENCH_QUICK);
  const deviceName = env.BLORA_BENCH_TRAIN_DEVICE || 'cuda';
  if (deviceName !== 'cuda' && deviceName !== 'cpu') throw new Error(`BLORA_BENCH_TRAIN_DEVICE must be cuda or cpu, got '${deviceName}'`);
  // The CPU runs the tiny smoke model unless told otherwise; BLORA_BENCH_TRAIN_SMOKE picks it anywhere.
  const smoke = env.BLORA_BENCH_TRAIN_SMOKE === undefined || env.BLORA_BENCH_TRAIN_SMOKE === ''
    ? deviceName === 'cpu'
    : isOn(env.BLORA_BENCH_TRAIN_SMOKE);
  const base = smoke ? SMOKE_SHAPE : TINYLLAMA_SHAPE;
  const shape: TrainShape = {
    layers: positiveInteger(env, 'BLORA_BENCH_TRAIN_LAYERS', base.layers),
    hidden: positiveInteger(env, 'BLORA_BENCH_TRAIN_HIDDEN', base.hidden),
    intermediate: positiveInteger(env, 'BLORA_BENCH_TRAIN_INTERMEDIATE', base.intermediate),
    heads: positiveInteger(env, 'BLORA_BENCH_TRAIN_HEADS', base.heads),
    kvHeads: positiveInteger(env, 'BLORA_BENCH_TRAIN_KV_HEADS', base.kvHeads),
    vocab: positiveInteger(env, 'BLORA_BENCH_TRAIN_VOCAB', base.vocab),
    batch: positiveInteger(env, 'BLORA_BENCH_TRAIN_BATCH', base.batch),
    seq: positiveInteger(env, 'BLORA_BENCH_TRAIN_SEQ', base.seq),
  };
  if (shape.seq < 2) throw new Error('BLORA_BENCH_TRAIN_SEQ must be at least 2 (the loss predicts the next token)');
  if (shape.hidden % shape.heads !== 0 || shape.heads % shape.kvHeads !== 0) {
    throw new Error(`BLORA_BENCH_TRAIN_*: hidden ${shape.hidden} must divide into ${shape.heads} heads, sharing ${shape.kvHeads} key/value heads`);
  }
  const steps = positiveInteger(env, 'BLORA_BENCH_TRAIN_STEPS', positiveInteger(env, 'BLORA_BENCH_LORA_STEPS', quick || smoke ? 3 : 10));
  return {
    out: env.BLORA_BENCH_OUT || 'bench/results/gpu-train.json',
    device: deviceName,
    quick,
    variants: parseVariants(env.BLORA_BENCH_TRAIN_VARIANTS || TRAIN_VARIANTS.join(',')),
    shape,
    warmup: positiveInteger(env, 'BLORA_BENCH_TRAIN_WARMUP', quick || smoke ? 1 : 2),
    steps,
    budgetSeconds: positiveNumber(env, 'BLORA_BENCH_TRAIN_BUDGET_S', 60),
    dtype: dtypeOf(env, 'BLORA_BENCH_TRAIN_DTYPE', 'bfloat16'),
    adapterDType: dtypeOf(env, 'BLORA_BENCH_TRAIN_ADAPTER_DTYPE', 'float32'),
    rank: positiveInteger(env, 'BLORA_BENCH_TRAIN_RANK', smoke ? 8 : 64),
    alpha: positiveNumber(env, 'BLORA_BENCH_TRAIN_ALPHA', 16),
    lambda: positiveInteger(env, 'BLORA_BENCH_TRAIN_LAMBDA', 2),
    blocksize: positiveInteger(env, 'BLORA_BENCH_TRAIN_BLOCKSIZE', 64),
    lr: positiveNumber(env, 'BLORA_BENCH_TRAIN_LR', 2e-4),
    checkpointing: isOn(env.BLORA_BENCH_TRAIN_CHECKPOINTING),
    profile: isOn(env.BLORA_BENCH_TRAIN_PROFILE),
    fallback: env.BLORA_BENCH_TRAIN_FALLBACK === undefined || env.BLORA_BENCH_TRAIN_FALLBACK === '' || isOn(env.BLORA_BENCH_TRAIN_FALLBACK),
    seed: positiveInteger(env, 'BLORA_BENCH_TRAIN_SEED', 1),
  };
}

/** Tokens one step trains on. */
export function tokensPerStep(shape: TrainShape): number {
  return shape.batch * shape.seq;
}

/** True when `shape` has TinyLlama's widths and vocabulary (the PEFT peer's model), whatever its depth and batch. */
export function hasTinyLlamaWidths(shape: TrainShape): boolean {
  const p = TINYLLAMA_SHAPE;
  return shape.hidden === p.hidden && shape.intermediate === p.intermediate && shape.heads === p.heads &&
    shape.kvHeads === p.kvHeads && shape.vocab === p.vocab;
}
