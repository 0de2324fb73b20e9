import { test } from 'node:test';
import assert from 'node:assert/strict';
import { judgeClaims, lateGradNorm } from '../lib/claims.mjs';
import { formatMeanStd, pairedDifference, signOf, std } from '../lib/stats.mjs';
import { barChart, lineChart, movingAverage } from '../lib/svg.mjs';
import { placeholderPage, resultsPage } from '../report.mjs';

/** A result record with the fields the claims and the report read. */
function fakeRun(/** @type {string} */ variant, /** @type {number} */ seed, /** @type {object} */ o = {}) {
  const { acc = 0.3, merged = acc, grad = 1, loss = 2, trainable = 100 } = /** @type {any} */ (o);
  return {
    id: `${variant}/seed-${seed}`, variant, label: variant, family: variant.split('-')[0], seed,
    parameters: { trainable, total: 1000, trainablePercent: 10 },
    training: { firstLoss: 5, finalLoss: loss, finalLossMean: loss, skippedSteps: 0, tokensPerSecond: 1, seconds: 1 },
    curves: { step: [1, 2, 3, 4, 5], loss: [5, 4, 3, loss, loss], gradNorm: [9, 9, 9, 9, grad] },
    adapter: { accuracy: acc, accuracyNorm: acc, questions: 500, heldOutLoss: loss, heldOutExamples: 64 },
    merged: { mode: 'exact', stored: 'int4', requantization: null, check: { relative: 1e-7, maxAbsDiff: 1e-6, argmaxChanges: 0 },
      accuracy: merged, accuracyNorm: merged, questions: 500, heldOutLoss: loss, heldOutExamples: 64 },
    stageSeconds: { finetune: 10 },
  };
}

test('paired differences, their standard error and the 2-SE rule, checked by hand', () => {
  const d = pairedDifference(new Map([[1, 0.5], [2, 0.7], [3, 0.6]]), new Map([[1, 0.4], [2, 0.5], [3, 0.3], [9, 1]]));
  // Differences 0.1, 0.2, 0.3: mean 0.2, std 0.1, SE 0.1/√3 = 0.0577; 0.2 > 2 x 0.0577.
  assert.equal(d.n, 3);
  assert.ok(Math.abs(d.mean - 0.2) < 1e-12);
  assert.ok(Math.abs(d.se - 0.1 / Math.sqrt(3)) < 1e-12);
  assert.equal(signOf(d), 'positive');
  assert.equal(signOf({ n: 3, mean: -0.2, se: 0.05 }), 'negative');
  assert.equal(signOf({ n: 3, mean: 0.09, se: 0.05 }), 'not separated');
  assert.equal(signOf({ n: 1, mean: 0.5, se: NaN }), 'too few seeds');
  assert.equal(signOf({ n: 3, mean: 0, se: 0 }), 'not separated');
  assert.ok(Number.isNaN(std([1])));
  assert.equal(formatMeanStd([0.25, 0.35], 1, 100), '30.0 ± 7.1');
  assert.equal(formatMeanStd([0.25], 1, 100), '25.0');
  assert.equal(formatMeanStd([]), '—');
});

test('the late gradient norm averages the last 20 % of the steps', () => {
  assert.equal(lateGradNorm(fakeRun('qlora', 1, { grad: 3 })), 3);
});

test('claims are decided from the numbers: held, did not hold, not separated, not run', () => {
  const seeds = [1, 2, 3];
  const noise = [0.01, -0.01, 0];
  const runs = seeds.flatMap((s, i) => [
    // QLoRA: higher late gradient norm and loss, lower accuracy, and its re-quantized merge loses 5 points.
    fakeRun('qlora', s, { acc: 0.30 + noise[i], merged: 0.25 + noise[i], grad: 2 + noise[i], loss: 2.5 }),
    fakeRun('qblora-l2', s, { acc: 0.40 + noise[i] / 2, grad: 1, loss: 2.0 + noise[i] }),
    // λ = 8 is worse than λ = 2 by 10 points.
    fakeRun('qblora-l8', s, { acc: 0.30 - noise[i] }),
    fakeRun('qablora-4x8-b32', s, { acc: 0.35, merged: 0.35, trainable: 10 }),
  ]);
  const v = Object.fromEntries(judgeClaims(runs).map((c) => [c.id, c.verdict]));
  assert.deepEqual(v, { 1: 'held', 2: 'held', 3: 'held', 4: 'held' });

  // Q-BLoRA worse than QLoRA: claim 2 did not hold; unequal parameter counts never hold.
  const worse = runs.map((r) => (r.variant === 'qblora-l2' ? { ...r, adapter: { ...r.adapter, accuracy: r.adapter.accuracy - 0.2 } } : r));
  assert.equal(judgeClaims(worse).find((c) => c.id === '2')?.verdict, 'did not hold');
  const unequal = runs.map((r) => (r.variant === 'qblora-l2' ? { ...r, parameters: { ...r.parameters, trainable: 7 } } : r));
  assert.match(judgeClaims(unequal).find((c) => c.id === '2')?.evidence ?? '', /NOT equal/);
  assert.equal(judgeClaims(unequal).find((c) => c.id === '2')?.verdict, 'did not hold');

  // QA-BLoRA's own merge losing 5 points on every seed refutes claim 4.
  const lossy = runs.map((r) => (r.variant === 'qablora-4x8-b32' ? { ...r, merged: { ...r.merged, accuracy: 0.3 } } : r));
  assert.equal(judgeClaims(lossy).find((c) => c.id === '4')?.verdict, 'did not hold');

  // One seed: nothing can be decided; a missing variant is reported as not run.
  const one = runs.filter((r) => r.seed === 1 && r.variant !== 'qblora-l8');
  const verdicts = Object.fromEntries(judgeClaims(one).map((c) => [c.id, c.verdict]));
  assert.deepEqual(verdicts, { 1: 'too few seeds', 2: 'too few seeds', 3: 'not run', 4: 'too few seeds' });
});

