// A training step of a 1.1B-parameter Llama (TinyLlama shapes, random weights) on our engine,
// for the side-by-side with PEFT LoRA in PyTorch (bench/gpu/peers.py, group 'lora'). Variants:
// QLoRA (NF4 base + LoRA), Q-BLoRA λ = 2 (NF4 base, LoRA's parameter count), LoRA on a dense
// base. Run through bench/gpu/vitest.train.config.ts (run.mjs runs one variant per process, so
// each peak-memory figure is that variant's own); writes JSON to $BLORA_BENCH_OUT.
// BLORA_BENCH_TRAIN_DEVICE=cpu runs a tiny model on the CPU as a smoke check.
import { isAbsolute, resolve } from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { formatOpProfile, memoryStats, type Tensor } from '@blora/tensor';
import {
  cudaAvailable, cudaDeviceInfo, cudaMemoryInfo, cudaUnavailableReason, emptyCache, synchronize,
} from '@blora/cuda-kernels';
import { hasTinyLlamaWidths, readTrainConfig, tokensPerStep, type TrainVariant } from './train-config.js';
import { buildTrainModel, randomTokenIds, type TrainModel } from './train-model.js';
import { median } from './timing.js';
import { newTrainReport, stepResults, writeTrainReport, type VariantMemory } from './train-report.js';
import { runTrainingSteps } from './train-step.js';

const repoRoot = fileURLToPath(new URL('../../', import.meta.url));
const config = readTrainConfig();
const outPath = isAbsolute(config.out) ? config.out : resolve(repoRoot, config.out);
const report = newTrainReport(config);
const onCuda = config.device === 'cuda';
const GIB = 1024 ** 3;

/** The allocator's highest live bytes so far in this process (null on the CPU, which keeps no peak). */
function peakBytes(): number | null {
  return onCuda ? cudaMemoryInfo().peakAllocatedBytes : null;
}

/** True when `e` (or an error it wraps) is the device running out of memory. */
function isOutOfMemory(e: unknown): boolean {
  for (let c: unknown = e, depth = 0; c && depth < 8; c = (c as { cause?: unknown }).cause, depth++) {
    if ((c as { code?: unknown }).code === 'CUDA_OUT_OF_MEMORY') return true;
    if (c instanceof Error && /out of memory/i.test(c.message)) return true;
  }
  return false;
}

function errorText(e: unknown): string {
  return e instanceof Error ? `${e.name}: ${e.message}` : String(e);
}

/** Memory figures of a finished run, read before the model is freed. */
function memoryAfter(peakBefore: number | null, firstInProcess: boolean, retried: boolean): VariantMemory {
  if (!onCuda) return { peakGiB: null, note: 'the CPU keeps no peak', liveGiBAfterSteps: memoryStats('cpu').bytes / GIB };
  const info = cudaMemoryInfo();
  const peak = info.peakAllocatedBytes;
  let note: string | null = null;
  if (retried) note = 'not measured: an out-of-memory attempt with more layers came first in this process';
  else if (!firstInProcess && !(peakBefore !== null && peak > peakBefore)) {
    note = 'not separable: an earlier variant in this process reached a higher peak (run one variant per process, as run.mjs does)';
  }
  return {
    peakGiB: note ? null : peak / GIB,
    note,
    liveGiBAfterSteps: info.allocatedBytes / GIB,
    reservedGiB: info.reservedBytes / GIB,
  };
}

let variantsMeasured = 0;

