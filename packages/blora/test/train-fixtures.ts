// Small but real pieces for the trainer, data, evaluation and command-line tests: a byte-level
// BPE tokenizer trained on Alpaca prompts, a tiny Llama with frozen dense bases and Q-BLoRA
// adapters, a few lines of the WordNet instruction set, and a checkpoint directory on disk.
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Generator } from '@blora/tensor';
import { createLlama, llamaConfig, saveLlama, toDType, Tokenizer, trainByteLevelBpe, type LlamaForCausalLM } from '@blora/models';
import { attachAdapters, DenseBase, type AdapterConfig, type AttachedAdapters } from '../src/index.js';
import { formatAlpacaPrompt, parseAlpacaJsonl, type AlpacaExample } from '../src/data/index.js';

/** The embedded WordNet instruction set (may be absent while assets are being built). */
export const WORDNET_TRAIN = fileURLToPath(new URL('../assets/wordnet-task/train.jsonl', import.meta.url));
/** The embedded 4-choice test. */
export const WORDNET_MC = fileURLToPath(new URL('../assets/wordnet-task/test-mc.jsonl', import.meta.url));

const FALLBACK_LINES = [
  { instruction: 'Name a kind of letter.', input: '', output: 'e' },
  { instruction: 'What is this a kind of?', input: 'loss leader', output: 'feature' },
  { instruction: 'Which word matches this definition?', input: 'used to form the superlative\nOptions: most, passing, rather, knee-deep', output: 'most' },
  { instruction: 'Name a kind of company.', input: '', output: 'chorus' },
];

/** The first `n` examples of the WordNet set (or a few of its lines written out when the file is absent). */
export function wordnetExamples(n = 16): AlpacaExample[] {
  if (existsSync(WORDNET_TRAIN)) {
    const lines = readFileSync(WORDNET_TRAIN, 'utf8').split('\n').filter((l) => l.trim()).slice(0, n);
    return parseAlpacaJsonl(lines.join('\n'), WORDNET_TRAIN);
  }
  return Array.from({ length: n }, (_, i) => FALLBACK_LINES[i % FALLBACK_LINES.length]!);
}

let cachedTokenizer: Tokenizer | null = null;

/** A byte-level BPE tokenizer (vocabulary 384) trained on the prompts and responses of the WordNet examples. */
export function tinyTokenizer(): Tokenizer {
  if (!cachedTokenizer) {
    const texts = wordnetExamples(64).flatMap((e) => [formatAlpacaPrompt(e), e.output]);
    cachedTokenizer = Tokenizer.fromJSON(trainByteLevelBpe(texts, { vocabSize: 384 }));
  }
  return cachedTokenizer;
}

/** The tiny Llama's shape: 2 layers, hidden 32, MLP 48, 4 heads over 2 KV heads; weights drawn wide (std 0.3) so the logits span a useful range. */
export function tinyConfig(vocabSize: number) {
  return llamaConfig({ vocabSize, hiddenSize: 32, intermediateSize: 48, numHiddenLayers: 2, numAttentionHeads: 4, numKeyValueHeads: 2, initializerRange: 0.3 });
}

/** A tiny Llama whose projections are frozen dense bases (weights seeded by `seed`), without adapters. */
export function tinyBaseModel(seed = 1): LlamaForCausalLM {
  return createLlama(tinyConfig(tinyTokenizer().vocabSize), {
    seed, linearFactory: (_name, weight, context) => new DenseBase(toDType(weight, context.dtype)),
  });
}

/** A tiny model with adapters (Q-BLoRA λ 2, r 4, α 16 by default); the adapter init and dropout streams are returned. */
export function tinyAdaptedModel(options: { seed?: number; adapterSeed?: number; config?: AdapterConfig } = {}): {
  model: LlamaForCausalLM; attached: AttachedAdapters; dropoutGenerator: Generator;
} {
  const model = tinyBaseModel(options.seed ?? 1);
  const dropoutGenerator = new Generator(1000 + (options.adapterSeed ?? 7));
  const attached = attachAdapters(model, { method: 'qblora', r: 4, alpha: 16, lambda: 2, ...(options.config ?? {}) }, {
    generator: new Generator(options.adapterSeed ?? 7), dropoutGenerator,
  });
  return { model, attached, dropoutGenerator };
}

/** A fresh temporary directory; remove it with `removeDir`. */
export function tempDir(prefix = 'blora-test-'): string {
  return mkdtempSync(join(tmpdir(), prefix));
}

/** Removes a directory tree. */
export function removeDir(dir: string): void {
  rmSync(dir, { recursive: true, force: true });
}

/** Writes a tiny Llama checkpoint directory (config.json, model.safetensors, tokenizer.json) into `dir`. */
export function writeTinyCheckpoint(dir: string, seed = 3): void {
  const model = createLlama(tinyConfig(tinyTokenizer().vocabSize), { seed });
  saveLlama(model, dir);
  tinyTokenizer().save(join(dir, 'tokenizer.json'));
  model.dispose();
}

/** Writes lines of JSON (one object per line) to `path`. */
export function writeJsonl(path: string, rows: readonly object[]): void {
  writeFileSync(path, rows.map((r) => JSON.stringify(r)).join('\n') + '\n');
}