test('the results page carries tables, verdicts, commands and the small-run warning; the placeholder says nothing ran', () => {
  const results = {
    study: {
      created: '2026-11-30T00:00:00Z', command: 'node scripts/study/run.mjs --steps 3 --seeds 1', wallSeconds: 60,
      settings: { model: 'm', steps: 3, batch: 4, gradAccum: 1, lr: 0.001, rank: 64, seeds: [1], evalSize: 16, mcLimit: 8 },
      environment: { commit: 'abcdef1234567', device: 'cpu', cpuKernels: 'k', node: 'v20', blora: '0.1.0' },
    },
    base: { accuracy: 0.25, accuracyNorm: 0.25, questions: 8, heldOutLoss: 6, heldOutExamples: 16 },
    unsupported: [{ name: 'x', label: 'X', reason: 'not yet supported: because' }],
    runs: [fakeRun('qlora', 1, { acc: 0.375 }), fakeRun('qblora-l2', 1)],
    failures: [],
  };
  const page = resultsPage(results, 'runs/s/results.json');
  assert.match(page, /\*\*Too small to support conclusions:\*\* one seed only/);
  assert.match(page, /node scripts\/study\/run.mjs --steps 3 --seeds 1\n/);
  assert.match(resultsPage({ ...results, study: { ...results.study, rerun: 'node scripts/study/run.mjs --seeds 1,2' } }, 'r.json'), /\nnode scripts\/study\/run.mjs --seeds 1,2\n/);
  assert.match(page, /\| QLoRA \| 1 \| 100 \| 37.5 \|/);
  assert.match(page, /\| 2\. Q-BLoRA with λ = 2 beats QLoRA .* \| \*\*too few seeds\*\* \|/);
  assert.match(page, /- `x` \(X\): not yet supported: because\./);
  const placeholder = placeholderPage();
  assert.match(placeholder, /\*\*The study has not been run yet\.\*\*/);
  assert.match(placeholder, /node scripts\/study\/run\.mjs --device cuda/);
  assert.doesNotMatch(placeholder, /\*\*(held|did not hold)\*\*/);
});

test('plots are well-formed SVG with one bar per value and one path per curve', () => {
  const bars = barChart({
    title: 'a < b', axis: 'x', series: ['s1', 's2'], format: (v) => v.toFixed(2),
    groups: [{ label: 'g', bars: [{ mean: 0.5, std: 0.1 }, null] }], references: [{ value: 0.25, label: 'chance' }],
  });
  assert.match(bars, /^<svg [^>]*>/);
  assert.match(bars, /a &lt; b/);
  assert.equal((bars.match(/<rect x="230"/g) ?? []).length, 1);
  assert.match(bars, /no result/);
  assert.match(bars, /<\/svg>\n$/);
  const lines = lineChart({ title: 't', axis: 'y', xLabel: 'step', series: [{ name: 'a', x: [1, 2, 3], y: [1, 100, 1000] }, { name: 'b', x: [1, 2, 3], y: [2, 2, 2] }] });
  assert.equal((lines.match(/<path d="M/g) ?? []).length, 2);
  assert.match(lines, /logarithmic axis/);
  assert.deepEqual(movingAverage([1, 2, 3, 4, 5], 3), [1.5, 2, 3, 4, 4.5]);
  assert.deepEqual(movingAverage([1, NaN, 3], 1), [1, NaN, 3]);
});
