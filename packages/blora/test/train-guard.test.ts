import { describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { add, full, sqrt, sum, type Tensor } from '@blora/tensor';
import { assignInPlace, noGrad } from '@blora/autograd';
import { InstructionDataset } from '../src/data/index.js';
import { NonFiniteError, Trainer, readLog, type CausalLM, type StepRecord } from '../src/train/index.js';
import { removeDir, tempDir, tinyAdaptedModel, tinyTokenizer, wordnetExamples } from './train-fixtures.js';

/** Wraps a model; on its next forward adds sum(sqrt(p)), which is 0 for p = 0 but has an infinite gradient. */
class InfiniteGradientOnce implements CausalLM {
  armed = true;
  constructor(private readonly inner: CausalLM & { train(mode?: boolean): unknown }, private readonly param: Tensor) {}
  forward(ids: Tensor): Tensor {
    const y = this.inner.forward(ids);
    if (!this.armed) return y;
    this.armed = false;
    return add(y, sum(sqrt(this.param)));
  }
  namedParameters(): [string, Tensor][] {
    return this.inner.namedParameters();
  }
  train(mode = true): void {
    this.inner.train(mode);
  }
}

describe('non-finite guard', () => {
  const data = () => new InstructionDataset(wordnetExamples(6), tinyTokenizer(), { seed: 2 });

  it("stops at a NaN loss, names the first non-finite parameter and applies no update ('stop')", () => {
    const dir = tempDir();
    try {
      const { model } = tinyAdaptedModel();
      const trainer = new Trainer(model, data(), { steps: 5, lr: 1e-2, warmupRatio: 0, batchSize: 1, gradAccum: 2, outDir: dir });
      trainer.run({ until: 1 });
      const [name, bad] = trainer.params[5]!;
      noGrad(() => assignInPlace(bad, full(bad.shape, NaN)));
      const before = trainer.params.map(([, t]) => t.toFloat64Array());
      let error: unknown;
      try {
        trainer.run();
      } catch (e) {
        error = e;
      }
      expect(error).toBeInstanceOf(NonFiniteError);
      expect((error as NonFiniteError).message).toBe(`step 2: the loss is NaN; first non-finite parameter: '${name}'; stopping (no update was applied)`);
      expect((error as NonFiniteError).tensorName).toBe(name);
      expect((error as NonFiniteError).step).toBe(2);
      expect(trainer.step).toBe(1);
      trainer.params.forEach(([, t], i) => expect(t.toFloat64Array()).toEqual(before[i]));
      expect(trainer.params.every(([, t]) => t.grad === null)).toBe(true);
      const log = readLog(join(dir, 'log.jsonl')) as StepRecord[];
      expect(log.map((r) => r.step)).toEqual([1, 2]);
      expect(Number.isNaN(log[1]!.loss)).toBe(true);
      expect(log[1]!.skipped).toBe(true);
      expect(readFileSync(join(dir, 'log.jsonl'), 'utf8').split('\n')[1]).toContain('"loss":"NaN"');
    } finally {
      removeDir(dir);
    }
  });

  it("skips a step whose gradient is not finite, naming the parameter, and carries on ('skip')", () => {
    const { model } = tinyAdaptedModel();
    const [name, zeroB] = model.namedParameters().find(([n, t]) => t.requiresGrad && n.endsWith('.lora_B'))!;
    const wrapped = new InfiniteGradientOnce(model, zeroB);
    const notes: string[] = [];
    const records: StepRecord[] = [];
    const trainer = new Trainer(wrapped, data(), {
      steps: 3, lr: 1e-2, warmupRatio: 0, batchSize: 1, gradAccum: 1, nonFinite: 'skip',
      progress: { write: (t: string) => notes.push(t), isTTY: false }, onStep: (r) => records.push(r),
    });
    const before = trainer.params.map(([, t]) => t.toFloat64Array());
    trainer.run({ until: 1 });
    const first = records[0]!;
    expect(first.skipped).toBe(true);
    expect(Number.isFinite(first.loss)).toBe(true);
    expect(first.gradNorm).not.toBeLessThan(Infinity);
    expect(first.message).toMatch(new RegExp(`^step 1: the gradient norm is (NaN|Infinity); first non-finite gradient: '${name.replace(/\./g, '\\.')}'$`));
    trainer.params.forEach(([, t], i) => expect(t.toFloat64Array()).toEqual(before[i]));
    const result = trainer.run();
    expect(result.steps).toBe(3);
    expect(result.skippedSteps).toBe(1);
    expect(notes.join('')).toContain(`first non-finite gradient: '${name}'`);
    expect(trainer.history.map((h) => Number.isFinite(h.loss))).toEqual([true, true, true]);
    expect(trainer.params.some(([, t], i) => t.toFloat64Array().some((v, k) => v !== before[i]![k]))).toBe(true);
  });
});