/** Builds, warms up and times one variant, halving the depth after an out-of-memory error when allowed. */
function measureVariant(variant: TrainVariant): void {
  const requested = config.shape.layers;
  const oomAttempts: { layers: number; error: string }[] = [];
  let layers = requested;
  const firstInProcess = variantsMeasured === 0;
  variantsMeasured += 1;
  for (;;) {
    let built: TrainModel | null = null;
    let ids: Tensor | null = null;
    const peakBefore = peakBytes();
    try {
      const started = performance.now();
      built = buildTrainModel(variant, config, layers);
      ids = randomTokenIds(config.shape, config.device, config.seed + 3);
      if (onCuda) synchronize();
      const buildSeconds = (performance.now() - started) / 1000;
      console.log(`[${variant}] ${layers} layers, ${built.base}; ${built.adapter}; ` +
        `${built.trainableParams.toLocaleString('en-US')} trainable of ${built.totalParams.toLocaleString('en-US')} parameters ` +
        `(built in ${buildSeconds.toFixed(1)} s)`);
      const run = runTrainingSteps(built, ids, {
        warmup: config.warmup, steps: config.steps, budgetSeconds: config.budgetSeconds, lr: config.lr,
        synchronize: onCuda ? synchronize : () => {},
        ...(config.profile ? { profileDevice: config.device } : {}),
        onStep: (i, ms, loss) => console.log(`  ${i < 0 ? `warm-up ${i + config.warmup + 1}` : `step ${i + 1}`}: ${ms.toFixed(1)} ms, loss ${loss.toFixed(4)}`),
      });
      const memory = memoryAfter(peakBefore, firstInProcess, oomAttempts.length > 0);
      const rows = stepResults({
        variant, config, built, run, memory, buildSeconds, oomAttempts,
      });
      report.results.push(...rows);
      if (run.profile) {
        report.profiles[variant] = run.profile;
        console.log(`[${variant}] one more step, every op timed to the end of its work:\n${formatOpProfile(run.profile, 40)}`);
      }
      const ms = median(run.stepMs);
      console.log(`[${variant}] median ${ms.toFixed(1)} ms/step, ${(tokensPerStep(config.shape) / ms * 1000).toFixed(0)} tokens/s` +
        `${memory.peakGiB !== null ? `, peak ${memory.peakGiB.toFixed(2)} GiB` : ''}` +
        `${layers !== requested ? ` (at ${layers} of ${requested} layers; scaled figures in the JSON)` : ''}`);
      return;
    } catch (e) {
      if (isOutOfMemory(e) && config.fallback && layers > 1) {
        oomAttempts.push({ layers, error: errorText(e) });
        console.log(`[${variant}] out of memory at ${layers} layers; retrying with ${Math.floor(layers / 2)}`);
        layers = Math.floor(layers / 2);
        continue;
      }
      report.errors.push({ group: 'train', id: `train.${variant}`, error: errorText(e), layers, oomAttempts });
      console.log(`[${variant}] failed: ${errorText(e)}`);
      return;
    } finally {
      try {
        ids?.dispose();
        built?.dispose();
        if (onCuda) emptyCache();
      } catch (e) {
        // A device left unusable by the failure above cannot free either; that failure is already reported.
        console.log(`[${variant}] cleanup failed: ${errorText(e)}`);
      }
    }
  }
}

function finish(): void {
  if (onCuda && cudaAvailable()) {
    report.gpu = cudaDeviceInfo();
    report.memory = cudaMemoryInfo();
  }
  // A skipped run writes a report only where one was asked for (run.mjs always asks).
  if (report.skipped && !process.env.BLORA_BENCH_OUT) {
    console.log(`train: skipped (${report.reason})`);
    return;
  }
  writeTrainReport(report, outPath);
  console.log(`train: wrote ${outPath}${report.skipped ? ` (skipped: ${report.reason})` : ''}`);
}

describe(`training step, ${hasTinyLlamaWidths(config.shape) ? 'TinyLlama shapes' : 'custom shapes'} on ${config.device}`, () => {
  if (onCuda && !cudaAvailable()) {
    report.skipped = true;
    report.reason = `cuda is not available: ${cudaUnavailableReason()}`;
  }
  afterAll(finish);

  for (const variant of config.variants) {
    it(variant, (ctx) => {
      if (report.skipped) ctx.skip(report.reason);
      const before = report.errors.length;
      measureVariant(variant);
      expect(report.errors.slice(before)).toEqual([]);
    });
  }
});
