// The forward pass of every adapter against float64 references written with loops:
// PEFT's LoRA formula, the pooled / repeated form, and the kron-expanded dense ΔW.
import { describe, expect, it } from 'vitest';
import { bernoulli, cast, Generator, reshape, tensor, tidy, transpose, zeros, type Tensor } from '@blora/tensor';
import { assertClose, nonContiguousTensor, randomValues } from '@blora/tensor/testing';
import {
  AdaptedLinear, DenseBase, LoraAdapter, QABLoraAdapter, QBLoraAdapter, type Adapter, type AdapterOptions,
} from '../src/index.js';
import { maxRelativeError, randomizeAdapter, refAdapterOutput, refDeltaWeight, refMatmulT, seeded, values } from './helpers.js';

const f64: Partial<AdapterOptions> = { dtype: 'float64' };

function denseBase(outF: number, inF: number, seed: number): DenseBase {
  return new DenseBase(seeded([outF, inF], seed, 'float64'));
}

/** y = x · (W + ΔW)ᵀ with ΔW written out by loops. */
function refThroughDenseDelta(base: DenseBase, adapter: Adapter, x: ArrayLike<number>, rows: number): Float64Array {
  const w = base.weight.toFloat64Array();
  const dw = refDeltaWeight(adapter);
  return refMatmulT(x, w.map((v, i) => v + dw[i]!), rows, base.inFeatures, base.outFeatures);
}

describe('LoRA', () => {
  it("computes PEFT's x·Wᵀ + s·(dropout(x)·Aᵀ)·Bᵀ with s = α/r, and α/√r with rsLoRA", () => {
    for (const useRslora of [false, true]) {
      const adapter = new LoraAdapter(7, 5, { r: 3, alpha: 6, useRslora, ...f64, generator: new Generator(1) });
      randomizeAdapter(adapter, 2);
      expect(adapter.scaling).toBe(useRslora ? 6 / Math.sqrt(3) : 2);
      const base = denseBase(5, 7, 3);
      const layer = new AdaptedLinear(base, adapter);
      const xv = randomValues(4 * 7, 4);
      const a = adapter.loraA!.toFloat64Array();
      const b = adapter.loraB!.toFloat64Array();
      // PEFT: lora_B(lora_A(x)) * scaling, two separate products.
      const ax = refMatmulT(xv, a, 4, 7, 3);
      const bax = refMatmulT(ax, b, 4, 3, 5);
      const baseY = refMatmulT(xv, base.weight.toFloat64Array(), 4, 7, 5);
      const expected = baseY.map((v, i) => v + adapter.scaling * bax[i]!);
      const y = layer.forward(tensor(xv, { shape: [4, 7], dtype: 'float64' }));
      assertClose(y, expected, { rtol: 1e-12, atol: 1e-12 });
    }
  });

  it('starts at the base model: A kaiming-uniform within 1/√in, B zero', () => {
    const adapter = new LoraAdapter(64, 16, { r: 8, alpha: 16, generator: new Generator(5) });
    const a = values(adapter.loraA!);
    const bound = 1 / Math.sqrt(64);
    expect(adapter.loraA!.shape).toEqual([8, 64]);
    expect(adapter.loraB!.shape).toEqual([16, 8]);
    expect(Math.max(...a.map(Math.abs))).toBeLessThanOrEqual(bound);
    expect(Math.max(...a.map(Math.abs))).toBeGreaterThan(0.9 * bound);
    expect(Math.abs(a.reduce((s, v) => s + v, 0) / a.length)).toBeLessThan(0.2 * bound);
    expect(values(adapter.loraB!).every((v) => v === 0)).toBe(true);
    const x = seeded([3, 64], 9);
    expect(values(adapter.forward(x)).every((v) => v === 0)).toBe(true);
  });
});

