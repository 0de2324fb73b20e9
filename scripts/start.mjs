#!/usr/bin/env node
/**
 * The main job (`npm start`): fine-tunes the embedded pretrained model on the embedded WordNet
 * instruction set with Q-BLoRA and with QLoRA at equal trainable parameters, both on the same
 * NF4 base, through the `blora` command line, and prints accuracy on the 4-choice WordNet test
 * before and after, held-out loss, training throughput and wall time.
 *
 * The defaults are sized to finish in under 10 minutes on 2 CPU cores; longer runs are a few
 * flags away (printed at the end), and scripts/study/run.mjs compares every method. Everything is written under runs/start-<timestamp>/.
 *
 * Usage: node scripts/start.mjs [--steps N] [--mc-limit N | --eval-all] [--rank R] [--lambda L]
 *          [--lr X] [--batch N] [--grad-accum N] [--eval-size N] [--model DIR] [--out DIR]
 */
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join, relative, resolve } from 'node:path';
import { parseArgs } from 'node:util';

const root = resolve(import.meta.dirname, '..');
const assets = join(root, 'packages', 'blora', 'assets');
const embeddedModel = join(assets, 'tiny-llama');
const trainData = join(assets, 'wordnet-task', 'train.jsonl');
const listedTest = join(assets, 'wordnet-task', 'test-mc.jsonl');
const clozeTest = join(assets, 'wordnet-task', 'test-mc-cloze.jsonl');

const DEFAULTS = { steps: '250', 'mc-limit': '200', rank: '16', lambda: '2', lr: '1e-3', batch: '8', 'grad-accum': '1', 'eval-size': '64' };
const LONGER_RUN = 'npm start -- --steps 1000 --batch 4 --grad-accum 4 --eval-all';
/** Where every method is compared over several seeds. */
const STUDY = 'docs/study.md (node scripts/study/run.mjs)';

const USAGE = `Usage: npm start -- [options]   (or: node scripts/start.mjs [options])

Fine-tunes the embedded model with Q-BLoRA (lambda ${DEFAULTS.lambda}) and QLoRA at the same rank (equal
trainable parameters) on the same NF4 base, then compares 4-choice accuracy before and after.

  --steps N        optimizer steps per method (default ${DEFAULTS.steps})
  --batch N        examples per micro-batch (default ${DEFAULTS.batch})
  --grad-accum N   micro-batches per step (default ${DEFAULTS['grad-accum']})
  --lr X           peak learning rate (default ${DEFAULTS.lr})
  --rank R         adapter rank r for both methods (default ${DEFAULTS.rank})
  --lambda L       Q-BLoRA balancing factor (default ${DEFAULTS.lambda})
  --mc-limit N     score the first N test questions (default ${DEFAULTS['mc-limit']})
  --eval-all       score all 500 test questions
  --listed         score the test with its options listed in the prompt (test-mc.jsonl) instead of
                   the cloze form (test-mc-cloze.jsonl: the same questions, options scored but not listed)
  --eval-size N    training examples held out for the held-out loss (default ${DEFAULTS['eval-size']})
  --model DIR      base checkpoint (default: the embedded model, packages/blora/assets/tiny-llama)
  --out DIR        output directory (default runs/start-<timestamp>)

A longer run on all 500 questions: ${LONGER_RUN}
Every method over three seeds: ${STUDY}
`;

const fail = (/** @type {string} */ message, code = 1) => {
  process.stderr.write(`npm start: ${message}\n`);
  process.exit(code);
};

let values;
try {
  ({ values } = parseArgs({
    args: process.argv.slice(2),
    options: {
      ...Object.fromEntries(Object.keys(DEFAULTS).map((k) => [k, { type: 'string' }])),
      'eval-all': { type: 'boolean' }, listed: { type: 'boolean' }, model: { type: 'string' }, out: { type: 'string' }, help: { type: 'boolean' },
    },
  }));
} catch (error) {
  fail(`${/** @type {Error} */ (error).message}\n\n${USAGE}`, 2);
}
if (values.help) {
  process.stdout.write(USAGE);
  process.exit(0);
}
const opt = { ...DEFAULTS, ...values };
const mcLimit = values['eval-all'] ? '0' : opt['mc-limit'];
// The cloze form by default: the small embedded model knows many of the facts asked but cannot
// yet pick them out of a listed set of options (docs/study.md).
const cloze = !values.listed;
const testQuestions = cloze ? clozeTest : listedTest;

