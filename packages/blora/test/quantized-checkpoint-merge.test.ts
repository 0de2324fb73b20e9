// The point of QA-BLoRA: a fine-tuned adapter merges exactly into the INT4 base's offsets, and
// the merged model is saved and loaded as a 4-bit checkpoint that computes what the adapter
// model computed, with no post-training quantization.
import { afterAll, describe, expect, it } from 'vitest';
import { join } from 'node:path';
import { Generator, tidy, type Tensor } from '@blora/tensor';
import { AdamW } from '@blora/autograd';
import { IntBlockLinear, quantizeLinear, roundToFloat16, type QuantizeOptions } from '@blora/quant';
import { createLlama, loadLlama, saveLlama, toDType, type LlamaForCausalLM } from '@blora/models';
import {
  attachAdapters, compareLogits, DenseBase, mergeAdapters, QuantizedBase, quantizedBaseFactory, sequenceLogits, widenIntScales,
  type AdapterConfig, type AttachedAdapters,
} from '../src/index.js';
import { refDeltaWeight } from './helpers.js';
import { removeDir, tempDir, tinyConfig } from './train-fixtures.js';

const root = tempDir('blora-qmerge-');
afterAll(() => removeDir(root));

const VOCAB = 40;
const TRAIN = [[1, 5, 9, 2, 30, 7, 7, 3, 14, 21], [1, 11, 4, 38, 6, 6, 19, 2, 25, 8]];
const HELD_OUT = [[1, 8, 3, 27, 12, 5], [1, 33, 16, 2, 9, 39, 20, 4, 10]];

/** A tiny Llama whose projections are quantized with `options`, as fine-tuning loads a base. */
function baseModel(options: QuantizeOptions): LlamaForCausalLM {
  return createLlama(tinyConfig(VOCAB), {
    seed: 21,
    linearFactory: (_name, weight) => {
      try {
        return new QuantizedBase(quantizeLinear(weight, options));
      } finally {
        weight.dispose();
      }
    },
  });
}

/** Attaches adapters and trains them a few AdamW steps on `TRAIN`; returns them in eval mode. */
function finetune(model: LlamaForCausalLM, config: AdapterConfig): AttachedAdapters {
  const attached = attachAdapters(model, config, { generator: new Generator(3) });
  const optimizer = new AdamW(attached.trainableParameters(), { lr: 0.05, weightDecay: 0 });
  for (let step = 0; step < 3; step++) {
    tidy(() => {
      model.loss(TRAIN).backward();
      optimizer.step();
      optimizer.zeroGrad();
    });
  }
  for (const layer of attached.layers.values()) layer.adapter.eval();
  return attached;
}

function load(dir: string): LlamaForCausalLM {
  return loadLlama(dir, { linearFactory: (_n, w, c) => new DenseBase(toDType(w, c.dtype)), quantizedLinearFactory: quantizedBaseFactory });
}

function intWeights(model: LlamaForCausalLM): Map<string, IntBlockLinear> {
  const out = new Map<string, IntBlockLinear>();
  for (const [name, layer] of model.linearLayers()) {
    const q = (layer as QuantizedBase).quantized;
    if (!(q instanceof IntBlockLinear)) throw new Error(`${name} is not INT`);
    out.set(name, q);
  }
  return out;
}

const values = (t: Tensor): number[] => Array.from(t.toFloat64Array());

