#!/usr/bin/env node
/**
 * Checks a saved checkpoint against an independent implementation: the engine (loadLlama) and
 * a NumPy forward pass written from the Hugging Face definition of the model
 * (reference/llama_reference.py) score the first held-out windows, and the two losses must
 * agree to 1e-5. Needs python3 with numpy. Build the packages first (see README.md).
 *
 * Usage: node scripts/pretrain/check-reference.mjs [--model packages/blora/assets/tiny-llama] [--windows 8]
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { Tokenizer, loadLlama } from '@blora/models';
import { heldOutWindows, tokenizeCorpus } from './lib/corpus.mjs';
import { heldOutLoss } from './lib/evaluate.mjs';

const root = resolve(import.meta.dirname, '..', '..');
const { values } = parseArgs({
  options: { model: { type: 'string', default: join(root, 'packages', 'blora', 'assets', 'tiny-llama') }, windows: { type: 'string', default: '8' } },
});
const model = loadLlama(values.model);
const tokenizerPath = join(values.model, 'tokenizer.json');
const held = tokenizeCorpus(Tokenizer.fromFile(tokenizerPath), join(root, 'packages', 'blora', 'assets', 'corpus', 'heldout.txt'),
  tokenizerPath, join(root, 'runs', 'pretrain-cache'));
const context = Math.min(128, model.config.maxPositionEmbeddings);
const windows = heldOutWindows(held.ids, context).slice(0, Number(values.windows));
const ours = heldOutLoss(model, windows, 8);
const dir = mkdtempSync(join(tmpdir(), 'llama-reference-'));
try {
  writeFileSync(join(dir, 'windows.json'), JSON.stringify(windows));
  const script = join(import.meta.dirname, 'reference', 'llama_reference.py');
  const reference = JSON.parse(execFileSync('python3', [script, values.model, join(dir, 'windows.json')], { encoding: 'utf8' }));
  const difference = Math.abs(reference.loss - ours.loss);
  console.log(`engine loss ${ours.loss.toFixed(6)}, NumPy reference ${reference.loss.toFixed(6)} on ${ours.tokens} tokens: ` +
    `difference ${difference.toExponential(1)}`);
  if (!(difference < 1e-5) || reference.tokens !== ours.tokens) process.exitCode = 1;
} finally {
  rmSync(dir, { recursive: true, force: true });
}
