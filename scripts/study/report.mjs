#!/usr/bin/env node
/**
 * Writes the study's report page, docs/study.md, and its plots, docs/images/study-*.svg, from
 * the results JSON of `node scripts/study/run.mjs`: tables with mean ± std over seeds, the
 * verdict on each of the paper's claims computed from the numbers by a stated criterion, and
 * the exact commands. Without a results file it writes the page that says the study has not
 * been run yet (and leaves the plots alone).
 *
 * Usage: node scripts/study/report.mjs [RESULTS.json] [--docs DIR]
 */
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { byVariant, judgeClaims, lateGradNorm, LATE_FRACTION } from './lib/claims.mjs';
import { STUDY_DEFAULTS, UNSUPPORTED, VARIANTS } from './lib/grid.mjs';
import { formatMeanStd, mean, SEPARATION_SE, std } from './lib/stats.mjs';
import { barChart, lineChart, movingAverage } from './lib/svg.mjs';

const root = resolve(import.meta.dirname, '..', '..');

/** The commands that rerun the whole study and regenerate this page. */
export const RERUN = [
  'npx turbo run build --filter=@blora/blora... --filter=@blora/cpu-kernels',
  `node scripts/study/run.mjs --device cuda --steps ${STUDY_DEFAULTS.steps} --seeds ${STUDY_DEFAULTS.seeds.join(',')} --out runs/study`,
  'node scripts/study/report.mjs runs/study/results.json',
];

const FRONT = '---\ntitle: Reproducing the paper\'s claims\n---\n\n# Reproducing the paper\'s claims at small scale\n';

/** The claims and how each is decided, shared by both versions of the page. */
function claimsIntro() {
  return [
    'The paper (arXiv 2407.17029) claims:',
    '',
    '1. QLoRA underfits: its gradient norms stay high through training.',
    '2. Q-BLoRA with λ = 2 beats QLoRA at equal trainable parameters.',
    '3. Too large a λ loses information.',
    "4. QA-BLoRA's merged 4-bit model keeps its accuracy, where QLoRA followed by post-training quantization loses some.",
    '',
    `Each verdict is computed from per-seed differences between two variants trained with the same seed (same data order): ` +
      `a difference counts only when its mean over the seeds is more than ${SEPARATION_SE} standard errors from zero. ` +
      "Otherwise the verdict is 'not separated' (or 'too few seeds' with a single seed).",
    '',
  ];
}

/** The planned grid as a markdown list. */
function gridList() {
  return [
    'QLoRA and every Q-BLoRA λ have the same trainable parameters by construction (r·(in + out) per layer); the QA variants ' +
      'train one matrix (out/λout) × (in/λin) per layer, far fewer on small layers, and are compared on their 4-bit export.',
    '',
    ...VARIANTS.map((v) => `- \`${v.name}\`: ${v.label}; 4-bit export: ${v.export === 'exact' ? 'exact merge into the INT4 offsets' : 'dense merge, then INT4 re-quantization (groups of 32)'}` +
      (v.note ? `. ${v.note}` : '')),
    ...UNSUPPORTED.map((u) => `- \`${u.name}\` (${u.label}): ${u.reason}.`),
  ];
}

/** The page for a study that has not been run. */
export function placeholderPage() {
  return [
    FRONT,
    '**The study has not been run yet.** This page is generated from the study\'s results; until they exist it only ' +
      'describes what will be run and how the claims will be decided. To run it and regenerate this page, from the ' +
      'repository root (the full grid is meant for a GPU host; on the CPU, fewer steps or `--only` keep it short):',
    '',
    '```sh',
    ...RERUN,
    '```',
    '',
    '`node scripts/study/run.mjs --dry-run` prints every command the study will run; `--only qlora,qblora-*` runs a part of ' +
      'the grid; an interrupted study continues where it stopped when started again with the same `--out`.',
    '',
    '## What is compared',
    '',
    ...claimsIntro(),
    `Each variant is trained on the embedded model and the embedded WordNet instruction set (a fixed held-out split of ` +
      `${STUDY_DEFAULTS.evalSize} examples), with r = ${STUDY_DEFAULTS.rank}, for every seed; then its adapter model and its ` +
      'merged 4-bit model are scored on the 4-choice WordNet test (accuracy and length-normalised accuracy) and on the held-out loss. ' +
      'Gradient norms come from the training log (the total norm before clipping, every step).',
    '',
    ...gridList(),
    '',
  ].join('\n');
}

