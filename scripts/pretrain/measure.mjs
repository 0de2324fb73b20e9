#!/usr/bin/env node
/**
 * Measures the training throughput of candidate model sizes on this machine: for each size,
 * a fresh model trains a few steps on real batches of the corpus (same step as pretrain.mjs:
 * forward, backward, clipping, AdamW) and the tokens per second of the steps after the first
 * are printed. Nothing is written. Build the packages first (see README.md).
 *
 * Usage: node scripts/pretrain/measure.mjs [--steps 6] [--batch 16] [--context 128]
 *          [--sizes hidden:layers:heads:intermediate,...]
 */
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { tensor, tidy } from '@blora/tensor';
import { AdamW, clipGradNorm } from '@blora/autograd';
import { Tokenizer, createLlama, llamaConfig } from '@blora/models';
import { SequenceOrder, tokenizeCorpus } from './lib/corpus.mjs';

const { values } = parseArgs({
  options: {
    steps: { type: 'string', default: '6' },
    batch: { type: 'string', default: '16' },
    context: { type: 'string', default: '128' },
    sizes: { type: 'string', default: '96:4:4:256,128:4:4:384,128:6:4:384,160:4:5:448,192:4:6:512' },
  },
});
const steps = Number(values.steps);
const batch = Number(values.batch);
const context = Number(values.context);

try {
  const kernels = await import('@blora/cpu-kernels');
  const info = kernels.cpuKernelsInfo();
  console.log(`cpu kernels: ${info.native ? `native ${info.isa}, ${info.threads} threads` : info.reason}`);
} catch {
  console.log('cpu kernels: not available (TypeScript kernels)');
}
const root = resolve(import.meta.dirname, '..', '..');
const tokenizerPath = join(root, 'packages', 'blora', 'assets', 'tiny-llama', 'tokenizer.json');
const tokenizer = Tokenizer.fromFile(tokenizerPath);
const corpus = tokenizeCorpus(tokenizer, join(root, 'packages', 'blora', 'assets', 'corpus', 'train.txt'), tokenizerPath,
  join(root, 'runs', 'pretrain-cache'));
const order = new SequenceOrder(corpus.ids, context, 0);

console.log('size (hidden:layers:heads:intermediate) | parameters | non-embedding | s/step | tokens/s');
for (const size of values.sizes.split(',')) {
  const [hidden, layers, heads, intermediate] = size.split(':').map(Number);
  const config = llamaConfig({
    vocabSize: tokenizer.vocabSize, hiddenSize: hidden, intermediateSize: intermediate, numHiddenLayers: layers,
    numAttentionHeads: heads, tieWordEmbeddings: true, maxPositionEmbeddings: 512,
  });
  const model = createLlama(config, { seed: 0 });
  model.train();
  const params = model.parameters();
  const count = params.reduce((n, t) => n + t.numel, 0);
  const optimizer = new AdamW(params, { lr: 1e-3 });
  let timed = 0;
  for (let step = 0; step < steps; step++) {
    const started = performance.now();
    tidy(() => {
      const loss = model.loss(tensor(order.batchAt(step, batch), { shape: [batch, context], dtype: 'int32' }));
      loss.item();
      loss.backward();
    });
    clipGradNorm(params, 1);
    optimizer.step();
    optimizer.zeroGrad();
    if (step > 0) timed += (performance.now() - started) / 1000;
  }
  const perStep = timed / (steps - 1);
  console.log(`${size} | ${count} | ${count - model.model.embed_tokens.weight.numel} | ${perStep.toFixed(2)} | ${((batch * context) / perStep).toFixed(0)}`);
  optimizer.dispose();
  model.dispose();
}
