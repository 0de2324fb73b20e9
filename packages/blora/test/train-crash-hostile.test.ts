// Faults injected at every file-system step of each durable write: `node:fs` is wrapped so
// that, once armed, the k-th mutating call fails, and either every call after it too (the
// process died there: no clean-up runs) or only that one (an I/O error: the code's clean-up
// runs). For each k the previous state must survive intact and loadable, no temporary file or
// directory may pass for the real thing, and after an I/O error nothing temporary is left.
// The kill test (train-kill-hostile) does the same with real SIGKILLs.
import { cpSync, existsSync, mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { SafetensorsReader, tensor, writeSafetensors } from '@blora/tensor';
import { InstructionDataset } from '../src/data/index.js';
import { adapterWeightsIO } from '../src/cli/model-io.js';
import { writeDirectoryAtomically } from '../src/cli/output-dir.js';
import { loadAdapter, saveAdapter } from '../src/index.js';
import {
  JsonlLog, Trainer, latestCheckpoint, listCheckpoints, pruneCheckpoints, readLog, readOptimizerState, readTrainerState, truncateLog,
} from '../src/train/index.js';
import { removeDir, tempDir, tinyAdaptedModel, tinyBaseModel, tinyTokenizer, wordnetExamples } from './train-fixtures.js';

/**
 * The fault plan shared with the wrapped `node:fs`. 'die': the chosen call and every later one
 * fail, as when the process is killed there. 'fail': only the chosen call fails (a disk that
 * is full or broken for a moment), so the code's own clean-up runs.
 */
const fault = vi.hoisted(() => ({
  armed: false,
  mode: 'die' as 'die' | 'fail',
  /** Mutating calls still allowed before the fault. */
  remaining: Infinity,
  hit: false,
  dead: false,
  /** Mutating calls made while armed (the faulty one excluded). */
  calls: 0,
  /** Descriptors opened while armed and not closed (a dead process loses them; the test closes them). */
  open: new Set<number>(),
  closeLeft: (): void => {},
}));

vi.mock('node:fs', async (importOriginal) => {
  const real = await importOriginal<typeof import('node:fs')>();
  const mutating = ['openSync', 'writeSync', 'fsyncSync', 'fdatasyncSync', 'closeSync', 'renameSync', 'mkdirSync', 'rmSync', 'unlinkSync', 'writeFileSync'] as const;
  // Flushes are counted as steps but not made: what is tested is the order of the steps, and
  // real flushes would only slow the hundreds of writes down.
  const call = (name: (typeof mutating)[number], args: unknown[]): unknown =>
    name === 'fsyncSync' || name === 'fdatasyncSync' ? undefined : (real[name] as (...a: unknown[]) => unknown)(...args);
  const wrapped = Object.fromEntries(mutating.map((name) => [name, (...args: unknown[]) => {
    if (fault.armed) {
      if (fault.dead) throw new Error(`simulated crash at ${name}`);
      if (fault.remaining === 0) {
        fault.remaining = -1;
        fault.hit = true;
        fault.dead = fault.mode === 'die';
        throw new Error(`simulated ${fault.mode === 'die' ? 'crash' : 'I/O error'} at ${name}`);
      }
      if (fault.remaining > 0) fault.remaining -= 1;
      fault.calls += 1;
    }
    const result = call(name, args);
    if (fault.armed && name === 'openSync') fault.open.add(result as number);
    if (name === 'closeSync') fault.open.delete(args[0] as number);
    return result;
  }]));
  fault.closeLeft = () => {
    for (const fd of fault.open) real.closeSync(fd);
    fault.open.clear();
  };
  return { ...real, ...wrapped, default: { ...real, ...wrapped } };
});

/** Runs `write` with a fault at its mutating call number `at` (0-based); returns whether the fault happened. */
function faultAt(at: number, mode: 'die' | 'fail', write: () => void): boolean {
  Object.assign(fault, { armed: true, mode, remaining: at, hit: false, dead: false, calls: 0 });
  try {
    write();
  } catch (error) {
    if (!fault.hit) throw error;
  } finally {
    fault.armed = false;
    if (mode === 'die') fault.closeLeft();
    fault.open.clear();
  }
  return fault.hit;
}

/** How many mutating calls `write` makes when nothing fails. */
function countCalls(write: () => void): number {
  expect(faultAt(Infinity, 'die', write)).toBe(false);
  return fault.calls;
}

/** Names of hidden entries (temporary files and directories) directly in `dir`. */
const hidden = (dir: string): string[] => readdirSync(dir).filter((n) => n.startsWith('.'));

/** Every file under `dir` with its bytes, by relative path. */
function snapshot(dir: string): Map<string, string> {
  const out = new Map<string, string>();
  const walk = (d: string): void => {
    for (const name of readdirSync(d)) {
      const p = join(d, name);
      if (statSync(p).isDirectory()) walk(p);
      else out.set(relative(dir, p), readFileSync(p).toString('base64'));
    }
  };
  walk(dir);
  return out;
}

const dirs: string[] = [];
afterEach(() => {
  while (dirs.length) removeDir(dirs.pop()!);
});
function scratch(): string {
  const d = tempDir('blora-crash-');
  dirs.push(d);
  return d;
}

describe.each([
  ['trainable.safetensors', false, 'die'],
  ['a PEFT adapter directory', true, 'die'],
  ['a PEFT adapter directory', true, 'fail'],
] as const)('a fault at any step of a checkpoint write (weights in %s, mode %s)', (_label, peft, mode) => {
  it('leaves the previous checkpoint, or the complete new one, as the newest; nothing temporary is listed', () => {
    // Adapters on q_proj only: few tensors, so few write calls to fault one by one.
    const { model, attached, dropoutGenerator } = tinyAdaptedModel({ config: { dropout: 0.1, targetModules: ['q_proj'] } });
    const data = new InstructionDataset(wordnetExamples(6), tinyTokenizer(), { seed: 1 });
    const out = scratch();
    const trainer = new Trainer(model, data, {
      steps: 10, lr: 1e-2, warmupRatio: 0, batchSize: 1, gradAccum: 1, keepCheckpoints: 1, outDir: out,
      generators: { dropout: dropoutGenerator },
      ...(peft ? { weights: adapterWeightsIO(attached, (d) => saveAdapter(d, attached)) } : {}),
    });
    const root = join(out, 'checkpoints');
    trainer.trainStep();
    trainer.saveCheckpoint();
    const first = snapshot(join(root, 'checkpoint-1'));
    const pristine = scratch();
    cpSync(out, pristine, { recursive: true });
    trainer.trainStep();
    // The complete checkpoint-2 as an undisturbed write makes it.
    const reference = scratch();
    cpSync(pristine, reference, { recursive: true, force: true });
    const total = countCalls(() => trainer.saveCheckpoint(join(reference, 'checkpoints')));
    const second = snapshot(join(reference, 'checkpoints', 'checkpoint-2'));
    expect(total).toBeGreaterThan(20);

    const outcomes = new Set<number>();
    for (let k = 0; k < total; k++) {
      const run = scratch();
      cpSync(pristine, run, { recursive: true });
      const runRoot = join(run, 'checkpoints');
      expect(faultAt(k, mode, () => trainer.saveCheckpoint(runRoot))).toBe(true);
      // A failed write cleans up after itself, except what the next start removes (below).
      if (mode === 'fail') expect(hidden(run)).toEqual([]);
      const latest = latestCheckpoint(runRoot)!;
      const step = readTrainerState(latest).step;
      outcomes.add(step);
      expect(snapshot(latest), `crash after ${k} of ${total} calls`).toEqual(step === 1 ? first : second);
      const optimizer = readOptimizerState(latest);
      for (const t of Object.values(optimizer.tensors)) t.dispose();
      for (const c of listCheckpoints(runRoot)) expect(c.dir).toMatch(/checkpoint-\d+$/);
      // The next start clears the leftovers of the crash.
      pruneCheckpoints(runRoot, 1);
      expect(readdirSync(runRoot)).toEqual([`checkpoint-${step}`]);
      removeDir(run);
    }
    // Early faults keep checkpoint-1; faults after the rename (while pruning) keep checkpoint-2.
    expect([...outcomes].sort()).toEqual([1, 2]);
  });
});

describe.each(['die', 'fail'] as const)('a fault at any step of the other durable writes (mode %s)', (mode) => {
  it('writeSafetensors: the target holds the old file or the new one, never a mix', () => {
    const dir = scratch();
    const path = join(dir, 'w.safetensors');
    writeSafetensors(path, { a: tensor([1, 2, 3]) });
    const old = readFileSync(path).toString('base64');
    const write = () => writeSafetensors(path, { a: tensor([4, 5, 6]), b: tensor([7]) });
    const total = countCalls(write);
    expect(total).toBeGreaterThan(4);
    const fresh = readFileSync(path).toString('base64');
    for (let k = 0; k < total; k++) {
      writeFileSync(path, Buffer.from(old, 'base64'));
      faultAt(k, mode, write);
      expect([old, fresh]).toContain(readFileSync(path).toString('base64'));
      SafetensorsReader.open(path).close();
      if (mode === 'fail') expect(hidden(dir)).toEqual([]);
    }
  });

  it('saveAdapter over an adapter directory: it always loads, with the old weights or the new ones', () => {
    const { attached } = tinyAdaptedModel();
    const base = tinyBaseModel();
    const dir = join(scratch(), 'adapter');
    saveAdapter(dir, attached);
    const old = snapshot(dir);
    const { attached: changed } = tinyAdaptedModel({ adapterSeed: 99 });
    const write = () => saveAdapter(dir, changed);
    const total = countCalls(write);
    expect(total).toBeGreaterThan(8);
    const fresh = snapshot(dir);
    expect(fresh).not.toEqual(old);
    for (let k = 0; k < total; k++) {
      removeDir(dir);
      mkdirSync(dir);
      for (const [name, bytes] of old) writeFileSync(join(dir, name), Buffer.from(bytes, 'base64'));
      faultAt(k, mode, write);
      if (mode === 'fail') expect(hidden(dir)).toEqual([]);
      const weights = snapshot(dir).get('adapter_model.safetensors');
      expect([old.get('adapter_model.safetensors'), fresh.get('adapter_model.safetensors')]).toContain(weights);
      loadAdapter(dir, base).detach();
    }
  });

  it('truncateLog and the merge output directory: the old state or the new one', () => {
    const dir = scratch();
    const log = join(dir, 'log.jsonl');
    const writer = new JsonlLog(log);
    for (let step = 1; step <= 4; step++) writer.append({ type: 'step', step, loss: step / 10 });
    writer.close();
    const old = readFileSync(log, 'utf8');
    const total = countCalls(() => truncateLog(log, 2));
    expect(total).toBeGreaterThan(1);
    for (let k = 0; k < total; k++) {
      writeFileSync(log, old);
      faultAt(k, mode, () => truncateLog(log, 2));
      expect([[1, 2, 3, 4], [1, 2]]).toContainEqual(readLog(log).map((r) => r.step));
      if (mode === 'fail') expect(hidden(dir)).toEqual([]);
    }

    const target = join(dir, 'merged');
    const fill = (tmp: string) => {
      writeSafetensors(join(tmp, 'model.safetensors'), { w: tensor([1, 2]) });
      writeFileSync(join(tmp, 'config.json'), '{}');
    };
    const calls = countCalls(() => writeDirectoryAtomically(target, fill));
    expect(calls).toBeGreaterThan(6);
    for (let k = 0; k < calls; k++) {
      removeDir(target);
      faultAt(k, mode, () => writeDirectoryAtomically(target, fill));
      // Either no output at all, or the complete one.
      if (existsSync(target)) expect(readdirSync(target).sort()).toEqual(['config.json', 'model.safetensors']);
      if (mode === 'fail') expect(hidden(dir)).toEqual([]);
    }
  });
});
