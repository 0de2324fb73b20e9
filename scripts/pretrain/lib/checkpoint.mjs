/**
 * The resumable state of a pretraining run: model weights, AdamW moments, and a JSON file with
 * the step, the scheduler, the settings and the history. A checkpoint is written into a
 * temporary directory and renamed into place, so an interrupted write leaves the previous one.
 *
 * @module
 */
import { existsSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { SafetensorsReader, writeSafetensors } from '@blora/tensor';

const STATE_FILE = 'state.json';

/**
 * The checkpoint directory of a run.
 * @param {string} outDir
 */
export function checkpointDir(outDir) {
  return join(outDir, 'checkpoint');
}

/**
 * Whether `outDir` holds a complete checkpoint.
 * @param {string} outDir
 */
export function hasCheckpoint(outDir) {
  return existsSync(join(checkpointDir(outDir), STATE_FILE));
}

/**
 * Writes the checkpoint of `outDir`, replacing the previous one only once complete.
 * @param {string} outDir
 * @param {{ model: import('@blora/models').LlamaForCausalLM, optimizer: import('@blora/autograd').AdamW, state: object }} what
 */
export function saveCheckpoint(outDir, { model, optimizer, state }) {
  const final = checkpointDir(outDir);
  const temp = `${final}.tmp-${process.pid}`;
  rmSync(temp, { recursive: true, force: true });
  mkdirSync(temp, { recursive: true });
  writeSafetensors(join(temp, 'model.safetensors'), model.stateDict());
  const optimizerState = optimizer.stateDict();
  try {
    writeSafetensors(join(temp, 'optimizer.safetensors'), optimizerState.tensors);
  } finally {
    for (const t of Object.values(optimizerState.tensors)) t.dispose();
  }
  writeFileSync(join(temp, 'optimizer.json'), `${JSON.stringify(optimizerState.scalars)}\n`);
  writeFileSync(join(temp, STATE_FILE), `${JSON.stringify(state, null, 1)}\n`);
  const previous = `${final}.old`;
  rmSync(previous, { recursive: true, force: true });
  if (existsSync(final)) renameSync(final, previous);
  renameSync(temp, final);
  rmSync(previous, { recursive: true, force: true });
}

/**
 * The saved state (settings, step, history) of the checkpoint in `outDir`.
 * @param {string} outDir
 * @returns {any}
 */
export function readCheckpointState(outDir) {
  return JSON.parse(readFileSync(join(checkpointDir(outDir), STATE_FILE), 'utf8'));
}

/**
 * Restores the model weights and optimizer moments of the checkpoint in `outDir`.
 * @param {string} outDir
 * @param {{ model: import('@blora/models').LlamaForCausalLM, optimizer: import('@blora/autograd').AdamW }} what
 */
export function loadCheckpointTensors(outDir, { model, optimizer }) {
  const dir = checkpointDir(outDir);
  const weights = SafetensorsReader.open(join(dir, 'model.safetensors'));
  try {
    const state = new Map(weights.names().map((name) => [name, weights.readTensor(name)]));
    model.loadStateDict(state);
    for (const t of state.values()) t.dispose();
  } finally {
    weights.close();
  }
  const moments = SafetensorsReader.open(join(dir, 'optimizer.safetensors'));
  try {
    const tensors = Object.fromEntries(moments.names().map((name) => [name, moments.readTensor(name)]));
    const scalars = JSON.parse(readFileSync(join(dir, 'optimizer.json'), 'utf8'));
    optimizer.loadStateDict({ tensors, scalars });
    for (const t of Object.values(tensors)) t.dispose();
  } finally {
    moments.close();
  }
}
