#!/usr/bin/env node
/**
 * Writes what scripts/interop/check_hf_peft.py compares against on a machine with Python,
 * transformers and PEFT: the embedded model's token ids and logits for a few prompts, and a
 * plain LoRA adapter (random, non-zero B so that it changes the outputs) saved in PEFT's
 * layout, with the logits it gives.
 *
 *   npx turbo run build --filter=@blora/blora...
 *   node scripts/interop/make-fixture.mjs [--out runs/interop]
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { Generator, mul, randn, tensor } from '@blora/tensor';
import { assignInPlace, noGrad } from '@blora/autograd';
import { Tokenizer, loadLlama } from '@blora/models';
import { attachAdapters, saveAdapter } from '@blora/blora';

const root = resolve(import.meta.dirname, '..', '..');
const modelDir = join(root, 'packages', 'blora', 'assets', 'tiny-llama');
const { values } = parseArgs({ options: { out: { type: 'string', default: 'runs/interop' } } });
const out = resolve(root, values.out);
mkdirSync(out, { recursive: true });

const PROMPTS = [
  'The jury said it did find that the city',
  'dog: a member of the genus Canis that has been domesticated by man',
  'Below is an instruction that describes a task.',
];

const tokenizer = Tokenizer.fromFile(join(modelDir, 'tokenizer.json'));
const model = loadLlama(modelDir);
model.eval();

/** Logits of every prompt (with BOS) as nested arrays [T][V]. */
function logitsOf() {
  return PROMPTS.map((text) => {
    const ids = tokenizer.encode(text, { addBos: true });
    const logits = noGrad(() => model.forward(tensor(Int32Array.from(ids), { shape: [1, ids.length], dtype: 'int32' })));
    return { text, ids, logits: logits.toArray()[0] };
  });
}

const base = logitsOf();
const attached = attachAdapters(model, { method: 'lora', r: 8, alpha: 16 });
// PEFT starts B at zero; a random B makes the comparison test the adapter path too.
const generator = new Generator(7);
for (const [name, t] of model.namedParameters()) {
  if (name.endsWith('lora_B')) assignInPlace(t, mul(randn(t.shape, { generator }), 0.05));
}
const adapted = logitsOf();
saveAdapter(join(out, 'adapter'), attached, { baseModelNameOrPath: 'tiny-llama' });
writeFileSync(join(out, 'expected.json'), JSON.stringify({ prompts: PROMPTS, base, adapted }));
process.stderr.write(`wrote ${out}/{adapter,expected.json}\n`);

