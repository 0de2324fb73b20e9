// The training-step benchmark on the CPU with a tiny model: its configuration, the random NF4
// weights, the models of each variant, and that a run of steps trains the adapters on the loss
// transformers computes (checked against a float64 cross entropy written here).
//   npx vitest run --config bench/gpu/vitest.train.config.ts train-step.test
import { describe, expect, it } from 'vitest';
import { Generator, memoryStats, tidy, type Tensor } from '@blora/tensor';
import { noGrad } from '@blora/autograd';
import { NF4_CODE } from '@blora/quant';
import { AdaptedLinear, DenseBase, QuantizedBase } from '@blora/blora';
import { SMOKE_SHAPE, TINYLLAMA_SHAPE, parseVariants, readTrainConfig, type TrainBenchConfig, type TrainShape } from './train-config.js';
import { INIT_STD, buildTrainModel, disposeModel, randomNf4Weight, randomTokenIds } from './train-model.js';
import { stepResults } from './train-report.js';
import { runTrainingSteps } from './train-step.js';

const CPU: NodeJS.ProcessEnv = { BLORA_BENCH_TRAIN_DEVICE: 'cpu' };

function cpuConfig(extra: NodeJS.ProcessEnv = {}): TrainBenchConfig {
  return readTrainConfig({ ...CPU, BLORA_BENCH_TRAIN_DTYPE: 'float32', ...extra });
}

/** LoRA's trainable parameter count, r · (in + out) summed over the seven projections of every layer. */
function loraParameterCount(shape: TrainShape, r: number): number {
  const d = shape.hidden;
  const kv = (shape.hidden / shape.heads) * shape.kvHeads;
  const m = shape.intermediate;
  const perLayer = (d + d) + (d + kv) + (d + kv) + (d + d) + (d + m) + (d + m) + (m + d);
  return r * perLayer * shape.layers;
}

/** Mean over b, t < T-1 of logsumexp(logits[b, t]) - logits[b, t, ids[b, t+1]], in float64. */
function referenceLoss(logits: Float64Array, ids: Int32Array, batch: number, seq: number, vocab: number): number {
  let total = 0;
  for (let b = 0; b < batch; b++) {
    for (let t = 0; t < seq - 1; t++) {
      const row = (b * seq + t) * vocab;
      let max = -Infinity;
      for (let v = 0; v < vocab; v++) max = Math.max(max, logits[row + v]!);
      let sum = 0;
      for (let v = 0; v < vocab; v++) sum += Math.exp(logits[row + v]! - max);
      total += max + Math.log(sum) - logits[row + ids[b * seq + t + 1]!]!;
    }
  }
  return total / (batch * (seq - 1));
}

