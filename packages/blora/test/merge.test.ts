// Merges: exact into dense weights and into INT4/INT8 block offsets (codes and scales
// untouched), on random layers and on a whole toy model; the lossy re-quantization path.
import { describe, expect, it } from 'vitest';
import { tensor, tidy, type Tensor } from '@blora/tensor';
import { assertClose, randomValues } from '@blora/tensor/testing';
import { noGrad } from '@blora/autograd';
import { IntBlockLinear, quantizeLinear, type QuantizeOptions } from '@blora/quant';
import {
  AdaptedLinear, attachAdapters, DenseBase, LoraAdapter, mergeAdapters, mergeLayer, QABLoraAdapter, QBLoraAdapter,
  quantizeModel, QuantizedBase, type Adapter,
} from '../src/index.js';
import { maxRelativeError, randomizeAdapter, refCore, refDeltaWeight, refMatmulT, seeded, values } from './helpers.js';
import { blockLinearPaths, ToyCausalLM, type ToyConfig } from './toy-model.js';

function outputs(layer: { forward(x: Tensor): Tensor }, x: Tensor): number[] {
  return noGrad(() => tidy(() => values(layer.forward(x))));
}

/** |a - b| relative to the largest |b|: the error of a merged layer measured against its output scale. */
function scaledError(a: readonly number[], b: readonly number[]): number {
  const scale = Math.max(...b.map(Math.abs));
  return Math.max(...a.map((v, i) => Math.abs(v - b[i]!))) / scale;
}

describe('exact merge into a dense weight', () => {
  const cases: [string, () => Adapter][] = [
    ['LoRA', () => new LoraAdapter(20, 12, { r: 3, alpha: 6 })],
    ['Q-BLoRA λ = 2', () => new QBLoraAdapter(20, 12, { lambda: 2 }, { r: 3, alpha: 6 })],
    ['Q-BLoRA λin 5, λout 3', () => new QBLoraAdapter(20, 12, { lambdaIn: 5, lambdaOut: 3 }, { r: 2, alpha: 6, useRslora: true })],
    ['QA-BLoRA matrix', () => new QABLoraAdapter(20, 12, { lambdaIn: 4, lambdaOut: 6 }, { r: 2, alpha: 6 })],
  ];
  for (const [name, make] of cases) {
    it(`${name}: W + (s/λin)·kron(C, ones) (loops); same outputs as base + adapter`, () => {
      const adapter = make();
      randomizeAdapter(adapter, 1);
      const w = seeded([12, 20], 2);
      const w0 = w.toFloat64Array();
      const layer = new AdaptedLinear(new DenseBase(w, seeded([12], 3)), adapter);
      const x = seeded([5, 20], 4);
      const before = outputs(layer, x);
      const { base, report } = mergeLayer(layer, {}, 'layer');
      expect(base).toBe(layer.base); // merged in place
      const dw = refDeltaWeight(adapter);
      assertClose(w, w0.map((v, i) => v + dw[i]!), { rtol: 1e-6, atol: 1e-7 });
      expect(scaledError(outputs(base, x), before)).toBeLessThan(1e-6);
      expect(report.deltaRms).toBeGreaterThan(0);
    });
  }
});