/** Seconds every run spent in its stages (fine-tune, scores, merge), summed over runs. */
function runSeconds(/** @type {any} */ results) {
  return results.runs.reduce((n, /** @type {any} */ r) => n + Object.values(r.stageSeconds ?? {}).reduce((a, /** @type {any} */ b) => a + (Number(b) || 0), 0), 0);
}

const pct = (/** @type {number} */ v) => `${(100 * v).toFixed(1)}%`;

/** Values of `f` over a variant's runs (finite numbers only). */
function values(/** @type {Map<number, any>} */ runs, /** @type {(r: any) => number | null | undefined} */ f) {
  return /** @type {number[]} */ ([...runs.values()].map(f).filter((v) => typeof v === 'number' && Number.isFinite(v)));
}

/** The variants present in the results, in grid order. */
function presentVariants(/** @type {Map<string, Map<number, any>>} */ groups) {
  return VARIANTS.filter((v) => groups.has(v.name));
}

/** Table: every variant's training and scores, mean ± std over seeds. */
function mainTable(/** @type {Map<string, Map<number, any>>} */ groups) {
  const lines = [
    `| variant | seeds | trainable params | accuracy (%) | acc_norm (%) | held-out loss | final train loss | late grad norm | fine-tune s |`,
    '| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |',
  ];
  for (const v of presentVariants(groups)) {
    const runs = /** @type {Map<number, any>} */ (groups.get(v.name));
    const params = [...new Set(values(runs, (r) => r.parameters.trainable))].map((p) => p.toLocaleString('en-US')).join(' / ');
    lines.push(`| ${v.label} | ${runs.size} | ${params} | ${formatMeanStd(values(runs, (r) => r.adapter.accuracy), 1, 100)} | ` +
      `${formatMeanStd(values(runs, (r) => r.adapter.accuracyNorm), 1, 100)} | ${formatMeanStd(values(runs, (r) => r.adapter.heldOutLoss))} | ` +
      `${formatMeanStd(values(runs, (r) => r.training.finalLossMean))} | ${formatMeanStd(values(runs, lateGradNorm))} | ` +
      `${formatMeanStd(values(runs, (r) => r.stageSeconds?.finetune), 0)} |`);
  }
  return lines;
}

/** Table: the 4-bit exports against the adapter models they come from. */
function exportTable(/** @type {Map<string, Map<number, any>>} */ groups) {
  const lines = [
    '| variant | 4-bit export | adapter accuracy (%) | merged INT4 accuracy (%) | accuracy change (points) | held-out loss change | max relative logit change | argmax changes |',
    '| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |',
  ];
  for (const v of presentVariants(groups)) {
    const runs = /** @type {Map<number, any>} */ (groups.get(v.name));
    const rel = values(runs, (r) => r.merged.check?.relative);
    lines.push(`| ${v.label} | ${v.export === 'exact' ? 'exact merge into INT4' : 'dense merge + INT4 re-quantization'} | ` +
      `${formatMeanStd(values(runs, (r) => r.adapter.accuracy), 1, 100)} | ${formatMeanStd(values(runs, (r) => r.merged.accuracy), 1, 100)} | ` +
      `${formatMeanStd(values(runs, (r) => r.merged.accuracy - r.adapter.accuracy), 1, 100)} | ` +
      `${formatMeanStd(values(runs, (r) => r.merged.heldOutLoss - r.adapter.heldOutLoss), 4)} | ` +
      `${rel.length ? Math.max(...rel).toExponential(1) : '—'} | ${formatMeanStd(values(runs, (r) => r.merged.check?.argmaxChanges), 0)} |`);
  }
  return lines;
}

