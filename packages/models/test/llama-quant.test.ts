// The linear factory hook: the default makes dense autograd `Linear` layers from the loaded
// weights; a quantizing factory gets each projection by its Hugging Face name in stored dtype,
// and quantizing on load gives the same codes and outputs as quantizing after load.
import { afterAll, describe, expect, it } from 'vitest';
import { contiguous, itemSize, memoryStats, tensor, tidy, transpose, type DType, type Tensor } from '@blora/tensor';
import { Linear, Module, assignInPlace } from '@blora/autograd';
import { assertClose } from '@blora/tensor/testing';
import { FourBitLinear, IntBlockLinear, quantizeLinear, type QuantizedLinear, type QuantizeOptions } from '@blora/quant';
import { linearFromWeight, loadLlama, saveLlama, toDType, type LinearFactory, type LlamaForCausalLM } from '../src/index.js';
import { randomWeights, refConfig, roundedToFloat32, tempDir, tinyLlamaJson, writeCheckpoint } from './llama-fixtures.js';

const cleanups: (() => void)[] = [];
afterAll(() => cleanups.forEach((c) => c()));

function checkpointDir(json: Record<string, unknown>, seed: number, dtype: 'float32' | 'bfloat16' = 'float32'): string {
  const t = tempDir();
  cleanups.push(t.cleanup);
  writeCheckpoint(t.dir, json, roundedToFloat32(randomWeights(refConfig(json), seed)), dtype);
  return t.dir;
}

/** A minimal frozen quantized layer for these tests (the adapters' package has the real one). */
class TestQuantizedLayer extends Module {
  readonly inFeatures: number;
  readonly outFeatures: number;

  constructor(readonly quantized: QuantizedLinear) {
    super();
    this.inFeatures = quantized.inFeatures;
    this.outFeatures = quantized.outFeatures;
  }

  forward(x: Tensor): Tensor {
    return this.quantized.matmul(x);
  }

  denseWeight(dtype: DType): Tensor {
    return this.quantized.dequantize(dtype);
  }
}

/** Quantizes each weight and drops the dense copy. */
function quantizingFactory(options: QuantizeOptions, seen?: Tensor[]): LinearFactory {
  return (_name, weight) => {
    seen?.push(weight);
    try {
      return new TestQuantizedLayer(quantizeLinear(weight, options));
    } finally {
      weight.dispose();
    }
  };
}

const INPUT = [[3, 1, 4, 1, 5, 9], [2, 6, 5, 3, 5, 8]];

/** The codes and block statistics of a quantized weight, as numbers. */
function partsOf(q: QuantizedLinear): number[][] {
  if (q instanceof FourBitLinear) return [q.packed, q.absmaxTensor()].map((t) => Array.from(t.toFloat64Array()));
  const i = q as IntBlockLinear;
  return [i.codes, i.scaleTensor, i.offsetTensor].map((t) => Array.from(t.toFloat64Array()));
}

/** Replaces each projection weight of a dense model in place by its quantize-dequantize round trip. */
function quantizeAfterLoad(dense: LlamaForCausalLM, options: QuantizeOptions): Map<string, QuantizedLinear> {
  const out = new Map<string, QuantizedLinear>();
  for (const [name, layer] of dense.linearLayers()) {
    const weight = (layer as Linear).weight;
    const q = quantizeLinear(weight, options);
    tidy(() => assignInPlace(weight, q.dequantize('float32')));
    out.set(name, q);
  }
  return out;
}

describe('default factory', () => {
  it('makes trainable, bias-free autograd Linear layers holding the loaded weights (lm_head too)', () => {
    const dir = checkpointDir(tinyLlamaJson(), 60, 'bfloat16');
    const model = loadLlama(dir);
    for (const [name, layer] of model.linearLayers()) {
      expect(layer, name).toBeInstanceOf(Linear);
      expect((layer as Linear).bias).toBeNull();
      expect((layer as Linear).weight.dtype).toBe('float32');
      expect((layer as Linear).weight.requiresGrad).toBe(true);
    }
    expect(model.lm_head).toBeInstanceOf(Linear);
    expect(model.lm_head!.inFeatures).toBe(16);
    expect(model.lm_head!.outFeatures).toBe(37);
  });

  it('Linear takes a given weight as is and checks it', () => {
    const w = tensor([[1, 2, 3], [4, 5, 6]], { dtype: 'float64' });
    const layer = linearFromWeight(w, 'float64');
    expect(layer.weight).toBe(w);
    expect(layer.weight.requiresGrad).toBe(true);
    expect(layer.forward(tensor([[1, 0, -1]], { dtype: 'float64' })).toArray()).toEqual([[-2, -2]]);
    const cast = linearFromWeight(tensor([[1, 2]], { dtype: 'float32' }), 'bfloat16');
    expect(cast.weight.dtype).toBe('bfloat16');
    expect(() => new Linear(3, 3, { weight: tensor([[1, 2, 3]]) })).toThrow(/Linear: weight must be a float tensor \[3, 3\], got/);
    expect(() => new Linear(1, 1, { weight: tensor([[1]], { dtype: 'int32' }) })).toThrow(/weight must be a float tensor \[1, 1\]/);
    expect(() => new Linear(1, 1, { weight: tensor([[1]]), dtype: 'float64' })).toThrow(/does not match dtype float64/);
  });
});

const SETTINGS: [string, QuantizeOptions][] = [
  ['nf4 (blocksize 64, double quantization)', { format: 'nf4', blocksize: 64, doubleQuant: true }],
  ['int4 1-D groups of 8', { format: 'int4', groupSize: 8 }],
  ['int4 2-D tiles of 4 x 8, float32 scales', { format: 'int4', blockRows: 4, blockCols: 8, scaleDType: 'float32' }],
];