describe('Q-BLoRA and QA-BLoRA forward', () => {
  // [in, out, λin, λout]: odd sizes, pooling to one feature, unequal factors.
  const geometries: [number, number, number, number][] = [[6, 10, 3, 2], [12, 9, 4, 3], [8, 8, 2, 2], [5, 7, 5, 7], [16, 4, 8, 1]];

  const adapters: [string, (inF: number, outF: number, li: number, lo: number) => Adapter][] = [
    ['Q-BLoRA', (inF, outF, li, lo) => new QBLoraAdapter(inF, outF, { lambdaIn: li, lambdaOut: lo }, { r: 2, alpha: 5, ...f64 })],
    ['QA-BLoRA matrix', (inF, outF, li, lo) => new QABLoraAdapter(inF, outF, { lambdaIn: li, lambdaOut: lo }, { r: 4, alpha: 3, ...f64 })],
    ['QA-BLoRA factors', (inF, outF, li, lo) => new QABLoraAdapter(inF, outF, { lambdaIn: li, lambdaOut: lo, form: 'factors' }, { r: 1, alpha: 2, ...f64 })],
  ];

  for (const [name, make] of adapters) {
    it(`${name}: pooled/repeated forward = loops = x·(W + kron-expanded ΔW)ᵀ, for odd sizes and unequal λ`, () => {
      geometries.forEach(([inF, outF, li, lo], g) => tidy(() => {
        const adapter = make(inF, outF, li, lo);
        randomizeAdapter(adapter, 10 + g);
        const base = denseBase(outF, inF, 20 + g);
        const layer = new AdaptedLinear(base, adapter);
        const rows = 6;
        const xv = randomValues(rows * inF, 30 + g);
        // 3-D, non-contiguous input.
        const x = nonContiguousTensor(xv, [2, 3, inF], 'float64');
        const y = layer.forward(x);
        expect(y.shape).toEqual([2, 3, outF]);
        const baseY = refMatmulT(xv, base.weight.toFloat64Array(), rows, inF, outF);
        const pooledWay = refAdapterOutput(adapter, xv, rows).map((v, i) => v + baseY[i]!);
        assertClose(y, pooledWay, { rtol: 1e-12, atol: 1e-12 });
        assertClose(y, refThroughDenseDelta(base, adapter, xv, rows), { rtol: 1e-11, atol: 1e-12 });
        // The library's own dense ΔW is the kron expansion.
        assertClose(adapter.deltaWeight(), refDeltaWeight(adapter), { rtol: 1e-13, atol: 1e-15 });
        expect(adapter.tileDelta().shape).toEqual([outF / lo, inF / li]);
      }));
    });
  }

  it('ΔW is constant on every λout x λin tile', () => {
    const adapter = new QBLoraAdapter(12, 8, { lambdaIn: 3, lambdaOut: 4 }, { r: 2, alpha: 2, ...f64 });
    randomizeAdapter(adapter, 3);
    const dw = values(adapter.deltaWeight());
    for (let i = 0; i < 8; i++) {
      for (let k = 0; k < 12; k++) expect(dw[i * 12 + k]).toBe(dw[Math.floor(i / 4) * 4 * 12 + Math.floor(k / 3) * 3]);
    }
  });

  it('QA-BLoRA starts at zero (M = 0) and its scaling is α / r', () => {
    const a = new QABLoraAdapter(32, 16, {}, { r: 64, alpha: 16 });
    expect([a.lambdaIn, a.lambdaOut, a.form]).toEqual([4, 8, 'matrix']);
    expect(a.loraM!.shape).toEqual([2, 8]);
    expect(values(a.loraM!).every((v) => v === 0)).toBe(true);
    expect(a.scaling).toBe(0.25);
  });

  it('handles an empty batch and casts inputs of another dtype', () => {
    const adapter = new QBLoraAdapter(8, 6, { lambda: 2 }, { r: 2, alpha: 4 });
    randomizeAdapter(adapter, 4);
    expect(adapter.forward(zeros([0, 8])).shape).toEqual([0, 6]);
    const xv = randomValues(3 * 8, 5);
    const y16 = adapter.forward(cast(tensor(xv, { shape: [3, 8] }), 'bfloat16'));
    expect(y16.dtype).toBe('bfloat16');
    const xb = values(cast(tensor(xv, { shape: [3, 8] }), 'bfloat16'));
    assertClose(y16, refAdapterOutput(adapter, xb, 3), { rtol: 1e-2, atol: 1e-2 });
  });
});

describe('λ = 1 is exactly LoRA', () => {
  it('same initial A, zero B, same outputs, ΔW and file tensors', () => {
    const lora = new LoraAdapter(10, 6, { r: 4, alpha: 8, generator: new Generator(42) });
    const qb = new QBLoraAdapter(10, 6, { lambda: 1 }, { r: 4, alpha: 8, generator: new Generator(42) });
    expect(values(qb.loraA!)).toEqual(values(lora.loraA!));
    randomizeAdapter(lora, 7);
    randomizeAdapter(qb, 7);
    const xv = randomValues(5 * 10, 8);
    const x = tensor(xv, { shape: [5, 10] });
    expect(values(qb.forward(x))).toEqual(values(lora.forward(x)));
    expect(values(qb.deltaWeight())).toEqual(values(lora.deltaWeight()));
    assertClose(lora.forward(x), refAdapterOutput(lora, xv, 5), { rtol: 1e-5, atol: 1e-6 });
    const shapes = (a: Adapter) => Object.fromEntries(Object.entries(a.fileTensors()).map(([k, t]) => [k, t.shape]));
    expect(shapes(qb)).toEqual(shapes(lora));
    expect(qb.numParameters()).toBe(lora.numParameters());
  });
});