describe('exact merge into INT blocks: β += ΔW(tile), codes and scales untouched', () => {
  // [out, in, λout (λ2), λin (λ1), block rows, block cols, format]
  const cases: [number, number, number, number, number, number, 'int4' | 'int8'][] = [
    [16, 32, 8, 4, 8, 4, 'int4'], // the paper's tile = one 8 x 4 block (32 elements)
    [16, 32, 8, 4, 1, 4, 'int4'], // 1-D groups of 4 inside each tile
    [12, 18, 6, 3, 2, 3, 'int4'], // odd sizes
    [8, 64, 2, 32, 1, 32, 'int4'], // groups of 32 along the input, as GPTQ-style models
    [10, 12, 5, 6, 5, 2, 'int8'],
  ];
  for (const [outF, inF, lo, li, br, bc, format] of cases) {
    it(`${format} [${outF}, ${inF}], tiles ${lo} x ${li}, blocks ${br} x ${bc}`, () => {
      for (const form of ['matrix', 'factors'] as const) {
        const q = quantizeLinear(seeded([outF, inF], outF + inF), { format, blockRows: br, blockCols: bc, scaleDType: 'float32' }) as IntBlockLinear;
        const codes = values(q.codes);
        const scales = values(q.scaleTensor);
        const offsets = values(q.offsetTensor);
        const adapter = new QABLoraAdapter(inF, outF, { lambdaIn: li, lambdaOut: lo, form }, { r: 2, alpha: 4 });
        randomizeAdapter(adapter, 7);
        const layer = new AdaptedLinear(new QuantizedBase(q), adapter);
        const x = seeded([6, inF], 9);
        const before = outputs(layer, x);
        const { base, report } = mergeLayer(layer, {}, 'proj');
        expect(report.offsetDType).toBe('float32');
        expect(base).toBe(layer.base);
        expect(values(q.codes)).toEqual(codes);
        expect(values(q.scaleTensor)).toEqual(scales);
        // Each block's offset moved by the value of the tile holding it.
        const core = refCore(adapter);
        const [gridRows, gridCols] = [outF / br, inF / bc];
        const expected = offsets.map((b, i) => {
          const [row, col] = [Math.floor(i / gridCols) * br, (i % gridCols) * bc];
          return b + (adapter.scaling / li) * core[Math.floor(row / lo) * (inF / li) + Math.floor(col / li)]!;
        });
        expect(expected.length).toBe(gridRows * gridCols);
        assertClose(q.offsetTensor, expected, { rtol: 1e-6, atol: 1e-7 });
        // The merged 4-bit layer computes what base + adapter computed, to float32 rounding.
        expect(scaledError(outputs(base, x), before)).toBeLessThan(2e-6);
      }
    });
  }

  it('also merges Q-BLoRA / LoRA exactly when the blocks happen to fit their tiles', () => {
    const q = quantizeLinear(seeded([8, 16], 1), { format: 'int4', blockRows: 2, blockCols: 4, scaleDType: 'float32' });
    const layer = new AdaptedLinear(new QuantizedBase(q), new QBLoraAdapter(16, 8, { lambda: 4 }, { r: 2, alpha: 2 }));
    randomizeAdapter(layer.adapter, 2);
    const x = seeded([3, 16], 3);
    const before = outputs(layer, x);
    expect(scaledError(outputs(mergeLayer(layer).base, x), before)).toBeLessThan(2e-6);
  });

  it('refuses blocks that straddle tiles and NF4 bases, naming the layer and the numbers', () => {
    const q = quantizeLinear(seeded([8, 64], 1), { format: 'int4', groupSize: 32 });
    const layer = new AdaptedLinear(new QuantizedBase(q), new QBLoraAdapter(64, 8, { lambda: 2 }, { r: 2, alpha: 2 }));
    expect(() => mergeLayer(layer, {}, 'model.layers.3.mlp.down_proj')).toThrow(
      "Q-BLoRA on layer 'model.layers.3.mlp.down_proj': quantization blocks of 1 x 32 (rows x cols) do not lie inside the adapter's " +
      'tiles of λ2 x λ1 = 2 x 2: block columns 32 do not divide λ1 = 2');
    const nf4 = new AdaptedLinear(new QuantizedBase(quantizeLinear(seeded([8, 64], 1), { format: 'nf4' })), new LoraAdapter(64, 8, { r: 2, alpha: 2 }));
    expect(() => mergeLayer(nf4, {}, 'q_proj')).toThrow("merge: layer 'q_proj' has a nf4 (absmax blocks without offsets) base");
  });
});

const toy: ToyConfig = { vocab: 11, dim: 16, heads: 2, kvHeads: 1, hidden: 24, layers: 2, context: 6 };
const ids = () => tensor(Int32Array.from(randomValues(2 * 6, 5, 0, 11), Math.floor), { shape: [2, 6], dtype: 'int32' });

function logitsOf(model: ToyCausalLM, input: Tensor): number[] {
  return noGrad(() => tidy(() => values(model.logits(input))));
}

