// Checkpoints: everything needed to continue a run bit for bit, written into a temporary
// directory and renamed into place, so a crash mid-write never damages an earlier checkpoint
// and a directory named `checkpoint-<step>` is always complete.
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { SafetensorsReader, writeSafetensors, type GeneratorState, type Tensor } from '@blora/tensor';
import type { OptimizerStateDict } from '@blora/autograd';
import { jsonText, writeFileSynced } from './files.js';
import type { EvalRecord } from './log.js';

/** The format tag of `trainer_state.json`. */
export const TRAINER_STATE_FORMAT = 'blora-trainer-state';

/** What `trainer_state.json` holds. */
export interface TrainerState {
  /** Always `TRAINER_STATE_FORMAT`. */
  format: typeof TRAINER_STATE_FORMAT;
  /** Layout version. */
  version: 1;
  /** Optimizer steps completed. */
  step: number;
  /** Total steps of the run. */
  totalSteps: number;
  /** Stream position of the next training example. */
  dataPosition: number;
  /** Number of training examples (a resume on other data is refused). */
  dataSize: number;
  /** Seed of the data order. */
  dataSeed: number;
  /** Examples per micro-batch. */
  batchSize: number;
  /** Micro-batches per step. */
  gradAccum: number;
  /** The learning-rate scheduler's state. */
  scheduler: Record<string, number>;
  /** Random generators by name (`default` is @blora/tensor's default generator). */
  generators: Record<string, GeneratorState>;
  /** Loss of every step so far (for the loss curve). */
  history: { step: number; loss: number }[];
  /** Evaluations so far. */
  evals: EvalRecord[];
  /** Steps whose update was skipped so far. */
  skippedSteps: number;
  /** How the trainable weights are stored: `trainable.safetensors` or an `adapter/` directory. */
  weights: 'trainable' | 'adapter';
}

/** The directory name of the checkpoint after `step` steps. */
export function checkpointName(step: number): string {
  return `checkpoint-${step}`;
}

/** Complete checkpoints under `root`, oldest first. Unfinished temporary directories are ignored. */
export function listCheckpoints(root: string): { step: number; dir: string }[] {
  if (!existsSync(root)) return [];
  const out: { step: number; dir: string }[] = [];
  for (const name of readdirSync(root)) {
    const m = /^checkpoint-(\d+)$/.exec(name);
    if (m && existsSync(join(root, name, 'trainer_state.json'))) out.push({ step: Number(m[1]), dir: join(root, name) });
  }
  return out.sort((a, b) => a.step - b.step);
}

/** The newest complete checkpoint under `root`, or null. */
export function latestCheckpoint(root: string): string | null {
  const all = listCheckpoints(root);
  return all.length ? all[all.length - 1]!.dir : null;
}

/** What goes into a checkpoint. */
export interface CheckpointContents {
  /** Written as trainer_state.json. */
  state: TrainerState;
  /** Written as optimizer.safetensors (tensors) and optimizer.json (numbers). */
  optimizer: OptimizerStateDict;
  /** Writes the trainable weights into the (temporary) checkpoint directory. */
  writeWeights(dir: string): void;
}

/**
 * Writes a checkpoint as `<root>/checkpoint-<step>`: files go into a temporary directory
 * (`trainer_state.json` last), which is then renamed into place. A checkpoint of the same
 * step already there is replaced. On failure the temporary directory is removed and the
 * error rethrown; existing checkpoints are untouched. Returns the checkpoint's path.
 */
export function writeCheckpoint(root: string, contents: CheckpointContents): string {
  mkdirSync(root, { recursive: true });
  const name = checkpointName(contents.state.step);
  const final = join(root, name);
  const temporary = join(root, `.tmp-${name}-${process.pid}`);
  rmSync(temporary, { recursive: true, force: true });
  mkdirSync(temporary);
  try {
    contents.writeWeights(temporary);
    writeSafetensors(join(temporary, 'optimizer.safetensors'), contents.optimizer.tensors, { format: 'blora-optimizer' });
    writeFileSynced(join(temporary, 'optimizer.json'), jsonText(contents.optimizer.scalars));
    writeFileSynced(join(temporary, 'trainer_state.json'), jsonText(contents.state));
  } catch (error) {
    rmSync(temporary, { recursive: true, force: true });
    throw error;
  }
  if (existsSync(final)) {
    const old = join(root, `.old-${name}-${process.pid}`);
    rmSync(old, { recursive: true, force: true });
    renameSync(final, old);
    renameSync(temporary, final);
    rmSync(old, { recursive: true, force: true });
  } else {
    renameSync(temporary, final);
  }
  return final;
}

/**
 * Keeps the newest `keep` checkpoints under `root` (0 = keep all) and removes leftovers of
 * interrupted writes. A checkpoint is renamed out of the way before it is deleted, so a crash
 * mid-delete never leaves a half-deleted directory that still looks like a checkpoint.
 */
export function pruneCheckpoints(root: string, keep: number): void {
  if (!existsSync(root)) return;
  for (const name of readdirSync(root)) {
    if (/^\.(tmp|old)-checkpoint-\d+-\d+$/.test(name)) rmSync(join(root, name), { recursive: true, force: true });
  }
  if (keep <= 0) return;
  const all = listCheckpoints(root);
  for (const c of all.slice(0, Math.max(0, all.length - keep))) {
    const doomed = join(root, `.old-${checkpointName(c.step)}-${process.pid}`);
    rmSync(doomed, { recursive: true, force: true });
    renameSync(c.dir, doomed);
    rmSync(doomed, { recursive: true, force: true });
  }
}

function readJson(path: string): unknown {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (error) {
    throw new Error(`checkpoint: cannot read ${path}: ${(error as Error).message}`);
  }
  try {
    return JSON.parse(text);
  } catch (error) {
    throw new Error(`checkpoint: ${path} is not valid JSON (${(error as Error).message})`);
  }
}

/** Reads and checks `trainer_state.json` of a checkpoint directory. */
export function readTrainerState(dir: string): TrainerState {
  const path = join(dir, 'trainer_state.json');
  const state = readJson(path) as Partial<TrainerState>;
  if (state?.format !== TRAINER_STATE_FORMAT || state.version !== 1) {
    throw new Error(`checkpoint: ${path} is not a blora trainer state (format ${JSON.stringify(state?.format)}, version ${String(state?.version)})`);
  }
  for (const key of ['step', 'totalSteps', 'dataPosition', 'dataSize', 'dataSeed', 'batchSize', 'gradAccum'] as const) {
    if (!Number.isInteger(state[key]) || (state[key] as number) < 0) throw new Error(`checkpoint: ${path}: invalid ${key} ${String(state[key])}`);
  }
  return state as TrainerState;
}

/** Reads the optimizer state of a checkpoint directory (tensors on the CPU; the optimizer copies them to its devices). */
export function readOptimizerState(dir: string): OptimizerStateDict {
  const scalars = readJson(join(dir, 'optimizer.json')) as Record<string, number>;
  const reader = SafetensorsReader.open(join(dir, 'optimizer.safetensors'));
  try {
    const tensors: Record<string, Tensor> = {};
    for (const name of reader.names()) tensors[name] = reader.readTensor(name);
    return { tensors, scalars };
  } finally {
    reader.close();
  }
}
