#!/usr/bin/env node
/**
 * Does a model know the facts the 4-choice test asks about, and can it use them in the test's
 * question format? For every test question, the choices are scored twice by log-likelihood:
 *   - in the pretraining corpus's own form: "<definition>:" -> " word" (reverse-dictionary
 *     lines) and "kinds of X:" / "ways to X:" -> " member" (category lines);
 *   - as the test asks, in the Alpaca prompt with the options listed (test-mc.jsonl);
 *   - in the test's cloze form, the Alpaca prompt without the options (test-mc-cloze.jsonl).
 * A model that knows the facts scores high on the first; the gap to the second is what
 * fine-tuning has to close. Prints JSON. Needs the built packages (npx turbo run build).
 *
 * Usage: node scripts/study/knowledge-probe.mjs [--model DIR] [--quant none|nf4] [--limit N] [--device cpu|cuda]
 */
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { scoreContinuations } from '@blora/models';
import { evaluateMultipleChoice, loadBaseModel, quantizeOptionsFor, readMultipleChoiceJsonl } from '@blora/blora';

const root = resolve(import.meta.dirname, '..', '..');
const assets = join(root, 'packages', 'blora', 'assets');
const { values } = parseArgs({
  options: {
    model: { type: 'string', default: join(assets, 'tiny-llama') },
    quant: { type: 'string', default: 'none' },
    limit: { type: 'string', default: '0' },
    device: { type: 'string', default: 'cpu' },
  },
});
if (!['none', 'nf4'].includes(values.quant)) throw new Error(`--quant must be none or nf4, got '${values.quant}'`);
if (values.device === 'cuda') await import('@blora/cuda-kernels');
else await import('@blora/cpu-kernels').catch(() => null);

const limit = Number(values.limit);
const raw = readMultipleChoiceJsonl(join(assets, 'wordnet-task', 'test-mc.jsonl'));
const cloze = readMultipleChoiceJsonl(join(assets, 'wordnet-task', 'test-mc-cloze.jsonl'));
const all = raw.map((q, i) => ({ q, cloze: cloze[i], kind: /kind of|way to/.test(q.instruction) ? 'kindOf' : 'definition', i }));
const { model, tokenizer } = loadBaseModel(values.model, values.quant === 'nf4' ? quantizeOptionsFor({ quant: 'nf4' }) : null, values.device);
model.eval();

/** The corpus-form context of a question: its definition, or its category, then ':'. */
function corpusContext(/** @type {{ q: import('@blora/blora').MultipleChoiceQuestion, kind: string }} */ item) {
  if (item.kind === 'definition') return `${item.q.input.split('\nOptions:')[0]}:`;
  const category = item.q.instruction.replace(/^Which of these is a (kind of|way to) /, '').replace(/\?$/, '');
  return `${item.q.instruction.includes('way to') ? 'ways to' : 'kinds of'} ${category}:`;
}

const report = { model: resolve(values.model), quant: values.quant, questions: {}, corpusForm: {}, questionForm: {}, clozeForm: {} };
for (const kind of ['definition', 'kindOf']) {
  let items = all.filter((a) => a.kind === kind);
  if (limit > 0) items = items.slice(0, limit);
  const requests = items.flatMap((item) => item.q.choices.map((choice) => ({
    context: [tokenizer.bosId ?? 1, ...tokenizer.encode(corpusContext(item))], continuation: tokenizer.encode(` ${choice}`),
  })));
  const scores = scoreContinuations(model, requests, { batchSize: 16 });
  let right = 0;
  let at = 0;
  for (const item of items) {
    const s = item.q.choices.map(() => scores[at++].logProb);
    if (s.indexOf(Math.max(...s)) === item.q.answer) right += 1;
  }
  report.questions[kind] = items.length;
  report.corpusForm[kind] = right / items.length;
  report.questionForm[kind] = evaluateMultipleChoice(model, tokenizer, items.map((i) => i.q), { batchSize: 16, device: values.device }).accuracy;
  report.clozeForm[kind] = evaluateMultipleChoice(model, tokenizer, items.map((i) => i.cloze), { batchSize: 16, device: values.device }).accuracy;
}
console.log(JSON.stringify(report, null, 2));
