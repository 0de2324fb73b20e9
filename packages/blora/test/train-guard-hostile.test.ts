// The training guards on hostile values: NaN and infinities in the loss or the gradients under
// both policies (stop and skip), each message naming the first offending tensor; learning-rate
// and λ values that are zero, negative, NaN, infinite or do not divide the layers; and memory
// that stays flat over a long run.
import { describe, expect, it } from 'vitest';
import { add, full, Generator, memoryStats, mul, sqrt, sum, tensor, type Tensor } from '@blora/tensor';
import { assignInPlace, Embedding, Linear, Module, noGrad } from '@blora/autograd';
import { InstructionDataset } from '../src/data/index.js';
import { AdaptedLinear, attachAdapters } from '../src/index.js';
import { NonFiniteError, Trainer, resolveTrainingConfig, type CausalLM, type StepRecord, type TrainerOptions } from '../src/train/index.js';
import { tinyAdaptedModel, tinyBaseModel, tinyTokenizer, wordnetExamples } from './train-fixtures.js';

type TrainableLM = CausalLM & { train(mode?: boolean): unknown };

/** Wraps a model; its next forward is changed by `poison` (once). */
class PoisonedOnce implements CausalLM {
  armed = true;
  constructor(private readonly inner: TrainableLM, private readonly poison: (logits: Tensor) => Tensor) {}
  forward(ids: Tensor): Tensor {
    const y = this.inner.forward(ids);
    if (!this.armed) return y;
    this.armed = false;
    return this.poison(y);
  }
  namedParameters(): [string, Tensor][] {
    return this.inner.namedParameters();
  }
  train(mode = true): void {
    this.inner.train(mode);
  }
}

const data = () => new InstructionDataset(wordnetExamples(6), tinyTokenizer(), { seed: 2 });
const options = (extra: Partial<TrainerOptions>): TrainerOptions => ({ steps: 4, lr: 1e-2, warmupRatio: 0, batchSize: 1, gradAccum: 1, ...extra });
const weights = (trainer: Trainer): Float64Array[] => trainer.params.map(([, t]) => t.toFloat64Array());

describe('non-finite guard, every case under both policies', () => {
  it("a NaN parameter under 'skip': the step is skipped naming it, and training carries on", () => {
    const { model } = tinyAdaptedModel();
    const records: StepRecord[] = [];
    const trainer = new Trainer(model, data(), options({ nonFinite: 'skip', onStep: (r) => records.push(r) }));
    const [name, bad] = trainer.params[3]!;
    const saved = bad.toFloat64Array();
    noGrad(() => assignInPlace(bad, full(bad.shape, NaN)));
    const before = weights(trainer);
    trainer.trainStep();
    expect(records[0]).toMatchObject({ step: 1, skipped: true, message: `step 1: the loss is NaN; first non-finite parameter: '${name}'` });
    // No update anywhere: the NaN was not spread by the optimizer, the other weights did not move.
    weights(trainer).forEach((w, i) => expect(Array.from(w)).toEqual(Array.from(before[i]!)));
    expect(trainer.params.every(([, t]) => t.grad === null)).toBe(true);
    noGrad(() => assignInPlace(bad, tensor(saved, { shape: bad.shape, dtype: bad.dtype })));
    const result = trainer.run();
    expect(result).toMatchObject({ steps: 4, skippedSteps: 1 });
    expect(records.slice(1).every((r) => r.skipped === undefined && Number.isFinite(r.loss))).toBe(true);
  });

  it("an infinite parameter under 'stop' is named as the first non-finite one", () => {
    const { model } = tinyAdaptedModel();
    const trainer = new Trainer(model, data(), options({}));
    const [name, bad] = trainer.params[0]!;
    noGrad(() => assignInPlace(bad, full(bad.shape, Infinity)));
    const error = catchError(() => trainer.trainStep());
    expect(error).toBeInstanceOf(NonFiniteError);
    expect((error as NonFiniteError).tensorName).toBe(name);
    expect((error as Error).message).toMatch(new RegExp(`^step 1: the loss is (NaN|-?Infinity); first non-finite parameter: '${escape(name)}'; stopping \\(no update was applied\\)$`));
    expect(trainer.step).toBe(0);
  });

  it("an infinite gradient under 'stop': no update, and the message names the parameter", () => {
    const { model } = tinyAdaptedModel();
    const [name, zeroB] = model.namedParameters().find(([n, t]) => t.requiresGrad && n.endsWith('.lora_B'))!;
    // sum(sqrt(p)) is 0 at p = 0, but its gradient 1 / (2 sqrt(p)) is infinite there.
    const wrapped = new PoisonedOnce(model, (y) => add(y, sum(sqrt(zeroB))));
    const trainer = new Trainer(wrapped, data(), options({}));
    const before = weights(trainer);
    const error = catchError(() => trainer.trainStep());
    expect(error).toBeInstanceOf(NonFiniteError);
    expect((error as NonFiniteError).tensorName).toBe(name);
    expect((error as Error).message).toMatch(new RegExp(`^step 1: the gradient norm is (NaN|Infinity); first non-finite gradient: '${escape(name)}'; stopping`));
    weights(trainer).forEach((w, i) => expect(Array.from(w)).toEqual(Array.from(before[i]!)));
    expect(trainer.params.every(([, t]) => t.grad === null)).toBe(true);
  });

  it.each(['stop', 'skip'] as const)("overflowing activations with finite parameters say so ('%s')", (policy) => {
    const { model } = tinyAdaptedModel();
    const wrapped = new PoisonedOnce(model, (y) => mul(y, 1e38)); // float32 logits overflow to ±Infinity
    const records: StepRecord[] = [];
    const trainer = new Trainer(wrapped, data(), options({ nonFinite: policy, onStep: (r) => records.push(r) }));
    const expected = /^step 1: the loss is (NaN|Infinity); every parameter is finite \(the activations overflowed\)/;
    if (policy === 'stop') {
      const error = catchError(() => trainer.trainStep());
      expect(error).toBeInstanceOf(NonFiniteError);
      expect((error as NonFiniteError).tensorName).toBeNull();
      expect((error as Error).message).toMatch(expected);
    } else {
      trainer.run();
      expect(records[0]!.message).toMatch(expected);
      expect(records.map((r) => r.skipped ?? false)).toEqual([true, false, false, false]);
    }
  });
});

