// A short fine-tune on real text: a small Llama-style character model over the Brown corpus
// with a frozen 4-bit base (NF4 under Q-BLoRA, INT4 blocks under QA-BLoRA) and adapters
// trained by AdamW. The held-out loss must fall clearly; the frozen base must not move; the
// trained QA-BLoRA adapters must merge into the INT4 model without changing its loss.
import { describe, expect, it } from 'vitest';
import { memoryStats, tensor, tidy, type Tensor } from '@blora/tensor';
import { seededRandom } from '@blora/tensor/testing';
import { AdamW, noGrad } from '@blora/autograd';
import type { IntBlockLinear, QuantizeOptions } from '@blora/quant';
import { attachAdapters, mergeAdapters, quantizeModel, QuantizedBase, summarizeParameters, type AdapterConfig } from '../src/index.js';
import { ALPHABET, brownCharIds, unigramEntropy } from './corpus.js';
import { ToyCausalLM, type ToyConfig } from './toy-model.js';

const cfg: ToyConfig = { vocab: ALPHABET.length, dim: 32, heads: 4, kvHeads: 2, hidden: 64, layers: 2, context: 16 };
const train = brownCharIds(['ca01', 'ca02']);
const heldOut = brownCharIds(['ca03']);

/** `n` random windows of `source`: inputs [n, context] and next characters [n · context]. */
function sample(source: Int32Array, rnd: () => number, n: number): [Tensor, Tensor] {
  const inputs = new Int32Array(n * cfg.context);
  const targets = new Int32Array(n * cfg.context);
  for (let b = 0; b < n; b++) {
    const s = Math.floor(rnd() * (source.length - cfg.context - 1));
    inputs.set(source.subarray(s, s + cfg.context), b * cfg.context);
    targets.set(source.subarray(s + 1, s + cfg.context + 1), b * cfg.context);
  }
  return [tensor(inputs, { shape: [n, cfg.context], dtype: 'int32' }), tensor(targets, { dtype: 'int32' })];
}

/** Loss on a fixed held-out set of 32 windows. */
function heldOutLoss(model: ToyCausalLM): number {
  return noGrad(() => tidy(() => model.loss(...sample(heldOut, seededRandom(77), 32)).item()));
}

/** Quantizes a fresh model, attaches adapters and trains them; returns the model, the attachment and the losses. */
function fineTune(format: QuantizeOptions, adapters: AdapterConfig, steps: number) {
  const model = new ToyCausalLM(cfg, 1);
  quantizeModel(model, format);
  const attached = attachAdapters(model, adapters);
  const embedding = model.model.embed_tokens.weight.toFloat64Array();
  const before = heldOutLoss(model);
  const optimizer = new AdamW(attached.trainableParameters(), { lr: 2e-2, weightDecay: 0 });
  const rnd = seededRandom(3);
  let liveAfterFirstSteps = 0;
  for (let step = 0; step < steps; step++) {
    tidy(() => model.loss(...sample(train, rnd, 8)).backward());
    optimizer.step();
    optimizer.zeroGrad();
    if (step === 2) liveAfterFirstSteps = memoryStats().liveTensors;
  }
  // Nothing accumulates from step to step, and the frozen parts did not move.
  expect(memoryStats().liveTensors).toBeLessThanOrEqual(liveAfterFirstSteps);
  expect(model.model.embed_tokens.weight.toFloat64Array()).toEqual(embedding);
  return { model, attached, before, after: heldOutLoss(model) };
}

describe('fine-tuning adapters over a frozen 4-bit base on the Brown corpus', () => {
  const entropy = unigramEntropy(train, cfg.vocab);

  it('Q-BLoRA (λ = 2) over NF4: the held-out loss falls clearly', () => {
    const { before, after, attached, model } = fineTune({ format: 'nf4', blocksize: 64 }, { method: 'qblora', lambda: 2, r: 4, alpha: 8 }, 40);
    expect(before).toBeGreaterThan(entropy + 0.3);
    expect(after).toBeLessThan(before - 0.5);
    expect(after).toBeLessThan(entropy);
    const summary = summarizeParameters(model);
    expect(summary.trainable).toBe(attached.trainableParameters().reduce((n, t) => n + t.numel, 0));
    console.log(`Q-BLoRA / NF4: held-out loss ${before.toFixed(3)} -> ${after.toFixed(3)} (unigram entropy ${entropy.toFixed(3)}), ` +
      `${summary.trainable} of ${summary.total} parameters trained`);
  });

  it('QA-BLoRA (λ1 = λ2 = 2) over INT4 2 x 2 blocks: the loss falls, and the exact merge keeps it', () => {
    const { before, after, attached, model } = fineTune(
      { format: 'int4', blockRows: 2, blockCols: 2, scaleDType: 'float32' },
      { method: 'qablora', lambdaIn: 2, lambdaOut: 2, r: 4, alpha: 8 }, 40);
    expect(after).toBeLessThan(before - 0.5);
    const q = (attached.layers.get('model.layers.0.mlp.up_proj')!.base as QuantizedBase).quantized as IntBlockLinear;
    const codes = q.codes.toFloat64Array();
    mergeAdapters(attached);
    expect(q.codes.toFloat64Array()).toEqual(codes);
    const merged = heldOutLoss(model);
    expect(Math.abs(merged - after)).toBeLessThan(1e-4);
    console.log(`QA-BLoRA / INT4: held-out loss ${before.toFixed(3)} -> ${after.toFixed(3)}, after merging into INT4 ${merged.toFixed(5)}`);
  });
});
