// A fine-tuning run killed (SIGKILL) at seeded random moments while it trains and writes a
// checkpoint after every step: each time, the newest checkpoint is complete and loads, no
// temporary directory is taken for a checkpoint, and `blora finetune --resume` finally ends
// with exactly the losses and adapter of a run that was never interrupted.
// The run is a child process executing the TypeScript sources through the module hooks in
// fixtures/ts-hooks.mjs, so the test needs no build.
import { spawn } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SafetensorsReader } from '@blora/tensor';
import { seededRandom } from '@blora/tensor/testing';
import { main, type CliIO } from '../src/cli/index.js';
import { ADAPTER_WEIGHTS_NAME, readAdapterConfig } from '../src/index.js';
import { listCheckpoints, readLog, readOptimizerState, readTrainerState, type StepRecord } from '../src/train/index.js';
import { removeDir, tempDir, wordnetExamples, writeJsonl, writeTinyCheckpoint } from './train-fixtures.js';

const fixtures = fileURLToPath(new URL('./fixtures/', import.meta.url));
const STEPS = 16;

let root: string;
let modelDir: string;
let dataFile: string;

beforeAll(() => {
  root = tempDir('blora-kill-');
  modelDir = join(root, 'model');
  writeTinyCheckpoint(modelDir);
  dataFile = join(root, 'train.jsonl');
  writeJsonl(dataFile, wordnetExamples(12));
});
afterAll(() => removeDir(root));

/** A small run with dropout (so the random streams matter) and a checkpoint after every step. */
function flags(out: string): string[] {
  return ['finetune', '--model', modelDir, '--data', dataFile, '--out', out, '--steps', String(STEPS), '--batch', '1', '--grad-accum', '1',
    '--rank', '4', '--dropout', '0.1', '--eval-size', '0', '--save-every', '1', '--keep-checkpoints', '2',
    '--max-source-len', '96', '--max-target-len', '16', '--seed', '3', '--quiet'];
}

async function runInProcess(argv: string[]): Promise<number> {
  const quiet: CliIO = { stdout: { write: () => true }, stderr: { write: () => true, isTTY: false } };
  return main(argv, quiet);
}

const newestStep = (checkpoints: string): number => listCheckpoints(checkpoints).at(-1)?.step ?? 0;

/**
 * Runs the command in a child process, waits until a checkpoint of step `afterStep` or later
 * exists, lets it run `steps` steps more (a fraction of 0..1.5, timed by the step that led there,
 * so the kill lands in the same place of the cycle however fast the machine is), then kills it
 * with SIGKILL.
 */
async function runAndKill(argv: string[], checkpoints: string, afterStep: number, steps: number): Promise<void> {
  const child = spawn(process.execPath, ['--conditions=@blora/source', '--import', join(fixtures, 'register-ts.mjs'), join(fixtures, 'cli-child.ts'), ...argv], {
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let stderr = '';
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const exited = new Promise<string | null>((resolve) => child.on('exit', (_code, signal) => resolve(signal)));
  let done = false;
  void exited.then(() => (done = true));
  // The step before afterStep's checkpoint: when it appeared, and when afterStep's did.
  let before = 0;
  let reached = 0;
  while (!done) {
    const step = newestStep(checkpoints);
    if (step >= afterStep) {
      reached = performance.now();
      break;
    }
    if (step === afterStep - 1 && before === 0) before = performance.now();
    await new Promise((r) => setTimeout(r, 5));
  }
  const stepMs = before > 0 ? reached - before : 0;
  await new Promise((r) => setTimeout(r, steps * stepMs));
  child.kill('SIGKILL');
  const signal = await exited;
  expect(signal, `the run ended before it was killed: ${stderr}`).toBe('SIGKILL');
}

/** The state a kill must leave: only complete checkpoints are listed, and the newest loads entirely. */
function checkAfterKill(checkpoints: string, atLeast: number): number {
  const listed = listCheckpoints(checkpoints);
  expect(listed.length).toBeGreaterThan(0);
  for (const name of readdirSync(checkpoints)) {
    expect(name).toMatch(/^(checkpoint-\d+|\.(tmp|old)-checkpoint-\d+-\d+)$/);
    if (name.startsWith('.')) expect(listed.some((c) => c.dir === join(checkpoints, name))).toBe(false);
  }
  for (const { step, dir } of listed) {
    const state = readTrainerState(dir);
    expect(state.step).toBe(step);
    expect(state.history.map((h) => h.step)).toEqual(Array.from({ length: step }, (_, i) => i + 1));
    const optimizer = readOptimizerState(dir);
    expect(Object.keys(optimizer.tensors).length).toBeGreaterThan(0);
    for (const t of Object.values(optimizer.tensors)) t.dispose();
    expect(readAdapterConfig(join(dir, 'adapter')).r).toBe(4);
    const reader = SafetensorsReader.open(join(dir, 'adapter', ADAPTER_WEIGHTS_NAME));
    try {
      for (const name of reader.names()) reader.readTensor(name).dispose();
    } finally {
      reader.close();
    }
  }
  const newest = listed.at(-1)!.step;
  expect(newest).toBeGreaterThanOrEqual(atLeast);
  return newest;
}

function stepLosses(out: string): [number, number][] {
  return readLog(join(out, 'log.jsonl')).filter((r): r is StepRecord => r.type === 'step').map((r) => [r.step, r.loss]);
}

function adapterWeights(out: string): Record<string, number[]> {
  const reader = SafetensorsReader.open(join(out, ADAPTER_WEIGHTS_NAME));
  try {
    return Object.fromEntries(reader.names().map((n) => [n, Array.from(reader.readRaw(n).data)]));
  } finally {
    reader.close();
  }
}

describe('a run killed while it writes checkpoints', () => {
  it('keeps its newest checkpoint loadable, and --resume matches an uninterrupted run exactly', async () => {
    const straight = join(root, 'straight');
    expect(await runInProcess(flags(straight))).toBe(0);
    const expectedLosses = stepLosses(straight);
    expect(expectedLosses.map(([s]) => s)).toEqual(Array.from({ length: STEPS }, (_, i) => i + 1));

    const killed = join(root, 'killed');
    const checkpoints = join(killed, 'checkpoints');
    const random = seededRandom(2024);
    // First run killed early; then resumed and killed again further on (up to a step and a half
    // after a checkpoint, so the kill lands anywhere in the train / write / prune cycle, and the
    // second kill well before the last step).
    await runAndKill(flags(killed), checkpoints, 2, 1.5 * random());
    let reached = checkAfterKill(checkpoints, 2);
    await runAndKill(['finetune', '--out', killed, '--resume', '--quiet'], checkpoints, reached + 3, 1.5 * random());
    reached = checkAfterKill(checkpoints, reached + 3);
    expect(reached).toBeLessThan(STEPS);

    expect(await runInProcess(['finetune', '--out', killed, '--resume', '--quiet'])).toBe(0);
    expect(stepLosses(killed)).toEqual(expectedLosses);
    expect(adapterWeights(killed)).toEqual(adapterWeights(straight));
    expect(existsSync(join(checkpoints, `checkpoint-${STEPS}`))).toBe(true);
    expect(readdirSync(checkpoints).filter((n) => n.startsWith('.'))).toEqual([]);
  }, 60_000);
});