describe('learning rate and λ validation', () => {
  it.each([
    [0, '0'], [-1e-3, '-0.001'], [NaN, 'NaN'], [Infinity, 'Infinity'], [-Infinity, '-Infinity'], ['1e-3', '"1e-3"'],
  ] as const)('lr %s is refused, naming the value', (lr, shown) => {
    expect(() => resolveTrainingConfig({ lr: lr as number })).toThrow(RangeError);
    expect(() => resolveTrainingConfig({ lr: lr as number })).toThrow(`training config: lr must be a positive number, got ${shown}`);
    const { model } = tinyAdaptedModel();
    expect(() => new Trainer(model, data(), { lr: lr as number })).toThrow(`lr must be a positive number, got ${shown}`);
  });

  it.each([
    [{ lambda: 0 }, 'adapter config: lambda must be a positive integer, got 0'],
    [{ lambda: -2 }, 'adapter config: lambda must be a positive integer, got -2'],
    [{ lambda: NaN }, 'adapter config: lambda must be a positive integer, got NaN'],
    [{ lambda: 1.5 }, 'adapter config: lambda must be a positive integer, got 1.5'],
    [{ lambda: Infinity }, 'adapter config: lambda must be a positive integer, got Infinity'],
    [{ lambdaIn: 3, lambdaOut: 2 }, "Q-BLoRA on layer 'model.layers.0.self_attn.q_proj': λin = 3 does not divide in_features = 32"],
    [{ lambdaIn: 2, lambdaOut: 5 }, "Q-BLoRA on layer 'model.layers.0.self_attn.q_proj': λout = 5 does not divide out_features = 32"],
    [{ lambdaIn: 64, lambdaOut: 2 }, "Q-BLoRA on layer 'model.layers.0.self_attn.q_proj': λin = 64 does not divide in_features = 32"],
  ] as const)('λ %j is refused before anything is attached or allocated', (factors, message) => {
    const model = tinyBaseModel();
    const flags = model.parameters().map((t) => t.requiresGrad);
    const before = memoryStats('cpu');
    expect(() => attachAdapters(model, { method: 'qblora', r: 2, ...factors })).toThrow(message);
    expect(memoryStats('cpu')).toEqual(before);
    expect(model.parameters().map((t) => t.requiresGrad)).toEqual(flags);
    expect(model.namedModules().some(([, m]) => m instanceof AdaptedLinear)).toBe(false);
  });
});

/** A micro language model (embedding, then one projection to the vocabulary), so 500 steps take a moment. */
class MicroLM extends Module {
  readonly embed: Embedding;
  readonly proj: Linear;
  constructor(vocab: number) {
    super();
    const generator = new Generator(5);
    this.embed = this.registerModule('embed', new Embedding(vocab, 8, { generator }));
    this.proj = this.registerModule('proj', new Linear(8, vocab, { bias: false, generator }));
  }
  forward(ids: Tensor): Tensor {
    return this.proj.forward(this.embed.forward(ids));
  }
}

describe('memory over a long run', () => {
  it('500 steps with dropout, accumulation and skipped steps keep live tensors and bytes flat', () => {
    const tokenizer = tinyTokenizer();
    const micro = new MicroLM(tokenizer.vocabSize);
    attachAdapters(micro, { method: 'qblora', r: 2, lambda: 2, dropout: 0.1, targetModules: ['proj'] }, { generator: new Generator(6) });
    const poisoned = new Set([150, 320]); // steps whose loss is made infinite (and skipped)
    const model: CausalLM = {
      forward: (ids) => {
        const y = micro.forward(ids);
        return poisoned.has(trainer.step + 1) ? mul(y, 1e38) : y;
      },
      namedParameters: () => micro.namedParameters(),
    };
    const examples = new InstructionDataset(wordnetExamples(16), tokenizer, { seed: 3, limits: { maxSourceLength: 24, maxTargetLength: 8 } });
    const trainer: Trainer = new Trainer(model, examples, { steps: 501, lr: 1e-3, warmupRatio: 0.01, batchSize: 2, gradAccum: 2, nonFinite: 'skip' });
    trainer.run({ until: 1 }); // the optimizer's moments exist from the first step on
    const before = memoryStats('cpu');
    for (let s = 1; s <= 5; s++) {
      trainer.run({ until: 1 + 100 * s });
      expect(memoryStats('cpu'), `after step ${trainer.step}`).toEqual(before);
    }
    expect(trainer.step).toBe(501);
    expect(trainer.run().skippedSteps).toBe(2);
  }, 60_000);
});

function catchError(fn: () => unknown): unknown {
  try {
    fn();
  } catch (e) {
    return e;
  }
  throw new Error('expected an error');
}

function escape(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}