/** The accuracy plot: adapter model and merged INT4 model per variant, with the base and chance as references. */
function accuracyPlot(/** @type {Map<string, Map<number, any>>} */ groups, /** @type {any} */ results) {
  const bar = (/** @type {number[]} */ xs) => (xs.length ? { mean: mean(xs), std: std(xs) } : null);
  const refs = [{ value: 0.25, label: 'chance' }];
  if (typeof results.base?.accuracy === 'number') refs.push({ value: results.base.accuracy, label: 'base' });
  return barChart({
    title: '4-choice accuracy by method',
    axis: `mean over seeds, whisker ± std; ${results.base?.questions ?? '?'} questions`,
    series: ['adapter model', 'merged INT4 model'],
    groups: presentVariants(groups).map((v) => {
      const runs = /** @type {Map<number, any>} */ (groups.get(v.name));
      return { label: v.label, bars: [bar(values(runs, (r) => r.adapter.accuracy)), bar(values(runs, (r) => r.merged.accuracy))] };
    }),
    references: refs,
    format: (v) => `${(100 * v).toFixed(v < 0.1 ? 1 : 0)}%`,
  });
}

/** The gradient-norm plot: per-step norms averaged over seeds, then smoothed, one curve per variant. */
function gradNormPlot(/** @type {Map<string, Map<number, any>>} */ groups) {
  const series = presentVariants(groups).map((v) => {
    const runs = [.../** @type {Map<number, any>} */ (groups.get(v.name)).values()];
    const steps = runs[0].curves.step;
    const avg = steps.map((/** @type {number} */ _, /** @type {number} */ i) => mean(runs.map((r) => r.curves.gradNorm[i]).filter(Number.isFinite)));
    return { name: v.label, x: steps, y: movingAverage(avg, Math.max(1, Math.round(steps.length / 50))) };
  });
  return lineChart({
    title: 'Gradient norm during training',
    axis: 'total norm of the adapter gradients before clipping, mean over seeds, moving average over 2 % of the steps',
    xLabel: 'optimizer step',
    series,
  });
}

/** Warnings computed from the settings: a run too small to decide anything says so. */
function smallRunWarnings(/** @type {any} */ results) {
  const s = results.study.settings;
  const notes = [];
  if (s.seeds.length < 2) notes.push('one seed only: no claim can be decided (a standard error needs two seeds)');
  if (s.steps < 100) notes.push(`${s.steps} training steps: far too few for the adapters to learn the task`);
  if ((results.base?.questions ?? 0) < 500) notes.push(`${results.base?.questions ?? 0} test questions (of 500): one run's accuracy is very noisy`);
  return notes;
}