describe('merging a whole toy model', () => {
  it('QA-BLoRA on INT4: the merged 4-bit model gives the adapted model\'s logits', () => {
    const model = new ToyCausalLM(toy, 1);
    const quantized = quantizeModel(model, { format: 'int4', blockRows: 4, blockCols: 4, scaleDType: 'float32' });
    expect(quantized).toEqual(blockLinearPaths(2));
    const attached = attachAdapters(model, { method: 'qablora', lambdaIn: 4, lambdaOut: 4, r: 4, alpha: 8 });
    attached.layers.forEach((l, name) => randomizeAdapter(l.adapter, name.length, 0.3));
    const input = ids();
    const base = noGrad(() => tidy(() => {
      attached.layers.forEach((l) => (l.adapterEnabled = false));
      const out = logitsOf(model, input);
      attached.layers.forEach((l) => (l.adapterEnabled = true));
      return out;
    }));
    const adapted = logitsOf(model, input);
    expect(scaledError(adapted, base)).toBeGreaterThan(1e-2); // the adapters do change the model
    const reports = mergeAdapters(attached, { mode: 'exact' });
    expect(reports.map((r) => r.name)).toEqual(blockLinearPaths(2));
    expect(attached.isAttached).toBe(false);
    for (const path of blockLinearPaths(2)) {
      const m = model.namedModules().find(([n]) => n === path)![1];
      expect(m).toBeInstanceOf(QuantizedBase);
    }
    expect(scaledError(logitsOf(model, input), adapted)).toBeLessThan(1e-5);
  });

  it('Q-BLoRA on NF4: exact refused, dense merge exact, re-quantization lossy with its error reported', () => {
    const run = (mode: 'dense' | 'requantize', quantize?: QuantizeOptions) => {
      const model = new ToyCausalLM(toy, 2);
      quantizeModel(model, { format: 'nf4', blocksize: 32 });
      const attached = attachAdapters(model, { method: 'qblora', lambda: 2, r: 4, alpha: 8 });
      attached.layers.forEach((l, name) => randomizeAdapter(l.adapter, name.length, 0.3));
      const input = ids();
      const adapted = logitsOf(model, input);
      if (mode === 'dense') expect(() => mergeAdapters(attached)).toThrow("has a nf4 (absmax blocks without offsets) base");
      const reports = mergeAdapters(attached, { mode, ...(quantize ? { quantize } : {}) });
      return { error: scaledError(logitsOf(model, input), adapted), reports, model };
    };
    const dense = run('dense');
    expect(dense.error).toBeLessThan(1e-5);
    expect(dense.reports.every((r) => r.result.startsWith('dense float32'))).toBe(true);
    const requantized = run('requantize');
    expect(requantized.error).toBeGreaterThan(1e-3);
    for (const r of requantized.reports) {
      expect(r.result).toMatch(/^nf4 .* blocksize 32, double-quantized/);
      const stats = r.requantizationError!;
      expect(stats.count).toBeGreaterThan(0);
      expect(stats.rmse).toBeGreaterThan(0);
      expect(stats.sqnrDb).toBeGreaterThan(5);
      expect(stats.sqnrDb).toBeLessThan(40);
    }
    // Re-quantizing into INT4 with 1-D groups: the lossy path QA-BLoRA avoids.
    const toInt4 = run('requantize', { format: 'int4', groupSize: 8, scaleDType: 'float32' });
    expect(toInt4.reports[0]!.result).toMatch(/^int4 .* blocks 1x8/);
  });

  it('mergeAdapters changes nothing when one layer cannot merge exactly', () => {
    const model = new ToyCausalLM(toy, 3);
    quantizeModel(model, { format: 'int4', blockRows: 2, blockCols: 2, scaleDType: 'float32' });
    const down = model.model.layers.items[1]!.mlp;
    down.replaceModule('down_proj', new QuantizedBase(quantizeLinear(seeded([16, 24], 1), { format: 'int4', groupSize: 8 })));
    const attached = attachAdapters(model, { method: 'qblora', lambda: 2, r: 2, alpha: 2, targetModules: ['up_proj', 'down_proj'] });
    attached.layers.forEach((l) => randomizeAdapter(l.adapter, 3));
    const upQ = (attached.layers.get('model.layers.0.mlp.up_proj')!.base as QuantizedBase).quantized as IntBlockLinear;
    const offsets = values(upQ.offsetTensor);
    expect(() => mergeAdapters(attached)).toThrow("Q-BLoRA on layer 'model.layers.1.mlp.down_proj': quantization blocks of 1 x 8");
    expect(values(upQ.offsetTensor)).toEqual(offsets);
    expect(attached.isAttached).toBe(true);
  });

  it('float16 offsets round the merged update (reported)', () => {
    const q = quantizeLinear(seeded([8, 16], 1), { format: 'int4', blockRows: 2, blockCols: 4 });
    const layer = new AdaptedLinear(new QuantizedBase(q), new QABLoraAdapter(16, 8, { lambdaIn: 4, lambdaOut: 2 }, { r: 2, alpha: 2 }));
    randomizeAdapter(layer.adapter, 4);
    const x = seeded([3, 16], 5);
    const before = outputs(layer, x);
    const { report, base } = mergeLayer(layer);
    expect(report.offsetDType).toBe('float16');
    const err = scaledError(outputs(base, x), before);
    expect(err).toBeGreaterThan(1e-6);
    expect(err).toBeLessThan(1e-2);
  });

  it('a dense reference: the merged weight equals dequant(W) + ΔW', () => {
    const q = quantizeLinear(seeded([6, 8], 1), { format: 'nf4', blocksize: 32 });
    const layer = new AdaptedLinear(new QuantizedBase(q), new LoraAdapter(8, 6, { r: 2, alpha: 4 }));
    randomizeAdapter(layer.adapter, 2);
    const wq = q.dequantize('float64').toFloat64Array();
    const dw = refDeltaWeight(layer.adapter);
    const { base } = mergeLayer(layer, { mode: 'dense' });
    assertClose((base as DenseBase).weight, wq.map((v, i) => v + dw[i]!), { rtol: 1e-6, atol: 1e-7 });
    const xv = randomValues(2 * 8, 3);
    const y = outputs(base, tensor(xv, { shape: [2, 8] }));
    expect(maxRelativeError(y, refMatmulT(xv, wq.map((v, i) => v + dw[i]!), 2, 8, 6))).toBeLessThan(1e-5);
  });
});