describe('training-step benchmark configuration', () => {
  it('defaults to the PEFT peer: TinyLlama shapes, batch 8 x 512, r 64, alpha 16, bfloat16, on cuda', () => {
    const c = readTrainConfig({});
    expect(c.device).toBe('cuda');
    expect(c.shape).toEqual(TINYLLAMA_SHAPE);
    expect([c.rank, c.alpha, c.lambda, c.blocksize, c.dtype, c.adapterDType]).toEqual([64, 16, 2, 64, 'bfloat16', 'float32']);
    expect([c.warmup, c.steps, c.lr, c.checkpointing, c.fallback, c.profile]).toEqual([2, 10, 2e-4, false, true, false]);
    expect(c.variants).toEqual(['qlora', 'qblora', 'lora-dense']);
  });

  it('runs the smoke shapes on the CPU, takes overrides, and shortens quick runs', () => {
    expect(readTrainConfig(CPU).shape).toEqual(SMOKE_SHAPE);
    const c = readTrainConfig({ BLORA_BENCH_QUICK: '1', BLORA_BENCH_TRAIN_LAYERS: '5', BLORA_BENCH_TRAIN_VARIANTS: 'qblora, qlora,qblora', BLORA_BENCH_LORA_STEPS: '7' });
    expect(c.shape.layers).toBe(5);
    expect(c.shape.hidden).toBe(2048);
    expect(c.variants).toEqual(['qblora', 'qlora']);
    expect([c.warmup, c.steps]).toEqual([1, 7]);
    expect(readTrainConfig({ BLORA_BENCH_TRAIN_STEPS: '4', BLORA_BENCH_LORA_STEPS: '7' }).steps).toBe(4);
    expect(readTrainConfig({ BLORA_BENCH_TRAIN_DEVICE: 'cuda', BLORA_BENCH_TRAIN_SMOKE: '1' }).shape).toEqual(SMOKE_SHAPE);
    expect(readTrainConfig({ BLORA_BENCH_TRAIN_PROFILE: '1' }).profile).toBe(true);
  });

  it('rejects bad settings with the variable named', () => {
    expect(() => parseVariants('qlora,dora')).toThrow(/unknown variant 'dora'/);
    expect(() => parseVariants(' , ')).toThrow(/no variant/);
    expect(() => readTrainConfig({ BLORA_BENCH_TRAIN_DTYPE: 'float16' })).toThrow(/BLORA_BENCH_TRAIN_DTYPE must be bfloat16 or float32/);
    expect(() => readTrainConfig({ BLORA_BENCH_TRAIN_LAYERS: '0' })).toThrow(/BLORA_BENCH_TRAIN_LAYERS must be a positive integer/);
    expect(() => readTrainConfig({ BLORA_BENCH_TRAIN_DEVICE: 'tpu' })).toThrow(/BLORA_BENCH_TRAIN_DEVICE must be cuda or cpu/);
    expect(() => readTrainConfig({ BLORA_BENCH_TRAIN_SEQ: '1' })).toThrow(/at least 2/);
    expect(() => readTrainConfig({ BLORA_BENCH_TRAIN_HEADS: '3' })).toThrow(/must divide into 3 heads/);
    expect(() => readTrainConfig({ BLORA_BENCH_TRAIN_LR: '-1' })).toThrow(/BLORA_BENCH_TRAIN_LR must be a positive number/);
  });
});

describe('random NF4 weights', () => {
  it('hold uniform codes and absmax around the value that gives the dense init RMS', () => {
    const w = randomNf4Weight(24, 96, 64, { device: 'cpu', generator: new Generator(5) });
    const n = 24 * 96;
    expect(w.packed.numel).toBe(n / 2);
    expect(w.absmax!.numel).toBe(Math.ceil(n / 64));
    expect(Array.from(w.table.toFloat64Array())).toEqual(Array.from(NF4_CODE));
    const bytes = w.packed.toTypedArray() as Uint8Array;
    const absmax = w.absmax!.toFloat64Array();
    const codes = new Set<number>();
    let squares = 0;
    for (let i = 0; i < n; i++) {
      const code = i % 2 === 0 ? bytes[i >> 1]! >> 4 : bytes[i >> 1]! & 15;
      codes.add(code);
      const value = NF4_CODE[code]! * absmax[Math.floor(i / 64)]!;
      squares += value * value;
    }
    expect(codes.size).toBe(16);
    const center = absmax.reduce((s, v) => s + v, 0) / absmax.length;
    for (const a of absmax) expect(Math.abs(a / center - 1)).toBeLessThanOrEqual(0.25);
    expect(Math.abs(Math.sqrt(squares / n) / INIT_STD - 1)).toBeLessThan(0.15);
    w.dispose();
  });
});

