import { describe, expect, it } from 'vitest';
import { memoryStats, tensor, transpose } from '@blora/tensor';
import { randomValues } from '@blora/tensor/testing';
import { InstructionDataset } from '../src/data/index.js';
import { Trainer, causalLmLoss, resolveTrainingConfig, trainableParameters, warmupSteps } from '../src/train/index.js';
import { tinyAdaptedModel, tinyTokenizer, wordnetExamples } from './train-fixtures.js';

/** Summed -log softmax(logits)[target] over counted targets, divided by `norm`, and its gradient; float64 loops. */
function refLoss(logits: ArrayLike<number>, targets: readonly number[], v: number, norm: number): { loss: number; grad: Float64Array } {
  let loss = 0;
  const grad = new Float64Array(targets.length * v);
  targets.forEach((t, row) => {
    if (t === -100) return;
    let max = -Infinity;
    for (let j = 0; j < v; j++) max = Math.max(max, logits[row * v + j]!);
    let sum = 0;
    for (let j = 0; j < v; j++) sum += Math.exp(logits[row * v + j]! - max);
    loss -= logits[row * v + t]! - max - Math.log(sum);
    for (let j = 0; j < v; j++) grad[row * v + j] = (Math.exp(logits[row * v + j]! - max) / sum - (j === t ? 1 : 0)) / norm;
  });
  return { loss: loss / norm, grad };
}

describe('causalLmLoss', () => {
  it('matches a float64 reference, gradient included, for contiguous and transposed logits', () => {
    const [b, t, v] = [2, 3, 5];
    const values = randomValues(b * t * v, 4);
    const targets = [1, -100, 4, 0, 2, -100];
    const ref = refLoss(values, targets, v, 3);
    const logits = tensor(values, { shape: [b, t, v] });
    logits.requiresGrad = true;
    const loss = causalLmLoss(logits, tensor(targets, { dtype: 'int32', shape: [b, t] }), 3);
    expect(loss.item()).toBeCloseTo(ref.loss, 5);
    loss.backward();
    const g = logits.grad!.toFloat64Array();
    ref.grad.forEach((x, i) => expect(g[i]).toBeCloseTo(x, 6));
    // The same logits stored [b, v, t] and viewed as [b, t, v].
    const stored = new Float64Array(b * t * v);
    for (let i = 0; i < b; i++) for (let j = 0; j < t; j++) for (let k = 0; k < v; k++) stored[(i * v + k) * t + j] = values[(i * t + j) * v + k]!;
    const view = transpose(tensor(stored, { shape: [b, v, t] }), 1, 2);
    expect(causalLmLoss(view, tensor(targets, { dtype: 'int32', shape: [b, t] }), 3).item()).toBeCloseTo(ref.loss, 5);
  });

  it('rejects mismatched shapes', () => {
    const logits = tensor(randomValues(12, 1), { shape: [1, 3, 4] });
    expect(() => causalLmLoss(logits, tensor([0, 1], { dtype: 'int32', shape: [1, 2] }), 1)).toThrow(/targets must be \[1, 3\]/);
    expect(() => causalLmLoss(tensor([1, 2]), tensor([0], { dtype: 'int32', shape: [1, 1] }), 1)).toThrow(/logits must be \[B, T, V\]/);
    expect(() => causalLmLoss(logits, tensor([0, 1, 2], { dtype: 'int32', shape: [1, 3] }), 0)).toThrow(/normalizer must be positive/);
  });
});

describe('training config', () => {
  it('defaults to the released recipe and checks every field', () => {
    const c = resolveTrainingConfig();
    expect(c).toMatchObject({ lr: 2e-4, betas: [0.9, 0.999], weightDecay: 0, warmupRatio: 0.03, maxGradNorm: 0.3, batchSize: 4, gradAccum: 4, steps: 10000 });
    expect(warmupSteps(c)).toBe(300);
    expect(warmupSteps({ steps: 10, warmupRatio: 0.03 })).toBe(1);
    expect(() => resolveTrainingConfig({ steps: 0 })).toThrow(/steps must be a positive integer, got 0/);
    expect(() => resolveTrainingConfig({ lr: -1 })).toThrow(/lr must be a positive number/);
    expect(() => resolveTrainingConfig({ nonFinite: 'ignore' as 'stop' })).toThrow(/nonFinite must be 'stop' or 'skip'/);
  });
});