/** The page for a finished (or partial) study. */
export function resultsPage(/** @type {any} */ results, /** @type {string} */ resultsPath) {
  const groups = byVariant(results.runs);
  const s = results.study.settings;
  const env = results.study.environment;
  const verdicts = judgeClaims(results.runs);
  const warnings = smallRunWarnings(results);
  return [
    FRONT,
    `Generated by \`node scripts/study/report.mjs ${resultsPath}\` from a study run on ${results.study.created.slice(0, 10)} ` +
      `(commit ${env.commit ? env.commit.slice(0, 10) : 'unknown'}, device ${env.device}, ${env.cpuKernels}, Node ${env.node}, ` +
      `blora ${env.blora}); ${results.runs.length} runs taking ${(runSeconds(results) / 60).toFixed(1)} minutes of fine-tuning, scoring and merging.`,
    '',
    ...(warnings.length ? ['**Too small to support conclusions:** ' + warnings.join('; ') + '.', ''] : []),
    'Commands (from the repository root):',
    '',
    '```sh',
    RERUN[0],
    results.study.rerun ?? results.study.command,
    `node scripts/study/report.mjs ${resultsPath}`,
    '```',
    '',
    `Settings: model \`${s.model}\`, ${s.steps} steps of ${s.batch * s.gradAccum} examples, lr ${s.lr}, r = ${s.rank}, ` +
      `seeds ${s.seeds.join(', ')}, ${s.evalSize} held-out examples, ${s.mcLimit === 0 ? 'all' : `the first ${s.mcLimit}`} test questions. ` +
      `Base model alone (float32): accuracy ${pct(results.base.accuracy)}, held-out loss ${results.base.heldOutLoss.toFixed(3)}.`,
    '',
    ...(results.study.modelNote ? [results.study.modelNote, ''] : []),
    '## Claims',
    '',
    ...claimsIntro(),
    '| claim | criterion | verdict | numbers |',
    '| --- | --- | --- | --- |',
    ...verdicts.map((v) => `| ${v.id}. ${v.claim} | ${v.criterion} | **${v.verdict}** | ${v.evidence} |`),
    '',
    '## Training and scores',
    '',
    `Mean ± std over seeds. Accuracy: the most likely choice; acc_norm: the most likely per character; chance is 25 %. ` +
      `Final train loss: mean over the last 10 % of the steps. Late grad norm: mean over the last ${100 * LATE_FRACTION} % of the steps.`,
    '',
    ...mainTable(groups),
    '',
    '![4-choice accuracy by method](images/study-accuracy.svg)',
    '',
    '![Gradient norm during training](images/study-grad-norm.svg)',
    '',
    '## 4-bit exports',
    '',
    'Each adapter is folded into a 4-bit model and that model is scored again. QA variants merge exactly into the INT4 ' +
      'blocks\' offsets; QLoRA and Q-BLoRA merge into dense weights that are then quantized to INT4 (groups of 32, the same ' +
      'bits per weight). The logit columns compare the saved model with the adapter model on a few sequences (from `merge-report.json`).',
    '',
    ...exportTable(groups),
    '',
    '## Variants not run',
    '',
    ...(results.unsupported.length ? results.unsupported.map((/** @type {any} */ u) => `- \`${u.name}\` (${u.label}): ${u.reason}.`) : ['None.']),
    ...(results.failures.length ? ['', '## Failed runs', '', ...results.failures.map((/** @type {any} */ f) => `- \`${f.id}\` failed at ${f.stage} (exit ${f.code}): ${f.message.split('\n').pop()}`)] : []),
    // Observations written next to the numbers (results.study.notes: markdown paragraphs).
    ...(results.study.notes?.length ? ['', '## What the numbers say', '', ...results.study.notes.flatMap((/** @type {string} */ n) => [n, ''])] : ['']),
  ].join('\n');
}

function main() {
  const { values, positionals } = parseArgs({ args: process.argv.slice(2), options: { docs: { type: 'string' }, help: { type: 'boolean' } }, allowPositionals: true });
  if (values.help || positionals.length > 1) {
    process.stdout.write('Usage: node scripts/study/report.mjs [RESULTS.json] [--docs DIR]\n');
    return values.help ? 0 : 2;
  }
  const docs = resolve(values.docs ?? join(root, 'docs'));
  mkdirSync(join(docs, 'images'), { recursive: true });
  const file = positionals[0];
  if (file === undefined) {
    writeFileSync(join(docs, 'study.md'), placeholderPage());
    process.stderr.write(`wrote ${join(docs, 'study.md')} (the study has not been run)\n`);
    return 0;
  }
  if (!existsSync(file)) {
    process.stderr.write(`report: ${file}: no such file\n`);
    return 2;
  }
  const results = JSON.parse(readFileSync(file, 'utf8'));
  const shownPath = resolve(file).startsWith(root) ? resolve(file).slice(root.length + 1) : file;
  writeFileSync(join(docs, 'study.md'), resultsPage(results, shownPath));
  const groups = byVariant(results.runs);
  if (groups.size) {
    writeFileSync(join(docs, 'images', 'study-accuracy.svg'), accuracyPlot(groups, results));
    writeFileSync(join(docs, 'images', 'study-grad-norm.svg'), gradNormPlot(groups));
  }
  process.stderr.write(`wrote ${join(docs, 'study.md')} and its plots in ${join(docs, 'images')}\n`);
  return 0;
}

if (import.meta.url === `file://${process.argv[1]}`) process.exitCode = main();