describe('models of the training-step benchmark', () => {
  it('QLoRA and Q-BLoRA sit on NF4 bases, LoRA-dense on dense ones, all with LoRA r=8 parameter counts', () => {
    const config = cpuConfig();
    const counts: number[] = [];
    for (const variant of config.variants) {
      const built = buildTrainModel(variant, config);
      const layers = built.model.linearLayers();
      expect(layers).toHaveLength(7 * SMOKE_SHAPE.layers);
      for (const [, layer] of layers) {
        expect(layer).toBeInstanceOf(AdaptedLinear);
        const adapted = layer as unknown as AdaptedLinear;
        expect(adapted.base).toBeInstanceOf(variant === 'lora-dense' ? DenseBase : QuantizedBase);
        expect(adapted.adapter.method).toBe(variant === 'qblora' ? 'qblora' : 'lora');
        expect(adapted.adapter.lambdaIn).toBe(variant === 'qblora' ? 2 : 1);
      }
      // Only the adapters train; lm_head and the embeddings stay frozen and unadapted.
      const trainable = built.model.namedParameters().filter(([, t]) => t.requiresGrad).map(([n]) => n);
      expect(trainable.every((n) => /\.adapter\.lora_[AB]$/.test(n))).toBe(true);
      expect(built.model.lm_head).not.toBeNull();
      expect(built.model.lm_head!.weight.requiresGrad).toBe(false);
      counts.push(built.trainableParams);
      built.dispose();
    }
    expect(counts).toEqual(counts.map(() => loraParameterCount(SMOKE_SHAPE, 8)));
    // The peer's count, for the record: PEFT LoRA r = 64 on TinyLlama trains 50,462,720 parameters.
    expect(loraParameterCount(TINYLLAMA_SHAPE, 64)).toBe(50_462_720);
  });

  it('frees every tensor it made when disposed', () => {
    for (const variant of ['qlora', 'lora-dense'] as const) {
      const before = memoryStats('cpu').bytes;
      const built = buildTrainModel(variant, cpuConfig());
      // The adapters' kaiming-uniform init may leave one float32 draw per A matrix to the garbage collector.
      const initDraws = [...built.attached.layers.values()].reduce((s, l) => s + l.adapter.loraA!.numel * 4, 0);
      const ids = randomTokenIds(SMOKE_SHAPE, 'cpu', 3);
      runTrainingSteps(built, ids, { warmup: 0, steps: 1, budgetSeconds: 60, lr: 1e-3, synchronize: () => {} });
      ids.dispose();
      built.dispose();
      expect(memoryStats('cpu').bytes - before).toBeLessThanOrEqual(initDraws);
    }
  });
});