describe('QA-BLoRA: fine-tune, merge into INT4 offsets, save, load', () => {
  it('gives a 4-bit checkpoint whose outputs are the adapter model\'s (codes and scales unchanged)', () => {
    const model = baseModel({ format: 'int4', blockRows: 8, blockCols: 4 }); // float16 α, β as fine-tuning uses
    const before = sequenceLogits(model, HELD_OUT);
    expect(widenIntScales(model)).toHaveLength(14);
    // Widening to float32 is exact: the same outputs, bit for bit.
    expect(sequenceLogits(model, HELD_OUT)).toEqual(before);
    const base = new Map([...intWeights(model)].map(([n, q]) => [n, { codes: values(q.codes), scales: values(q.scaleTensor), offsets: values(q.offsetTensor) }]));

    const attached = finetune(model, { method: 'qablora', r: 4, alpha: 16, lambdaIn: 4, lambdaOut: 8 });
    const adapterLogits = sequenceLogits(model, HELD_OUT);
    const baseOnly = compareLogits(before, adapterLogits, VOCAB);
    expect(baseOnly.maxAbsDiff).toBeGreaterThan(1e-3); // training moved the model
    // What each block's offset must become: β + ΔW at the block (ΔW is constant on each 8 x 4 tile).
    const expected = new Map<string, number[]>();
    for (const [name, layer] of attached.layers) {
      const dw = refDeltaWeight(layer.adapter);
      const q = (layer.base as QuantizedBase).quantized as IntBlockLinear;
      const [gridRows, gridCols] = q.grid;
      const beta = base.get(name)!.offsets;
      expected.set(name, beta.map((b, i) => Math.fround(b + dw[Math.floor(i / gridCols) * 8 * q.inFeatures + (i % gridCols) * 4]!)));
      expect(beta.length).toBe(gridRows * gridCols);
    }

    const reports = mergeAdapters(attached, { mode: 'exact' });
    expect(reports.every((r) => r.offsetDType === 'float32')).toBe(true);
    const dir = join(root, 'qa');
    saveLlama(model, dir, { quantized: true });
    model.dispose();
    const merged = load(dir);
    for (const [name, q] of intWeights(merged)) {
      expect(values(q.codes), name).toEqual(base.get(name)!.codes);
      expect(values(q.scaleTensor), name).toEqual(base.get(name)!.scales);
      expect(values(q.offsetTensor), name).toEqual(expected.get(name));
      expect(values(q.offsetTensor), name).not.toEqual(base.get(name)!.offsets);
    }
    const check = compareLogits(adapterLogits, sequenceLogits(merged, HELD_OUT), VOCAB);
    expect(check.positions).toBe(15);
    expect(check.relative).toBeLessThan(1e-5);
    expect(check.argmaxChanges).toBe(0);
    merged.dispose();
  });

  it('rounds the merged offsets to float16 when the scales are not widened (smaller, no longer exact)', () => {
    const model = baseModel({ format: 'int4', blockRows: 8, blockCols: 4 });
    const attached = finetune(model, { method: 'qablora', r: 4, alpha: 16, lambdaIn: 4, lambdaOut: 8 });
    const adapterLogits = sequenceLogits(model, HELD_OUT);
    const name = 'model.layers.1.mlp.down_proj';
    const layer = attached.layers.get(name)!;
    const q = (layer.base as QuantizedBase).quantized as IntBlockLinear;
    const dw = refDeltaWeight(layer.adapter);
    const gridCols = q.grid[1];
    const expected = values(q.offsetTensor).map((b, i) => roundToFloat16(b + dw[Math.floor(i / gridCols) * 8 * q.inFeatures + (i % gridCols) * 4]!));
    expect(mergeAdapters(attached, { mode: 'exact' })[0]!.offsetDType).toBe('float16');
    const dir = join(root, 'qa16');
    saveLlama(model, dir, { quantized: true });
    const merged = load(dir);
    const stored = intWeights(merged).get(name)!;
    expect(stored.scaleDType).toBe('float16');
    expect(values(stored.offsetTensor)).toEqual(expected);
    expect(compareLogits(adapterLogits, sequenceLogits(merged, HELD_OUT), VOCAB).relative).toBeLessThan(1e-2);
  });
});

describe('Q-BLoRA on NF4: re-quantized merges are saved as 4-bit checkpoints too', () => {
  it('saves the re-quantized model and loads it back with identical outputs', () => {
    const model = baseModel({ format: 'nf4', blocksize: 64, doubleQuant: true });
    const attached = finetune(model, { method: 'qblora', r: 4, alpha: 16, lambda: 2 });
    const adapterLogits = sequenceLogits(model, HELD_OUT);
    const reports = mergeAdapters(attached, { mode: 'requantize', quantize: { format: 'int4', groupSize: 16 } });
    expect(reports.every((r) => r.requantizationError !== undefined && r.requantizationError.rmse > 0)).toBe(true);
    const inMemory = sequenceLogits(model, HELD_OUT);
    const dir = join(root, 'requant');
    saveLlama(model, dir, { quantized: true });
    const merged = load(dir);
    expect(sequenceLogits(merged, HELD_OUT)).toEqual(inMemory);
    // Re-quantization is lossy: the saved model is near the adapter model, not equal to it.
    const drift = compareLogits(adapterLogits, inMemory, VOCAB);
    expect(drift.maxAbsDiff).toBeGreaterThan(1e-4);
    expect(drift.relative).toBeLessThan(0.5);
    expect(merged.linearLayers().every(([, l]) => (l as QuantizedBase).quantized instanceof IntBlockLinear)).toBe(true);
  });
});