const model = resolve(values.model ?? embeddedModel);
const missing = ['config.json', 'model.safetensors', 'tokenizer.json'].filter((f) => !existsSync(join(model, f)));
if (missing.length) {
  fail(values.model
    ? `${model} lacks ${missing.join(', ')}`
    : `the embedded model is not there (${relative(root, embeddedModel)}/ lacks ${missing.join(', ')}).\n` +
      'Create it (about 20 minutes on 2 CPU cores with the native kernels; see scripts/pretrain/README.md):\n' +
      '  node scripts/data/build-corpus.mjs\n' +
      (missing.includes('tokenizer.json') ? '  node scripts/data/train-tokenizer.mjs\n' : '') +
      '  npx turbo run build --filter=@blora/blora... --filter=@blora/cpu-kernels\n' +
      '  node scripts/pretrain/pretrain.mjs');
}

// The native CPU kernels, when built, replace the TypeScript ones for the ops they cover.
let kernels = 'TypeScript kernels';
try {
  const { cpuKernelsInfo } = await import('@blora/cpu-kernels');
  const info = cpuKernelsInfo();
  kernels = info.native ? `native CPU kernels (${info.isa}, ${info.threads} threads)` : `TypeScript kernels (${info.reason})`;
} catch {
  // Not built: the TypeScript kernels run.
}
const { main, processIO, readAlpacaJsonl, splitHeldOut } = await import('@blora/blora');

const stamp = new Date().toISOString().replace(/[-:]/g, '').replace(/\.\d+Z$/, 'Z');
const out = resolve(values.out ?? join(root, 'runs', `start-${stamp}`));
mkdirSync(out, { recursive: true });
const jobStart = performance.now();

/** Runs `blora <argv>`, echoing the command; stops the job on a non-zero exit code. */
async function blora(/** @type {string[]} */ argv) {
  const shown = argv.map((a) => (a.startsWith(root) ? relative(root, a) : a)).join(' ');
  process.stderr.write(`\n$ blora ${shown}\n`);
  const started = performance.now();
  let stdout = '';
  const io = { ...processIO(), stdout: { write: (text) => { stdout += text; process.stderr.write(text); } } };
  const code = await main(argv, io);
  if (code !== 0) fail(`blora ${argv[0]} exited with code ${code}`, code);
  return { stdout, seconds: (performance.now() - started) / 1000 };
}

const readJson = (/** @type {string} */ path) => JSON.parse(readFileSync(path, 'utf8'));

// One held-out split for every row, so the base and both adapters are scored on the same examples.
const examples = readAlpacaJsonl(trainData);
const split = splitHeldOut(examples, Number(opt['eval-size']), 42);
const jsonl = (/** @type {object[]} */ rows) => rows.map((e) => JSON.stringify({ instruction: e.instruction, input: e.input ?? '', output: e.output })).join('\n') + '\n';
const trainFile = join(out, 'data', 'train.jsonl');
const heldOutFile = join(out, 'data', 'heldout.jsonl');
mkdirSync(join(out, 'data'), { recursive: true });
writeFileSync(trainFile, jsonl(split.train));
writeFileSync(heldOutFile, jsonl(split.heldOut));
process.stderr.write(`model ${relative(root, model) || model}, ${kernels}; ${split.train.length} training examples, ` +
  `${split.heldOut.length} held out; ${mcLimit === '0' ? 'all' : `the first ${mcLimit}`} test questions${cloze ? ' (cloze form)' : ' (options listed)'}; output in ${relative(root, out)}\n`);

const evalArgs = (/** @type {string} */ file) => ['--mc', testQuestions, '--mc-limit', mcLimit, '--data', heldOutFile, '--out', file];

// Before: the base model as stored (float32).
const baseEval = await blora(['eval', '--model', model, ...evalArgs(join(out, 'base-eval.json'))]);
const base = readJson(join(out, 'base-eval.json'));

