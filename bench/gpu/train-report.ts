// The JSON report of the training-step benchmark: one run of our side, its figures in the
// result shape peers.py uses (id, group, label, unit, value, timing fields, method), so
// run.mjs can set them beside PEFT's 'lora.tinyllama.*' figures.
import { mkdirSync, renameSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { TINYLLAMA_SHAPE, hasTinyLlamaWidths, tokensPerStep, type TrainBenchConfig, type TrainVariant } from './train-config.js';
import type { TrainModel } from './train-model.js';
import type { OpProfile } from '@blora/tensor';
import type { StepRun } from './train-step.js';
import { median } from './timing.js';

/** Memory figures of one variant. */
export interface VariantMemory {
  /** The allocator's peak of live bytes over building, warm-up and timed steps, or null with `note` saying why. */
  readonly peakGiB: number | null;
  readonly note: string | null;
  /** Bytes held by live tensors after the steps (weights, adapters, optimizer state). */
  readonly liveGiBAfterSteps: number;
  /** Bytes the allocator holds from the driver after the steps. */
  readonly reservedGiB?: number;
}

/** One figure of the report; fields beyond the common ones describe how it was taken. */
export interface TrainResult {
  readonly id: string;
  readonly group: 'train';
  readonly label: string;
  readonly unit: string;
  readonly value: number;
  readonly method: string;
  readonly [detail: string]: unknown;
}

/** A whole run of the training-step benchmark. */
export interface TrainReport {
  readonly suite: 'train';
  readonly date: string;
  skipped: boolean;
  reason?: string;
  gpu?: unknown;
  memory?: unknown;
  readonly versions: Record<string, string>;
  readonly config: TrainBenchConfig;
  readonly method: string;
  readonly results: TrainResult[];
  /** Per variant, where one profiled step's time went, op by op (BLORA_BENCH_TRAIN_PROFILE=1). */
  readonly profiles: Record<string, OpProfile>;
  readonly errors: { group: string; id: string; error: string; [detail: string]: unknown }[];
}

/** An empty report of a run starting now. */
export function newTrainReport(config: TrainBenchConfig): TrainReport {
  return {
    suite: 'train',
    date: new Date().toISOString().replace(/\.\d{3}Z$/, 'Z'),
    skipped: false,
    versions: { node: process.version },
    config,
    method:
      'Llama built on the device with random weights (no file read, nothing quantized on the host); adapters on ' +
      'q, k, v, o, gate, up, down; one step = forward with the mean next-token cross entropy over every position ' +
      '(labels = input ids), backward, AdamW (lr 2e-4, weight decay 0.01) on the adapters, gradients dropped. ' +
      'Warm-up steps first, then timed steps, each from its start to the end of a device synchronize() ' +
      '(host monotonic clock, so our JavaScript dispatch is included); the median step is reported.',
    results: [],
    profiles: {},
    errors: [],
  };
}

/** Display label of a variant. */
export function variantLabel(variant: TrainVariant, config: TrainBenchConfig): string {
  const r = `r=${config.rank}`;
  switch (variant) {
    case 'qlora': return `QLoRA step, NF4 base + LoRA ${r}`;
    case 'qblora': return `Q-BLoRA step, NF4 base, λ=${config.lambda}, ${r}`;
    case 'lora-dense': return `LoRA step, ${config.dtype} dense base, ${r}`;
  }
}

/** What `stepResults` turns into figures. */
export interface VariantRun {
  readonly variant: TrainVariant;
  readonly config: TrainBenchConfig;
  readonly built: TrainModel;
  readonly run: StepRun;
  readonly memory: VariantMemory;
  readonly buildSeconds: number;
  /** Depths that ran out of memory before this one. */
  readonly oomAttempts: readonly { layers: number; error: string }[];
}

/**
 * The figures of one variant, as peers.py reports PEFT's: ms per step (with every step's time
 * and loss), tokens per second, and peak memory when it could be told apart. When the model
 * ran with fewer layers than asked for, the figures are those measured at that depth and the
 * `scaled*` fields estimate the asked-for depth by scaling the whole step by the layer ratio
 * (an upper bound on the time: the embedding, lm_head and loss do not grow with depth).
 */
export function stepResults(v: VariantRun): TrainResult[] {
  const { variant, config, built, run, memory } = v;
  const shape = { ...config.shape, layers: built.layers };
  const tokens = tokensPerStep(shape);
  const ms = median(run.stepMs);
  const requested = config.shape.layers;
  const scaledMs = built.layers === requested ? null : (ms * requested) / built.layers;
  const scaling = scaledMs === null ? null
    : `measured at ${built.layers} of ${requested} layers; the ${requested}-layer figure is the measured step scaled by ${requested}/${built.layers} ` +
      '(an upper bound on the time: the embedding, lm_head and loss do not grow with depth)';
  const depth = hasTinyLlamaWidths(shape) && requested === TINYLLAMA_SHAPE.layers ? 'TinyLlama-1.1B' : `${requested}-layer Llama`;
  const label = `${variantLabel(variant, config)}, ${depth} ${shape.batch}x${shape.seq}${scaledMs === null ? '' : ` (${built.layers} layers, scaled)`}`;
  const common = {
    variant,
    device: config.device,
    layers: built.layers,
    requestedLayers: requested,
    shape,
    tinyLlamaWidths: hasTinyLlamaWidths(shape),
    tokensPerStep: tokens,
    dtype: config.dtype,
    adapterDType: config.adapterDType,
    base: built.base,
    adapter: built.adapter,
    trainableParams: built.trainableParams,
    totalParams: built.totalParams,
    gradientCheckpointing: config.checkpointing,
    scaling,
  };
  const rows: TrainResult[] = [
    {
      id: `train.${variant}.step`, group: 'train', label: `${label} (ms/step)`, unit: 'ms', value: ms,
      medianMs: ms, minMs: Math.min(...run.stepMs), maxMs: Math.max(...run.stepMs), repeats: run.stepMs.length, inner: 1,
      warmup: run.warmupMs.length, ...common,
      scaledMs,
      stepMs: run.stepMs, warmupMs: run.warmupMs, losses: run.losses, budgetHit: run.budgetHit,
      buildSeconds: v.buildSeconds, oomAttempts: v.oomAttempts, memory,
      method: 'wall time of a step from its start to the end of synchronize() after it; median of the timed steps',
    },
    {
      id: `train.${variant}.tokens`, group: 'train', label: `${label} (tokens/s)`, unit: 'tokens/s', value: (tokens / ms) * 1000,
      medianMs: ms, ...common,
      scaledValue: scaledMs === null ? null : (tokens / scaledMs) * 1000,
      method: 'tokens per step / median step time',
    },
  ];
  if (memory.peakGiB !== null) {
    rows.push({
      id: `train.${variant}.peak_memory`, group: 'train', label: `${label} (peak memory)`, unit: 'GiB', value: memory.peakGiB,
      ...common, memory,
      method: "peak bytes held by live tensors in our caching allocator (blocks rounded to its size classes) over building, warm-up and timed steps",
    });
  }
  return rows;
}

/** Writes the report as JSON (via a temporary file, so a reader never sees half of it). */
export function writeTrainReport(report: TrainReport, path: string): void {
  mkdirSync(dirname(path), { recursive: true });
  const tmp = `${path}.tmp`;
  writeFileSync(tmp, `${JSON.stringify(report, null, 2)}\n`);
  renameSync(tmp, path);
}
