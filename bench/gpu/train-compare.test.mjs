// node --test bench/gpu/train-compare.test.mjs
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { mergeTrainReports, trainComparison, trainTable, trainVariants, whyNotComparable } from './train-compare.mjs';

const peers = {
  results: [
    { id: 'lora.tinyllama.step', unit: 'ms', value: 174, tokensPerStep: 4096, trainableParams: 50462720, peakAllocatedGiB: 15.7, gradientCheckpointing: false },
    { id: 'lora.tinyllama.tokens', unit: 'tokens/s', value: 23540 },
  ],
};

function variantReport(variant, { layers = 22, requestedLayers = 22, ms = 400, scaledMs = null, peak = 12.5 } = {}) {
  const common = { variant, layers, requestedLayers, tinyLlamaWidths: true, tokensPerStep: 4096, trainableParams: 50462720, gradientCheckpointing: false };
  const results = [
    { id: `train.${variant}.step`, group: 'train', label: `${variant} step (ms/step)`, unit: 'ms', value: ms, scaledMs, ...common },
    { id: `train.${variant}.tokens`, group: 'train', label: `${variant} step (tokens/s)`, unit: 'tokens/s', value: 4096 / ms * 1000,
      scaledValue: scaledMs === null ? null : 4096 / scaledMs * 1000, scaling: scaledMs === null ? null : 'scaled', ...common },
  ];
  if (peak !== null) results.push({ id: `train.${variant}.peak_memory`, group: 'train', label: `${variant} (peak memory)`, unit: 'GiB', value: peak, ...common });
  return { suite: 'train', date: '2026-12-01T00:00:00Z', skipped: false, config: { variants: [variant] }, results, errors: [] };
}

test('variants come from BLORA_BENCH_TRAIN_VARIANTS or the default list', () => {
  assert.deepEqual(trainVariants({}), ['qlora', 'qblora', 'lora-dense']);
  assert.deepEqual(trainVariants({ BLORA_BENCH_TRAIN_VARIANTS: 'qblora, qblora,lora-dense' }), ['qblora', 'lora-dense']);
});

test('per-variant reports merge into one; missing ones are dropped', () => {
  assert.equal(mergeTrainReports([null, null]), null);
  const merged = mergeTrainReports([variantReport('qlora'), null, variantReport('qblora')]);
  assert.deepEqual(merged.config.variants, ['qlora', 'qblora']);
  assert.equal(merged.results.length, 6);
  assert.equal(merged.skipped, false);
  const skipped = mergeTrainReports([{ ...variantReport('qlora'), skipped: true, reason: 'no cuda', results: [] }]);
  assert.equal(skipped.skipped, true);
  assert.equal(skipped.reason, 'no cuda');
});

test('tokens/s rows are set against PEFT, using the depth-scaled figure when there is one', () => {
  const train = mergeTrainReports([variantReport('qlora', { ms: 409.6 }), variantReport('qblora', { layers: 11, ms: 204.8, scaledMs: 409.6, peak: null })]);
  train.errors.push({ group: 'train', id: 'train.lora-dense', error: 'CudaError: boom' });
  const rows = trainComparison(peers, train);
  assert.deepEqual(rows.map((r) => r.id), ['train.qlora.tokens', 'train.qblora.tokens', 'train.lora-dense.tokens']);
  assert.equal(rows[0].ours, 10000);
  assert.ok(Math.abs(rows[0].ratio - 10000 / 23540) < 1e-12);
  assert.equal(rows[1].ours, 10000);
  assert.equal(rows[1].scaled, 'scaled');
  assert.equal(rows[2].ours, null);
  assert.equal(rows[2].oursError, 'CudaError: boom');
  const table = trainTable(peers, train);
  assert.match(table, /PEFT LoRA/);
  assert.match(table, /10000\*/);
  assert.match(table, /0\.42x/);
  assert.match(table, /train\.lora-dense: failed/);
});

test('no ratio when the shapes, tokens or checkpointing differ, or PEFT did not run', () => {
  const step = peers.results[0];
  const base = variantReport('qlora').results[1];
  assert.equal(whyNotComparable(base, step), null);
  assert.match(whyNotComparable(base, undefined), /no PEFT figure/);
  assert.match(whyNotComparable({ ...base, requestedLayers: 4 }, step), /4 layers, PEFT 22/);
  assert.match(whyNotComparable({ ...base, tinyLlamaWidths: false }, step), /widths/);
  assert.match(whyNotComparable({ ...base, tokensPerStep: 2048 }, step), /2048 tokens per step, PEFT 4096/);
  assert.match(whyNotComparable({ ...base, gradientCheckpointing: true }, step), /checkpointing/);
  const rows = trainComparison({ results: [] }, mergeTrainReports([variantReport('qlora')]));
  assert.equal(rows[0].ratio, undefined);
  assert.equal(rows[0].notComparable, 'no PEFT figure in this run');
  assert.equal(trainTable(null, null), null);
});
