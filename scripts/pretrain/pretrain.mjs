#!/usr/bin/env node
/**
 * Pretrains the embedded Llama model: a dense float32 LlamaForCausalLM trained from a seeded
 * initialisation on packed 128-token sequences of corpus/train.txt (Brown corpus text and
 * WordNet glosses) with AdamW, linear warmup then cosine decay, and gradient clipping. The run
 * is resumable from its own checkpoint (--out, --resume). At the end it measures held-out
 * perplexity on corpus/heldout.txt next to an add-one smoothed unigram baseline and saves the
 * model in Hugging Face layout (config.json, model.safetensors, generation_config.json,
 * pretrain-report.json) next to the tokenizer in packages/blora/assets/tiny-llama/.
 *
 * It imports the built packages: run
 *   npx turbo run build --filter=@blora/blora... --filter=@blora/cpu-kernels
 * first. The native CPU kernels are used when they are built; without them the TypeScript
 * kernels run (slower, same results up to rounding). --device cuda trains on an NVIDIA GPU
 * through @blora/cuda-kernels.
 *
 * Usage: node scripts/pretrain/pretrain.mjs --help
 */
import { appendFileSync, copyFileSync, existsSync, mkdirSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { join, relative, resolve } from 'node:path';
import { tensor, tidy } from '@blora/tensor';
import { AdamW, LRScheduler, clipGradNorm, cosineWithWarmup } from '@blora/autograd';
import { Tokenizer, createLlama, llamaConfig, saveLlama } from '@blora/models';
import { checkpointDir, hasCheckpoint, loadCheckpointTensors, readCheckpointState, saveCheckpoint } from './lib/checkpoint.mjs';
import { SequenceOrder, heldOutWindows, tokenizeCorpus, unigramBaseline } from './lib/corpus.mjs';
import { heldOutLoss } from './lib/evaluate.mjs';
import { USAGE, fittedSteps, mergeResumed, parseSettings } from './lib/settings.mjs';

const root = resolve(import.meta.dirname, '..', '..');
const assets = join(root, 'packages', 'blora', 'assets');
const tokenizerPath = join(assets, 'tiny-llama', 'tokenizer.json');
const trainPath = join(assets, 'corpus', 'train.txt');
const heldOutPath = join(assets, 'corpus', 'heldout.txt');
const argv = process.argv.slice(2);
const commandLine = ['node', 'scripts/pretrain/pretrain.mjs', ...argv].join(' ');

const note = (/** @type {string} */ text) => process.stderr.write(`${text}\n`);

/** The native kernels when built (the script works without them). */
async function loadCpuKernels() {
  try {
    const kernels = await import('@blora/cpu-kernels');
    return kernels.cpuKernelsInfo();
  } catch (error) {
    return { native: false, reason: `@blora/cpu-kernels could not be imported (${/** @type {Error} */ (error).message})` };
  }
}

/** @param {number} seconds */
function duration(seconds) {
  const m = Math.floor(seconds / 60);
  return m > 0 ? `${m}m${String(Math.round(seconds - 60 * m)).padStart(2, '0')}s` : `${seconds.toFixed(1)}s`;
}

let parsed;
try {
  parsed = parseSettings(argv);
} catch (error) {
  note(`pretrain: error: ${/** @type {Error} */ (error).message}\n\n${USAGE}`);
  process.exit(2);
}
if (!parsed) {
  process.stdout.write(USAGE);
  process.exit(0);
}
const outDir = resolve(root, /** @type {string} */ (parsed.values.out));
const resuming = parsed.values.resume === true || parsed.values.finalize === true;
if (resuming && !hasCheckpoint(outDir)) {
  note(`pretrain: error: no checkpoint in ${checkpointDir(outDir)} to resume`);
  process.exit(2);
}
if (!resuming && hasCheckpoint(outDir)) {
  note(`pretrain: error: ${outDir} already holds a run; add --resume to continue it, or choose another --out`);
  process.exit(2);
}
for (const path of [tokenizerPath, trainPath, heldOutPath]) {
  if (!existsSync(path)) {
    note(`pretrain: error: ${relative(root, path)} is missing; build the data first (see scripts/data/README.md)`);
    process.exit(2);
  }
}
const saved = resuming ? readCheckpointState(outDir) : null;
/** @type {Record<string, any>} */
const s = saved ? mergeResumed(saved.settings, parsed) : parsed.values;

const kernels = await loadCpuKernels();
let gpu = null;
if (s.device === 'cuda') {
  const cuda = await import('@blora/cuda-kernels');
  if (!cuda.cudaAvailable()) {
    note(`pretrain: error: --device cuda: ${cuda.cudaUnavailableReason()}`);
    process.exit(2);
  }
  gpu = cuda.cudaDeviceInfo()?.deviceName || 'unknown GPU';
  note(`device: cuda (${gpu})`);
}
note(`cpu kernels: ${kernels.native ? `native (${kernels.isa}, ${kernels.threads} threads)` : `TypeScript (${kernels.reason})`}`);

// Data: token streams (cached), the seeded sequence order, held-out windows, unigram baseline.
const tokenizer = Tokenizer.fromFile(tokenizerPath);
const cacheDir = join(root, 'runs', 'pretrain-cache');
let clock = performance.now();
const train = tokenizeCorpus(tokenizer, trainPath, tokenizerPath, cacheDir);
const held = tokenizeCorpus(tokenizer, heldOutPath, tokenizerPath, cacheDir);
note(`corpus: ${train.ids.length} training tokens (${train.documents} documents), ${held.ids.length} held-out tokens ` +
  `(${held.documents} documents)${train.cached ? ', from the cache' : ''} in ${duration((performance.now() - clock) / 1000)}`);
const order = new SequenceOrder(train.ids, s.context, s.seed);
const windows = heldOutWindows(held.ids, s.context);
const unigram = unigramBaseline(train.ids, held.ids, tokenizer.vocabSize);

const config = llamaConfig({
  vocabSize: tokenizer.vocabSize,
  hiddenSize: s.hidden,
  intermediateSize: s.intermediate,
  numHiddenLayers: s.layers,
  numAttentionHeads: s.heads,
  numKeyValueHeads: s['kv-heads'],
  maxPositionEmbeddings: s['max-positions'],
  tieWordEmbeddings: !s.untied,
  rmsNormEps: 1e-5,
  initializerRange: 0.02,
  bosTokenId: tokenizer.bosId,
  eosTokenIds: tokenizer.eosId === null ? [] : [tokenizer.eosId],
  padTokenId: tokenizer.padId,
  torchDType: 'float32',
});
const model = createLlama(config, { seed: s.seed, device: s.device });
model.train();
const named = model.namedParameters();
const params = named.map(([, t]) => t);
const parameterCount = params.reduce((n, t) => n + t.numel, 0);
const embeddingCount = model.model.embed_tokens.weight.numel;
// Weight decay on the matrices only (projections and embeddings), not on the norm weights.
const optimizer = new AdamW([
  { params: named.filter(([, t]) => t.rank >= 2).map(([, t]) => t), weightDecay: s['weight-decay'] },
  { params: named.filter(([, t]) => t.rank < 2).map(([, t]) => t), weightDecay: 0 },
], { lr: s.lr, betas: [s.beta1, s.beta2], eps: 1e-8 });
let scheduler = new LRScheduler(optimizer, cosineWithWarmup(Math.min(s.warmup, s.steps), s.steps, { minRatio: s['min-lr-ratio'] }));

let step = 0;
let trainSeconds = 0;
/** @type {{ step: number, loss: number }[]} */
let lossHistory = [];
/** @type {object[]} */
let evalHistory = [];
/** @type {object[]} */
let runs = [];
if (saved) {
  loadCheckpointTensors(outDir, { model, optimizer });
  step = saved.step;
  trainSeconds = saved.trainSeconds;
  lossHistory = saved.lossHistory;
  evalHistory = saved.evalHistory;
  runs = saved.runs;
  // The schedule follows the current --steps (a resumed run may be extended).
  scheduler.loadStateDict({ step, 'base_lr.0': s.lr, 'base_lr.1': s.lr });
  note(`resumed ${outDir} at step ${step} (${duration(trainSeconds)} of training so far)`);
}
const tokensPerStep = s.batch * s.context;
note(`model: ${parameterCount} parameters (${parameterCount - embeddingCount} outside the ${s.untied ? 'embeddings and head' : 'tied embedding'}), ` +
  `hidden ${s.hidden}, ${s.layers} layers, ${s.heads} heads (${s['kv-heads']} kv), intermediate ${s.intermediate}, vocab ${config.vocabSize}`);
note(`training: ${s.steps} steps x ${s.batch} sequences x ${s.context} tokens = ${(s.steps * tokensPerStep / 1e6).toFixed(2)} M tokens ` +
  `(${(s.steps * s.batch / order.count).toFixed(2)} passes over ${order.count} sequences); unigram baseline perplexity ${unigram.perplexity.toFixed(1)}`);

mkdirSync(outDir, { recursive: true });
const logPath = join(outDir, 'log.jsonl');
const log = (/** @type {object} */ record) => appendFileSync(logPath, `${JSON.stringify(record)}\n`);
const thisRun = { command: commandLine, startedAt: new Date().toISOString(), fromStep: step, toStep: step, seconds: 0 };
runs.push(thisRun);
log({ type: 'start', ...thisRun, settings: s, parameters: parameterCount, kernels });

let stopReason = null;
const stop = (/** @type {string} */ why) => {
  if (!stopReason) note(`${why}: stopping after this step and saving a checkpoint`);
  stopReason = why;
};
process.on('SIGINT', () => stop('SIGINT'));
process.on('SIGTERM', () => stop('SIGTERM'));

const persist = () => {
  saveCheckpoint(outDir, {
    model, optimizer,
    state: { settings: s, step, trainSeconds, tokensSeen: step * tokensPerStep, lossHistory, evalHistory, runs },
  });
};

const evaluate = (/** @type {number} */ limit) => {
  const started = performance.now();
  const result = heldOutLoss(model, limit > 0 ? windows.slice(0, limit) : windows, s['eval-batch']);
  const record = { type: 'eval', step, ...result, windows: limit > 0 ? Math.min(limit, windows.length) : windows.length, seconds: (performance.now() - started) / 1000 };
  log(record);
  note(`eval at step ${step}: held-out loss ${result.loss.toFixed(4)}, perplexity ${result.perplexity.toFixed(2)} ` +
    `(${result.tokens} tokens, unigram ${unigram.perplexity.toFixed(1)}) in ${duration(record.seconds)}`);
  return record;
};

// Training.
// --fit-minutes: steps FIT_FROM..FIT_AT are timed (the first ones include warm-up costs), then
// --steps is set so the run fits the time given. It happens inside the warmup, whose rates do
// not depend on the total, so the run equals one started with the chosen --steps.
const FIT_FROM = 10;
const FIT_AT = 40;
let fitClock = 0;
let windowLoss = 0;
let windowSteps = 0;
let windowStart = performance.now();
const runStart = performance.now();
while (!s.finalize && step < s.steps && !stopReason) {
  // Yield to the event loop once a step so SIGINT/SIGTERM handlers can run.
  await new Promise((resolve) => setImmediate(resolve));
  const started = performance.now();
  const ids = order.batchAt(step, s.batch);
  const lr = optimizer.paramGroups[0].lr;
  const loss = tidy(() => {
    const l = model.loss(tensor(ids, { shape: [s.batch, s.context], dtype: 'int32', device: s.device }));
    const value = l.item();
    if (Number.isFinite(value)) l.backward();
    return value;
  });
  const gradNorm = clipGradNorm(params, s['max-grad-norm']);
  if (!Number.isFinite(loss) || !Number.isFinite(gradNorm)) {
    note(`pretrain: error: step ${step + 1}: loss ${loss}, gradient norm ${gradNorm}; stopping without saving (the last checkpoint is intact)`);
    process.exit(1);
  }
  optimizer.step();
  optimizer.zeroGrad();
  scheduler.step();
  step += 1;
  const seconds = (performance.now() - started) / 1000;
  trainSeconds += seconds;
  lossHistory.push({ step, loss: Number(loss.toFixed(5)) });
  log({ type: 'step', step, loss, lr, gradNorm, tokens: tokensPerStep, tokensPerSecond: tokensPerStep / seconds, seconds });
  windowLoss += loss;
  windowSteps += 1;
  if (step % s['log-every'] === 0 || step === s.steps) {
    const elapsed = (performance.now() - windowStart) / 1000;
    const rate = (windowSteps * tokensPerStep) / elapsed;
    const eta = ((s.steps - step) * tokensPerStep) / rate;
    note(`step ${step}/${s.steps}  loss ${(windowLoss / windowSteps).toFixed(4)}  lr ${lr.toExponential(2)}  grad norm ${gradNorm.toFixed(2)}  ` +
      `${rate.toFixed(0)} tok/s  trained ${duration(trainSeconds)}  eta ${duration(eta)}`);
    windowLoss = 0;
    windowSteps = 0;
    windowStart = performance.now();
  }
  if (s['eval-every'] > 0 && step % s['eval-every'] === 0 && step < s.steps) evalHistory.push(evaluate(s['eval-windows']));
  if (s['fit-minutes'] > 0 && !saved && step === FIT_FROM) fitClock = performance.now();
  if (s['fit-minutes'] > 0 && !saved && step === FIT_AT && FIT_AT < Math.min(s.warmup, s.steps)) {
    const perStep = (performance.now() - fitClock) / 1000 / (FIT_AT - FIT_FROM);
    const elapsedSeconds = (performance.now() - runStart) / 1000;
    s.steps = fittedSteps({ minutes: s['fit-minutes'], elapsedSeconds, secondsPerStep: perStep, step, warmup: s.warmup });
    scheduler = new LRScheduler(optimizer, cosineWithWarmup(s.warmup, s.steps, { minRatio: s['min-lr-ratio'] }));
    scheduler.loadStateDict({ step, 'base_lr.0': s.lr, 'base_lr.1': s.lr });
    note(`--fit-minutes ${s['fit-minutes']}: ${(perStep * 1000).toFixed(1)} ms/step, training ${s.steps} steps ` +
      `(${(s.steps * tokensPerStep / 1e6).toFixed(1)} M tokens)`);
  }
  if (s['max-minutes'] > 0 && (performance.now() - runStart) / 60000 >= s['max-minutes']) stop(`--max-minutes ${s['max-minutes']} reached`);
  if (s['pause-at'] > 0 && step === s['pause-at'] && step < s.steps) stop(`--pause-at ${step}`);
  thisRun.toStep = step;
  thisRun.seconds = (performance.now() - runStart) / 1000;
  thisRun.endedAt = new Date().toISOString();
  if ((s['save-every'] > 0 && step % s['save-every'] === 0) || step === s.steps || stopReason) persist();
}
thisRun.endedAt = new Date().toISOString();
thisRun.toStep = step;
thisRun.seconds = (performance.now() - runStart) / 1000;
if (step === 0) {
  note('pretrain: nothing trained yet; nothing to evaluate or export');
  process.exit(stopReason ? 130 : 1);
}
if (stopReason && !stopReason.startsWith('--max-minutes')) {
  persist();
  note(`stopped at step ${step}; continue with: node scripts/pretrain/pretrain.mjs --out ${relative(root, outDir)} --resume` +
    ' (or --finalize to evaluate and export this checkpoint)');
  process.exit(stopReason.startsWith('--pause-at') ? 0 : 130);
}

// Final evaluation on every held-out token, next to the unigram baseline.
const final = evaluate(0);
const lastLosses = lossHistory.slice(-50);
const report = {
  model: {
    parameters: parameterCount,
    nonEmbeddingParameters: parameterCount - embeddingCount,
    hiddenSize: s.hidden, layers: s.layers, heads: s.heads, kvHeads: s['kv-heads'], intermediateSize: s.intermediate,
    vocabSize: config.vocabSize, tiedEmbeddings: !s.untied, maxPositionEmbeddings: s['max-positions'],
  },
  training: {
    settings: s,
    steps: step,
    plannedSteps: s.steps,
    complete: step >= s.steps,
    sequenceLength: s.context,
    tokensPerStep,
    tokensSeen: step * tokensPerStep,
    passesOverCorpus: (step * s.batch) / order.count,
    trainingSeconds: Number(trainSeconds.toFixed(1)),
    tokensPerSecond: Number(((step * tokensPerStep) / trainSeconds).toFixed(1)),
    firstLoss: lossHistory[0]?.loss ?? null,
    finalLossMeanOfLast50Steps: Number((lastLosses.reduce((a, r) => a + r.loss, 0) / lastLosses.length).toFixed(4)),
    runs,
  },
  data: {
    train: { file: 'packages/blora/assets/corpus/train.txt', tokens: train.ids.length, documents: train.documents, sequences: order.count },
    heldOut: { file: 'packages/blora/assets/corpus/heldout.txt', tokens: held.ids.length, documents: held.documents },
    format: 'each document is bos + text + eos; documents concatenated in file order',
  },
  heldOut: {
    tokensScored: final.tokens,
    windowLength: s.context,
    loss: Number(final.loss.toFixed(4)),
    perplexity: Number(final.perplexity.toFixed(2)),
    unigramLoss: Number(unigram.loss.toFixed(4)),
    unigramPerplexity: Number(unigram.perplexity.toFixed(2)),
    unigram: 'add-one smoothed token unigram estimated on the training tokens, scored on the same held-out tokens',
  },
  evals: evalHistory,
  machine: {
    cpu: os.cpus()[0]?.model ?? 'unknown',
    cpus: os.availableParallelism(),
    memoryGiB: Number((os.totalmem() / 2 ** 30).toFixed(1)),
    platform: `${os.platform()} ${os.arch()}`,
    node: process.version,
    device: s.device,
    gpu,
    kernels,
  },
  command: commandLine,
  finishedAt: new Date().toISOString(),
};
writeFileSync(join(outDir, 'pretrain-report.json'), `${JSON.stringify(report, null, 2)}\n`);
note(`held-out perplexity ${final.perplexity.toFixed(2)} vs unigram ${unigram.perplexity.toFixed(2)} ` +
  `after ${step} steps (${(step * tokensPerStep / 1e6).toFixed(2)} M tokens, ${duration(trainSeconds)} of training)`);

if (s.export !== 'none') {
  const exportDir = resolve(root, s.export);
  const written = saveLlama(model, exportDir);
  const generation = { _from_model_config: true, bos_token_id: config.bosTokenId, eos_token_id: config.eosTokenIds[0], pad_token_id: config.padTokenId };
  writeFileSync(join(exportDir, 'generation_config.json'), `${JSON.stringify(generation, null, 2)}\n`);
  writeFileSync(join(exportDir, 'pretrain-report.json'), `${JSON.stringify(report, null, 2)}\n`);
  // A checkpoint directory elsewhere gets the tokenizer too, so it is complete on its own.
  for (const file of ['tokenizer.json', 'tokenizer_config.json']) {
    const from = join(assets, 'tiny-llama', file);
    if (resolve(exportDir, file) !== from && existsSync(from)) {
      copyFileSync(from, join(exportDir, file));
      written.push(join(exportDir, file));
    }
  }
  note(`saved ${[...written, join(exportDir, 'generation_config.json'), join(exportDir, 'pretrain-report.json')].map((f) => relative(root, f)).join(', ')}`);
}
process.stdout.write(`${JSON.stringify(report.heldOut)}\n`);