describe('quantizing on load through the factory', () => {
  for (const [what, options] of SETTINGS) {
    it(`${what}: same codes and outputs as quantizing after load`, () => {
      const dir = checkpointDir(tinyLlamaJson(), 61);
      const quantized = loadLlama(dir, { linearFactory: quantizingFactory(options) });
      const dense = loadLlama(dir);
      const after = quantizeAfterLoad(dense, options);
      for (const [name, layer] of quantized.linearLayers()) {
        expect(layer, name).toBeInstanceOf(TestQuantizedLayer);
        expect(partsOf((layer as TestQuantizedLayer).quantized), name).toEqual(partsOf(after.get(name)!));
      }
      // The projections are no longer parameters: only embeddings, norms and lm_head remain.
      expect(quantized.namedParameters().map(([n]) => n).filter((n) => n.includes('_proj'))).toEqual([]);
      const got = quantized.forward(INPUT);
      assertClose(got, dense.forward(INPUT), { rtol: 1e-4, atol: 1e-5 });
      // The quantization really changed the model.
      const exact = loadLlama(dir).forward(INPUT).toFloat64Array();
      expect(Math.max(...got.toFloat64Array().map((x, i) => Math.abs(x - exact[i]!)))).toBeGreaterThan(1e-4);
    });
  }

  it('passes each projection by name in checkpoint order and stored dtype, and keeps no dense copy', () => {
    const dir = checkpointDir(tinyLlamaJson(), 63, 'bfloat16');
    const calls: [string, string, number[], DType, string][] = [];
    const seen: Tensor[] = [];
    const inner = quantizingFactory({ format: 'nf4' }, seen);
    const before = memoryStats('cpu').bytes;
    const model = loadLlama(dir, {
      linearFactory: (name, weight, context) => {
        calls.push([name, weight.dtype, [...weight.shape], context.dtype, context.device]);
        return inner(name, weight, context);
      },
    });
    const held = memoryStats('cpu').bytes - before;
    expect(calls.map(([n]) => n)).toEqual(model.linearLayers().map(([n]) => n));
    expect(calls).toHaveLength(14);
    expect(calls[0]).toEqual(['model.layers.0.self_attn.q_proj', 'bfloat16', [16, 16], 'float32', 'cpu']);
    expect(calls[1]).toEqual(['model.layers.0.self_attn.k_proj', 'bfloat16', [8, 16], 'float32', 'cpu']);
    expect(calls[6]).toEqual(['model.layers.0.mlp.down_proj', 'bfloat16', [16, 24], 'float32', 'cpu']);
    expect(calls[13]![0]).toBe('model.layers.1.mlp.down_proj');
    expect(seen.every((t) => t.isDisposed)).toBe(true);
    // What stays allocated is exactly the float32 parameters plus the quantized parts: no
    // stored bfloat16 copy and no dense projection survives the load.
    const bytesOf = (t: Tensor) => t.numel * itemSize(t.dtype);
    let expected = model.parameters().reduce((a, p) => a + bytesOf(p), 0);
    for (const [, layer] of model.linearLayers()) {
      const q = (layer as TestQuantizedLayer).quantized as FourBitLinear;
      expected += [q.packed, q.table, q.doubleQuant!.codes, q.doubleQuant!.nestedAbsmax, q.doubleQuant!.code].reduce((a, t) => a + bytesOf(t), 0);
    }
    expect(held).toBe(expected);
  });

  it('saves quantized layers dequantized', () => {
    const dir = checkpointDir(tinyLlamaJson(), 64);
    const model = loadLlama(dir, { linearFactory: quantizingFactory({ format: 'int4', groupSize: 8 }) });
    const out = tempDir();
    cleanups.push(out.cleanup);
    saveLlama(model, out.dir);
    const reloaded = loadLlama(out.dir);
    for (const [name, layer] of model.linearLayers()) {
      const saved = (reloaded.linearLayers().find(([n]) => n === name)![1] as Linear).weight.toFloat64Array();
      expect(saved, name).toEqual((layer as TestQuantizedLayer).denseWeight('float32').toFloat64Array());
    }
    assertClose(reloaded.forward(INPUT), model.forward(INPUT), { rtol: 1e-4, atol: 1e-5 });
  });

  it('a layer the saver cannot write is named', () => {
    const dir = checkpointDir(tinyLlamaJson(), 65);
    class Opaque extends Module {
      constructor(readonly inFeatures: number, readonly outFeatures: number) {
        super();
      }
      forward(x: Tensor): Tensor {
        return x;
      }
    }
    const model = loadLlama(dir, { linearFactory: (_n, w) => new Opaque(w.shape[1]!, w.shape[0]!) });
    const out = tempDir();
    cleanups.push(out.cleanup);
    expect(() => saveLlama(model, out.dir)).toThrow(/cannot save 'model\.layers\.0\.self_attn\.q_proj' \(Opaque\): it has neither a 'weight' tensor nor a denseWeight\(dtype\) method/);
  });

  it('a factory returning the wrong shape is named', () => {
    const dir = checkpointDir(tinyLlamaJson(), 66);
    const transposedK: LinearFactory = (name, w, context) =>
      linearFromWeight(name.endsWith('k_proj') ? contiguous(transpose(w)) : toDType(w, context.dtype), context.dtype);
    expect(() => loadLlama(dir, { linearFactory: transposedK })).toThrow(/LlamaAttention: k_proj must map 16 -> 8 features, got 8 -> 16/);
    const factory = quantizingFactory({ format: 'int4', groupSize: 5 });
    expect(() => loadLlama(dir, { linearFactory: factory })).toThrow(/16 columns are not divisible by 5/);
  });
});