/** Fine-tunes with one method on the NF4 base, then evaluates the saved adapter. */
async function study(/** @type {'qblora' | 'qlora'} */ method) {
  const dir = join(out, method);
  const methodArgs = method === 'qblora' ? ['--lambda', opt.lambda] : [];
  const train = await blora([
    'finetune', '--model', model, '--data', trainFile, '--method', method, '--rank', opt.rank, ...methodArgs,
    '--steps', opt.steps, '--batch', opt.batch, '--grad-accum', opt['grad-accum'], '--lr', opt.lr,
    '--eval-size', '0', '--save-every', '0', '--out', dir,
  ]);
  const evaluation = await blora(['eval', '--adapter', dir, ...evalArgs(join(out, `${method}-eval.json`))]);
  const summary = readJson(join(dir, 'summary.json'));
  const steps = readFileSync(join(dir, 'log.jsonl'), 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l)).filter((r) => r.type === 'step');
  const trainSeconds = steps.reduce((n, r) => n + r.seconds, 0);
  const trainTokens = steps.reduce((n, r) => n + r.inputTokens, 0);
  return {
    method,
    trainable: summary.parameters.trainable,
    total: summary.parameters.total,
    eval: readJson(join(out, `${method}-eval.json`)),
    firstLoss: summary.result.firstLoss,
    finalLoss: summary.result.finalLoss,
    tokensPerSecond: trainTokens / trainSeconds,
    trainSeconds,
    finetuneSeconds: train.seconds,
    evalSeconds: evaluation.seconds,
  };
}

const rows = [await study('qblora'), await study('qlora')];
const totalSeconds = (performance.now() - jobStart) / 1000;

const pct = (/** @type {number} */ x) => `${(100 * x).toFixed(1)}%`;
const label = { qblora: `qblora (NF4, r=${opt.rank}, lambda=${opt.lambda})`, qlora: `qlora (NF4, r=${opt.rank})` };
const mcCount = base.multipleChoice.questions;
const header = ['method', 'trainable params', `acc before (${mcCount} q${cloze ? ', cloze' : ', listed'})`, 'acc after', 'acc_norm before -> after',
  `held-out loss before -> after`, 'train tok/s', 'wall time'];
const table = [header, ...rows.map((r) => [
  label[r.method],
  r.trainable.toLocaleString('en-US'),
  pct(base.multipleChoice.accuracy),
  pct(r.eval.multipleChoice.accuracy),
  `${pct(base.multipleChoice.accuracyNorm)} -> ${pct(r.eval.multipleChoice.accuracyNorm)}`,
  `${base.heldOut.loss.toFixed(3)} -> ${r.eval.heldOut.loss.toFixed(3)}`,
  r.tokensPerSecond.toFixed(0),
  `${(r.finetuneSeconds + r.evalSeconds).toFixed(0)} s`,
])];
const widths = header.map((_, c) => Math.max(...table.map((row) => row[c].length)));
const line = (/** @type {string[]} */ row) => `| ${row.map((cell, c) => cell.padEnd(widths[c])).join(' | ')} |`;
const text = [
  line(table[0]),
  `|${widths.map((w) => '-'.repeat(w + 2)).join('|')}|`,
  ...table.slice(1).map(line),
].join('\n');

const equal = rows[0].trainable === rows[1].trainable;
const report = [
  '',
  `blora: Q-BLoRA vs QLoRA on the embedded model (${rows[0].total.toLocaleString('en-US')} parameters with the adapter), ` +
    `${opt.steps} steps x ${Number(opt.batch) * Number(opt['grad-accum'])} examples, lr ${opt.lr}`,
  `trainable parameters: qblora ${rows[0].trainable.toLocaleString('en-US')}, qlora ${rows[1].trainable.toLocaleString('en-US')} ` +
    `(${equal ? 'equal' : 'NOT equal'})`,
  '',
  text,
  '',
  `acc: most likely choice; acc_norm: per-character normalised; chance 25%. "before" is the float32 base without an adapter; ` +
    'both adapters train on its NF4-quantized copy.',
  `held-out loss: mean response-token loss on ${split.heldOut.length} held-out training-format examples. ` +
    `Base eval ${baseEval.seconds.toFixed(0)} s; total ${totalSeconds.toFixed(0)} s. Outputs: ${relative(root, out)}/`,
  `a longer run on all 500 questions: ${LONGER_RUN}; every method over three seeds: ${STUDY}`,
  '',
].join('\n');
writeFileSync(join(out, 'results.json'), `${JSON.stringify({ settings: { ...opt, mcLimit, model }, kernels, base, rows, totalSeconds }, null, 2)}\n`);
writeFileSync(join(out, 'table.md'), `${text}\n`);
process.stdout.write(report);
if (!equal) process.exitCode = 1;