describe('Trainer', () => {
  const tok = tinyTokenizer();

  it('trains only the adapters, lowers the loss, and keeps memory flat', () => {
    const { model } = tinyAdaptedModel();
    const frozen = model.namedParameters().filter(([, t]) => !t.requiresGrad).map(([n, t]) => [n, t.toFloat64Array()] as const);
    const data = new InstructionDataset(wordnetExamples(8), tok, { seed: 1 });
    const trainer = new Trainer(model, data, { steps: 14, lr: 1e-2, warmupRatio: 0, batchSize: 2, gradAccum: 2 });
    expect(trainer.params.map(([n]) => n)).toEqual(trainableParameters(model).map(([n]) => n));
    expect(trainer.params.every(([n]) => /\.adapter\.lora_[AB]$/.test(n))).toBe(true);
    trainer.run({ until: 2 });
    const before = memoryStats('cpu');
    const result = trainer.run();
    const after = memoryStats('cpu');
    expect(after.liveTensors).toBe(before.liveTensors);
    expect(after.bytes).toBe(before.bytes);
    const losses = trainer.history.map((h) => h.loss);
    const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
    expect(mean(losses.slice(-4))).toBeLessThan(0.8 * mean(losses.slice(0, 3)));
    expect(result.steps).toBe(14);
    expect(result.finalLoss).toBeCloseTo(mean(losses.slice(-10)), 12);
    for (const [name, v] of frozen) expect(model.namedParameters().find(([n]) => n === name)![1].toFloat64Array()).toEqual(v);
  });

  it('warms the learning rate up linearly, then holds it (the first step runs at 0 as in transformers)', () => {
    const { model } = tinyAdaptedModel();
    const data = new InstructionDataset(wordnetExamples(4), tok);
    const records: number[] = [];
    const trainer = new Trainer(model, data, { steps: 100, lr: 1e-3, batchSize: 1, gradAccum: 1, onStep: (r) => records.push(r.lr) });
    trainer.run({ until: 5 });
    expect(records).toEqual([0, 1e-3 / 3, 2e-3 / 3, 1e-3, 1e-3]);
  });

  it('gives the same step whether the examples come in one batch or are accumulated over micro-batches', () => {
    const run = (batchSize: number, gradAccum: number) => {
      const { model } = tinyAdaptedModel();
      const data = new InstructionDataset(wordnetExamples(8), tok, { seed: 3 });
      const trainer = new Trainer(model, data, { steps: 1, lr: 1e-2, warmupRatio: 0, batchSize, gradAccum });
      const record = trainer.trainStep();
      return { record, weights: trainer.params.map(([, t]) => t.toFloat64Array()) };
    };
    const whole = run(4, 1);
    const accumulated = run(1, 4);
    expect(accumulated.record.targetTokens).toBe(whole.record.targetTokens);
    expect(accumulated.record.loss).toBeCloseTo(whole.record.loss, 5);
    expect(accumulated.record.gradNorm).toBeCloseTo(whole.record.gradNorm, 4);
    whole.weights.forEach((w, i) => {
      const a = accumulated.weights[i]!;
      for (let k = 0; k < w.length; k++) expect(Math.abs(a[k]! - w[k]!)).toBeLessThan(2e-5);
    });
  });

  it('refuses a model with nothing to train, and steps past the end', () => {
    const { model, attached } = tinyAdaptedModel();
    attached.setTrainable(false);
    const data = new InstructionDataset(wordnetExamples(2), tok);
    expect(() => new Trainer(model, data, { steps: 1 })).toThrow(/no parameters that require grad/);
    attached.setTrainable(true);
    const trainer = new Trainer(model, data, { steps: 1, batchSize: 1, gradAccum: 1 });
    trainer.run();
    expect(() => trainer.trainStep()).toThrow(/all 1 steps are done/);
    expect(() => trainer.run({ until: 2 })).toThrow(/until must be an integer in \[0, 1\]/);
  });
});
