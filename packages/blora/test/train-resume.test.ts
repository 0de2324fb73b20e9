import { afterEach, describe, expect, it } from 'vitest';
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { InstructionDataset } from '../src/data/index.js';
import { saveAdapter } from '../src/index.js';
import { adapterWeightsIO } from '../src/cli/model-io.js';
import {
  Trainer, latestCheckpoint, listCheckpoints, readLog, readTrainerState, type TrainerOptions,
} from '../src/train/index.js';
import { removeDir, tempDir, tinyAdaptedModel, tinyTokenizer, wordnetExamples } from './train-fixtures.js';

const dirs: string[] = [];
afterEach(() => {
  while (dirs.length) removeDir(dirs.pop()!);
});

/** A trainer over the tiny model (dropout on, so the random streams matter) writing into `outDir`. */
function makeTrainer(outDir: string, options: { adapterSeed?: number; peft?: boolean; extra?: Partial<TrainerOptions> } = {}) {
  const { model, attached, dropoutGenerator } = tinyAdaptedModel({ adapterSeed: options.adapterSeed ?? 7, config: { dropout: 0.2 } });
  const data = new InstructionDataset(wordnetExamples(10), tinyTokenizer(), { seed: 4 });
  const trainer = new Trainer(model, data, {
    steps: 6, lr: 5e-3, warmupRatio: 0.34, batchSize: 1, gradAccum: 2, checkpointEvery: 3, keepCheckpoints: 0, outDir,
    generators: { dropout: dropoutGenerator },
    ...(options.peft ? { weights: adapterWeightsIO(attached, (dir) => saveAdapter(dir, attached)) } : {}),
    ...(options.extra ?? {}),
  });
  return { trainer, attached, dropoutGenerator };
}

function weightsOf(trainer: Trainer): Float32Array[] {
  return trainer.params.map(([, t]) => t.toTypedArray() as Float32Array);
}

describe.each([
  ['trainable.safetensors', false],
  ['a PEFT adapter directory', true],
])('resume with weights in %s', (_label, peft) => {
  it('continues bit-identically: N steps straight equal N/2, a restart from the checkpoint, and N/2', () => {
    const straightDir = tempDir();
    const splitDir = tempDir();
    dirs.push(straightDir, splitDir);
    const straight = makeTrainer(straightDir, { peft }).trainer;
    straight.run();

    const first = makeTrainer(splitDir, { peft }).trainer;
    first.run({ until: 4 });
    // A fresh process: another model instance with different adapter init, resumed from checkpoint-3.
    const second = makeTrainer(splitDir, { peft, adapterSeed: 99 }).trainer;
    expect(second.resume()).toBe(3);
    second.run();

    expect(second.history.map((h) => h.loss)).toEqual(straight.history.map((h) => h.loss));
    expect(weightsOf(second)).toEqual(weightsOf(straight));
    // The log holds each step once: the lines of step 4 from the interrupted run were dropped.
    const steps = readLog(join(splitDir, 'log.jsonl')).filter((r) => r.type === 'step').map((r) => r.step);
    expect(steps).toEqual([1, 2, 3, 4, 5, 6]);
    expect(listCheckpoints(join(splitDir, 'checkpoints')).map((c) => c.step)).toEqual([3, 6]);
    const files = readdirSync(join(splitDir, 'checkpoints', 'checkpoint-3')).sort();
    expect(files).toEqual(peft
      ? ['adapter', 'optimizer.json', 'optimizer.safetensors', 'trainer_state.json']
      : ['optimizer.json', 'optimizer.safetensors', 'trainable.safetensors', 'trainer_state.json']);
    const state = readTrainerState(join(splitDir, 'checkpoints', 'checkpoint-3'));
    expect(state).toMatchObject({ step: 3, totalSteps: 6, dataPosition: 6, dataSize: 10, dataSeed: 4, batchSize: 1, gradAccum: 2 });
    expect(Object.keys(state.generators).sort()).toEqual(['default', 'dropout']);
  });
});

describe('checkpoints', () => {
  it('refuses to resume with other settings or without a checkpoint', () => {
    const dir = tempDir();
    dirs.push(dir);
    expect(() => makeTrainer(dir).trainer.resume()).toThrow(/no checkpoint found under/);
    makeTrainer(dir).trainer.run({ until: 3 });
    expect(() => makeTrainer(dir, { extra: { steps: 8 } }).trainer.resume()).toThrow(/was made with steps 6, this run has 8/);
    expect(() => makeTrainer(dir, { extra: { batchSize: 2 } }).trainer.resume()).toThrow(/batch size 1, this run has 2/);
  });

  it('are written atomically: a crash while writing leaves the previous checkpoint intact and usable', () => {
    const dir = tempDir();
    dirs.push(dir);
    const { attached, trainer, dropoutGenerator } = makeTrainer(dir, { peft: true });
    let saves = 0;
    const io = adapterWeightsIO(attached, (d) => {
      saves += 1;
      saveAdapter(d, attached);
      if (saves === 2) {
        writeFileSync(join(d, 'partial.bin'), 'half');
        throw new Error('disk full');
      }
    });
    const crashing = new Trainer(trainer.model, trainer.data, {
      steps: 6, lr: 5e-3, warmupRatio: 0.34, batchSize: 1, gradAccum: 2, checkpointEvery: 3, outDir: dir, weights: io,
      generators: { dropout: dropoutGenerator },
    });
    expect(() => crashing.run()).toThrow(/disk full/);
    const root = join(dir, 'checkpoints');
    expect(readdirSync(root)).toEqual(['checkpoint-3']);
    // A process killed mid-write leaves a temporary directory behind: it is never taken for a checkpoint.
    mkdirSync(join(root, '.tmp-checkpoint-6-4242', 'adapter'), { recursive: true });
    mkdirSync(join(root, 'checkpoint-9'));
    expect(latestCheckpoint(root)).toBe(join(root, 'checkpoint-3'));
    const resumed = makeTrainer(dir, { peft: true });
    expect(resumed.trainer.resume()).toBe(3);
    resumed.trainer.run();
    expect(existsSync(join(root, '.tmp-checkpoint-6-4242'))).toBe(false);
    expect(listCheckpoints(root).map((c) => c.step)).toEqual([3, 6]);
    expect(readTrainerState(join(root, 'checkpoint-6')).history).toHaveLength(6);
  });

  it('keep only the newest ones when asked, and write the loss curve with each', () => {
    const dir = tempDir();
    dirs.push(dir);
    const { trainer } = makeTrainer(dir, { extra: { checkpointEvery: 2, keepCheckpoints: 2 } });
    trainer.run();
    expect(listCheckpoints(join(dir, 'checkpoints')).map((c) => c.step)).toEqual([4, 6]);
    const svg = readFileSync(join(dir, 'loss.svg'), 'utf8');
    expect(svg.startsWith('<?xml')).toBe(true);
  });
});