describe('parameter counts', () => {
  it('Q-BLoRA with λin = λout has exactly LoRA\'s count at rank r, with rank r·λ', () => {
    for (const [inF, outF] of [[64, 32], [48, 96], [4096, 4096]] as const) {
      for (const lambda of [1, 2, 4, 8, 16]) {
        if (inF % lambda || outF % lambda) continue;
        const r = inF === 4096 ? 64 : 4;
        const qb = new QBLoraAdapter(inF, outF, { lambda }, { r, alpha: 16 });
        expect(qb.rank).toBe(r * lambda);
        expect(qb.numParameters()).toBe(r * (inF + outF));
        qb.dispose();
      }
    }
  });

  it('separate factors: rank r·λin, count r·(in + out·λin/λout); QA-BLoRA M matches LoRA r = 64 on 4096 x 4096', () => {
    const qb = new QBLoraAdapter(64, 32, { lambdaIn: 4, lambdaOut: 2 }, { r: 3, alpha: 1 });
    expect(qb.rank).toBe(12);
    expect(qb.loraA!.shape).toEqual([12, 16]);
    expect(qb.loraB!.shape).toEqual([16, 12]);
    expect(qb.numParameters()).toBe(3 * (64 + (32 * 4) / 2));
    const qa = new QABLoraAdapter(4096, 4096, { lambdaIn: 4, lambdaOut: 8 }, { r: 64, alpha: 16 });
    expect(qa.numParameters()).toBe(64 * (4096 + 4096));
    qa.dispose();
  });
});

describe('dropout', () => {
  it('acts on the pooled input in training and is off in eval', () => {
    const gen = new Generator(11);
    const adapter = new QBLoraAdapter(12, 6, { lambdaIn: 3, lambdaOut: 2 }, { r: 2, alpha: 2, dropout: 0.5, dropoutGenerator: gen, ...f64 });
    randomizeAdapter(adapter, 12);
    const xv = randomValues(4 * 12, 13);
    const x = tensor(xv, { shape: [4, 12], dtype: 'float64' });
    gen.manualSeed(99);
    const yTrain = values(adapter.forward(x));
    // The same mask drawn again, shaped like the pooled input [4, 4]: keep / (1 - p).
    const mask = values(bernoulli(0.5, [4, 4], { generator: new Generator(99), dtype: 'float64' }));
    const pooledMasked = new Float64Array(4 * 12);
    for (let r = 0; r < 4; r++) {
      for (let j = 0; j < 4; j++) for (let t = 0; t < 3; t++) pooledMasked[r * 12 + j * 3 + t] = xv[r * 12 + j * 3 + t]! * mask[r * 4 + j]! * 2;
    }
    assertClose(yTrain, refAdapterOutput(adapter, pooledMasked, 4), { rtol: 1e-12, atol: 1e-12 });
    adapter.eval();
    assertClose(adapter.forward(x), refAdapterOutput(adapter, xv, 4), { rtol: 1e-12, atol: 1e-12 });
  });
});

describe('bad input', () => {
  it('λ that does not divide a layer dimension names the layer and the numbers', () => {
    expect(() => new QBLoraAdapter(10, 8, { lambda: 4 }, { r: 2, alpha: 2, layerName: 'model.layers.0.mlp.up_proj' }))
      .toThrow("Q-BLoRA on layer 'model.layers.0.mlp.up_proj': λin = 4 does not divide in_features = 10");
    expect(() => new QABLoraAdapter(16, 12, { lambdaIn: 4, lambdaOut: 8 }, { r: 2, alpha: 2, layerName: 'o_proj' }))
      .toThrow("QA-BLoRA on layer 'o_proj': λout = 8 does not divide out_features = 12");
    expect(() => new QBLoraAdapter(8, 8, { lambda: 0 }, { r: 2, alpha: 2 })).toThrow('λin must be a positive integer, got 0');
    expect(() => new LoraAdapter(8, 8, { r: 1.5, alpha: 2 })).toThrow('r must be a positive integer, got 1.5');
    expect(() => new LoraAdapter(8, 8, { r: 2, alpha: 2, dropout: 1 })).toThrow('dropout must be in [0, 1), got 1');
  });

  it('an input of the wrong width, and a base of other size', () => {
    const adapter = new LoraAdapter(8, 4, { r: 2, alpha: 2, layerName: 'q_proj' });
    expect(() => adapter.forward(zeros([2, 7]))).toThrow("LoRA on layer 'q_proj': expected input [..., 8], got [2, 7]");
    expect(() => new AdaptedLinear(new DenseBase(zeros([4, 6])), adapter))
      .toThrow("LoRA on layer 'q_proj': the adapter is for [4, 8] but the base layer is [4, 6]");
  });
});

describe('dense base', () => {
  it('adds its bias and matches a transposed-weight reference', () => {
    const w = seeded([3, 5], 1, 'float64');
    const b = seeded([3], 2, 'float64');
    const base = new DenseBase(w, b);
    expect(w.requiresGrad).toBe(false);
    const xv = randomValues(2 * 5, 3);
    const y = base.forward(reshape(transpose(tensor(xv, { shape: [5, 2], dtype: 'float64' })), [2, 5]) as Tensor);
    const xt = new Float64Array(10);
    for (let i = 0; i < 2; i++) for (let k = 0; k < 5; k++) xt[i * 5 + k] = xv[k * 2 + i]!;
    const expected = refMatmulT(xt, w.toFloat64Array(), 2, 5, 3).map((v, i) => v + b.toFloat64Array()[i % 3]!);
    assertClose(y, expected, { rtol: 1e-12, atol: 1e-12 });
    expect(maxRelativeError(values(base.denseWeight()), values(w))).toBe(0);
  });
});
