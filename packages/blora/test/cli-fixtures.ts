// Shared by the command-line tests: run `blora` in-process, and a workspace with a tiny
// checkpoint, a few WordNet training examples and three multiple-choice questions.
import { join } from 'node:path';
import { main, type CliIO } from '../src/cli/index.js';
import { tempDir, wordnetExamples, writeJsonl, writeTinyCheckpoint } from './train-fixtures.js';

/** Runs the command line, capturing its output. */
export async function runCli(...argv: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  let stdout = '';
  let stderr = '';
  const io: CliIO = { stdout: { write: (t: string) => (stdout += t) }, stderr: { write: (t: string) => (stderr += t), isTTY: false } };
  const code = await main(argv, io);
  return { code, stdout, stderr };
}

/** Files a command-line test works on. */
export interface CliWorkspace {
  root: string;
  modelDir: string;
  dataFile: string;
  mcFile: string;
}

/** A fresh temporary workspace: tiny checkpoint in `model/`, `train.jsonl`, `mc.jsonl`. */
export function cliWorkspace(prefix: string): CliWorkspace {
  const root = tempDir(prefix);
  const modelDir = join(root, 'model');
  writeTinyCheckpoint(modelDir);
  const dataFile = join(root, 'train.jsonl');
  writeJsonl(dataFile, wordnetExamples(12));
  const mcFile = join(root, 'mc.jsonl');
  writeJsonl(mcFile, [
    { instruction: 'Which word matches this definition?', input: 'a wind from the east', choices: ['sponsor', 'limit', 'east wind', 'curve'], answer: 2 },
    { instruction: 'Name a kind of letter.', input: '', choices: ['e', 'dog', 'run', 'blue'], answer: 0 },
    { instruction: 'What is this a kind of?', input: 'loss leader', choices: ['feature', 'tree', 'song', 'river'], answer: 0 },
  ]);
  return { root, modelDir, dataFile, mcFile };
}