describe('a run of training steps', () => {
  it('starts at the next-token loss of the base model and trains the adapters only', () => {
    for (const variant of ['qlora', 'qblora'] as const) {
      const config = cpuConfig({ BLORA_BENCH_TRAIN_SEQ: '7', BLORA_BENCH_TRAIN_VOCAB: '53' });
      const built = buildTrainModel(variant, config);
      const { batch, seq, vocab } = config.shape;
      const ids = randomTokenIds(config.shape, 'cpu', 9);
      const logits = tidy(() => noGrad(() => built.model.forward(ids)).toFloat64Array());
      const expected = referenceLoss(logits, ids.toTypedArray() as Int32Array, batch, seq, vocab);
      const adapters = [...built.attached.layers.values()];
      const codesBefore = (adapters[0]!.base as QuantizedBase).quantized.codes.toFloat64Array();
      let syncs = 0;
      const seen: number[] = [];
      const run = runTrainingSteps(built, ids, {
        warmup: 1, steps: 3, budgetSeconds: 60, lr: 1e-2, synchronize: () => { syncs += 1; },
        onStep: (i) => seen.push(i),
      });
      expect(seen).toEqual([-1, 0, 1, 2]);
      expect(syncs).toBe(5);
      expect(run.warmupMs).toHaveLength(1);
      expect(run.stepMs).toHaveLength(3);
      expect(run.budgetHit).toBe(false);
      // The first step's loss is the base model's (B starts at zero), to float32 rounding.
      expect(Math.abs(run.losses[0]! - expected)).toBeLessThan(1e-5 * expected);
      expect(Math.abs(expected - Math.log(vocab))).toBeLessThan(0.1);
      expect(run.losses[3]!).toBeLessThan(run.losses[0]!);
      const trainedB = adapters.map((l) => maxAbs(l.adapter.loraB!));
      expect(Math.min(...trainedB)).toBeGreaterThan(0);
      expect(Array.from((adapters[0]!.base as QuantizedBase).quantized.codes.toFloat64Array())).toEqual(Array.from(codesBefore));
      ids.dispose();
      built.dispose();
    }
  });

  it('runs in bfloat16 with float32 adapters, and stops timing at the budget', () => {
    const config = readTrainConfig(CPU);
    expect(config.dtype).toBe('bfloat16');
    const built = buildTrainModel('lora-dense', config);
    expect(built.model.lm_head!.weight.dtype).toBe('bfloat16');
    const ids = randomTokenIds(config.shape, 'cpu', 4);
    const run = runTrainingSteps(built, ids, { warmup: 0, steps: 5, budgetSeconds: 1e-9, lr: 1e-3, synchronize: () => {} });
    expect(run.stepMs).toHaveLength(1);
    expect(run.budgetHit).toBe(true);
    expect(Number.isFinite(run.losses[0]!)).toBe(true);
    ids.dispose();
    disposeModel(built.model);
  });

  it('profiles one extra step op by op when asked, after the timed steps', () => {
    const config = cpuConfig();
    const built = buildTrainModel('qblora', config, 1);
    const ids = randomTokenIds(config.shape, 'cpu', 5);
    const run = runTrainingSteps(built, ids, { warmup: 0, steps: 1, budgetSeconds: 60, lr: 1e-3, synchronize: () => {}, profileDevice: 'cpu' });
    expect(run.stepMs).toHaveLength(1);
    const calls = Object.fromEntries(run.profile!.entries.map((e) => [e.op, e.calls]));
    // Q-BLoRA pools the adapter input and repeats its output; the base is NF4; one loss.
    expect(calls).toMatchObject({ avgPool1d: expect.any(Number), repeatInterleave: expect.any(Number), nf4Matmul: expect.any(Number), crossEntropy: 1, adamwStep: expect.any(Number) });
    expect(run.profile!.opMs).toBeGreaterThan(0);
    ids.dispose();
    disposeModel(built.model);
  });

  it('reports figures measured with fewer layers than asked for as scaled, and leaves out an unknown peak', () => {
    const config = cpuConfig();
    const built = buildTrainModel('qlora', config, 1);
    const ids = randomTokenIds(config.shape, 'cpu', 2);
    const run = runTrainingSteps(built, ids, { warmup: 0, steps: 2, budgetSeconds: 60, lr: 1e-3, synchronize: () => {} });
    const rows = stepResults({
      variant: 'qlora', config, built, run, buildSeconds: 0, oomAttempts: [{ layers: 2, error: 'out of memory' }],
      memory: { peakGiB: null, note: 'not measured', liveGiBAfterSteps: 0 },
    });
    expect(rows.map((r) => r.id)).toEqual(['train.qlora.step', 'train.qlora.tokens']);
    const [step, tokens] = rows as unknown as [Record<string, unknown>, Record<string, unknown>];
    const ms = (run.stepMs[0]! + run.stepMs[1]!) / 2;
    expect(step.value).toBeCloseTo(ms, 9);
    expect(step.layers).toBe(1);
    expect(step.requestedLayers).toBe(2);
    expect(step.scaledMs).toBeCloseTo(2 * ms, 9);
    expect(tokens.value).toBeCloseTo((SMOKE_SHAPE.batch * SMOKE_SHAPE.seq * 1000) / ms, 6);
    expect(tokens.scaledValue).toBeCloseTo((SMOKE_SHAPE.batch * SMOKE_SHAPE.seq * 1000) / (2 * ms), 6);
    expect(String(step.label)).toContain('(1 layers, scaled)');
    expect(String(step.scaling)).toMatch(/measured at 1 of 2 layers/);
    ids.dispose();
    built.dispose();
  });
});

function maxAbs(t: Tensor): number {
  return t.toFloat64Array().reduce((m, v) => Math.max(m, Math.abs(v)), 0);
}
