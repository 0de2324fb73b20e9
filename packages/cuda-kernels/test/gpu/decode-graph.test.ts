// What a recorded decode step is made of, on cuda: attention over the leading keys of larger
// buffers (keyLength read on the device; the SIMT and the tensor-core kernel) and copyIntoAt
// against the CPU; captureGraph (a replay sees the inputs' new values, reads and waits are
// refused while capturing, the graph's memory comes back when it is disposed; the benchmarks'
// timer deviceTimePerReplay on the same recordings); DecodeStep /
// generate with a recorded step against the same model run op by op; and dependent launches
// (kernels starting while the one before finishes) against plain ones.
import { noGrad } from '@blora/autograd';
import { createLlama, DecodeStep, generate, KVCache, llamaConfig, type LlamaConfig } from '@blora/models';
import {
  add, attention, captureGraph, cast, contiguous, copyInto, copyIntoAt, indexSelect, matmul, mul, randn, reshape, rmsNorm, tensor, tidy, transpose,
  type DType, type Tensor,
} from '@blora/tensor';
import { assertClose } from '@blora/tensor/testing';
import { describe, expect, it } from 'vitest';
import { cudaAvailable, cudaMemoryInfo, deviceTimePerReplay, matmulInto, setDependentLaunches } from '@blora/cuda-kernels';
import { tensorArg } from '../../src/descriptor.js';
import { native } from '../../src/native.js';
import { ALL_DTYPES, makeTensor, roundTo, valuesFor } from './helpers.js';

/** The same values on the CPU and on cuda. */
function both(values: Float64Array, shape: number[], dtype: DType): [Tensor, Tensor] {
  return [makeTensor(values, shape, dtype, 'cpu', 'contiguous'), makeTensor(values, shape, dtype, 'cuda', 'contiguous')];
}

describe.skipIf(!cudaAvailable())('attention with a key length on cuda', () => {
  it('attends only the leading keys, SIMT (float32, D 12) and tensor-core (bfloat16, D 64 and 128) kernels, against the CPU', () => {
    const cases: { dtype: DType; d: number; kernel: string; tol: { rtol: number; atol: number } }[] = [
      { dtype: 'float32', d: 12, kernel: 'simt', tol: { rtol: 1e-5, atol: 1e-6 } },
      { dtype: 'bfloat16', d: 64, kernel: 'tensorcore', tol: { rtol: 2e-2, atol: 1e-2 } },
      { dtype: 'bfloat16', d: 128, kernel: 'tensorcore', tol: { rtol: 2e-2, atol: 1e-2 } },
    ];
    for (const { dtype, d, kernel, tol } of cases) {
      const [b, h, hkv, s] = [1, 4, 2, 150];
      for (const t of [1, 3]) {
        const q = both(roundTo(valuesFor(dtype, b * h * t * d, 5 + t), dtype), [b, h, t, d], dtype);
        const k = both(roundTo(valuesFor(dtype, b * hkv * s * d, 6), dtype), [b, hkv, s, d], dtype);
        const v = both(roundTo(valuesFor(dtype, b * hkv * s * d, 7), dtype), [b, hkv, s, d], dtype);
        expect(native().attentionKernel(tensorArg(q[1]), tensorArg(k[1]), tensorArg(v[1]), null)).toBe(kernel);
        for (const window of [null, 40]) {
          for (const live of [0, 1, 5, 64, 70, 150, 400]) {
            const [cpu, gpu] = [0, 1].map((i) => {
              const keyLength = tensor([live], { dtype: 'int32', device: i ? 'cuda' : 'cpu' });
              const o = attention(q[i]!, k[i]!, v[i]!, { causal: true, window, keyLength });
              const values = o.toFloat64Array();
              o.dispose();
              keyLength.dispose();
              return values;
            });
            assertClose(gpu!, cpu!, tol);
          }
        }
        for (const x of [...q, ...k, ...v]) x.dispose();
      }
    }
  });
});

describe.skipIf(!cudaAvailable())('copyIntoAt on cuda', () => {
  it('writes at the position held in device memory, bit-exact with the CPU; a start that does not fit writes nothing', () => {
    for (const dtype of ALL_DTYPES) {
      for (const start of [0, 3, 7, 8, -1]) {
        const results = ['cpu', 'cuda'].map((device) => {
          const buffer = makeTensor(roundTo(valuesFor(dtype, 2 * 3 * 9 * 5, 31, -50, 50), dtype), [2, 3, 9, 5], dtype, device, 'contiguous');
          const src = makeTensor(roundTo(valuesFor(dtype, 2 * 3 * 2 * 5, 32, -50, 50), dtype), [2, 3, 2, 5], dtype, device, 'strided');
          const position = tensor([start], { dtype: 'int32', device });
          copyIntoAt(buffer, 2, position, src);
          const values = Array.from(buffer.toTypedArray());
          for (const t of [buffer, src, position]) t.dispose();
          return values;
        });
        expect(results[1]).toEqual(results[0]);
      }
    }
  });
});

describe.skipIf(!cudaAvailable())('captureGraph on cuda', () => {
  it('records without running; each replay computes from the inputs as they are then', () => {
    const x = randn([4, 8], { device: 'cuda', seed: 1 });
    const w = randn([8, 8], { device: 'cuda', seed: 2 });
    let y: Tensor | null = null;
    const graph = captureGraph('cuda', () => {
      y = tidy(() => add(mul(matmul(x, w), 0.5), x));
    });
    for (let round = 0; round < 3; round++) {
      const fresh = randn([4, 8], { device: 'cuda', seed: 10 + round });
      copyInto(x, fresh);
      graph.replay();
      const expected = tidy(() => add(mul(matmul(fresh, w), 0.5), fresh).toFloat64Array());
      assertClose(y!.toFloat64Array(), expected, { rtol: 1e-5, atol: 1e-6 });
      fresh.dispose();
    }
    graph.dispose();
    expect(() => graph.replay()).toThrow(/disposed/);
    for (const t of [x, w, y!]) t.dispose();
  });

  it('refuses reads while capturing, discards that capture, and the stream runs as before', () => {
    const x = randn([16], { device: 'cuda', seed: 3 });
    expect(() => captureGraph('cuda', () => void add(x, x).toFloat64Array())).toThrow(/while a graph is being captured/);
    expect(() => captureGraph('cuda', () => void tensor([1, 2, 3], { device: 'cuda' }))).toThrow(/while a graph is being captured/);
    const doubled = add(x, x);
    assertClose(doubled.toFloat64Array(), Array.from(x.toFloat64Array(), (v) => 2 * v), { rtol: 0, atol: 0 });
    for (const t of [x, doubled]) t.dispose();
  });

  it("keeps the memory the graph uses until it is disposed, then gives it back", () => {
    const x = randn([256, 256], { device: 'cuda', seed: 4 });
    const before = cudaMemoryInfo();
    let y: Tensor | null = null;
    const graph = captureGraph('cuda', () => {
      y = tidy(() => add(matmul(x, x), matmul(x, x)));
    });
    graph.replay();
    y!.dispose();
    // Freed by JavaScript, still the graph's: a new tensor of that size takes other memory.
    const other = randn([256, 256], { device: 'cuda', seed: 5 });
    graph.replay();
    const again = other.toFloat64Array();
    assertClose(again, randn([256, 256], { device: 'cpu', seed: 5 }).toFloat64Array(), { rtol: 1e-6, atol: 1e-6 });
    other.dispose();
    graph.dispose();
    expect(cudaMemoryInfo().allocatedBytes).toBe(before.allocatedBytes);
    x.dispose();
  });

  it('deviceTimePerReplay (the benchmarks\' timer) runs what it records and times it; a failing recording is discarded', () => {
    const x = randn([64, 48], { device: 'cuda', seed: 6 });
    const w = randn([48, 32], { device: 'cuda', seed: 7 });
    const out = randn([64, 32], { device: 'cuda', seed: 8 });
    const before = cudaMemoryInfo();
    const ms = deviceTimePerReplay(() => matmulInto(x, w, out), 5);
    expect(ms).toBeGreaterThan(0);
    expect(ms).toBeLessThan(1000);
    const expected = tidy(() => matmul(x, w).toFloat64Array());
    assertClose(out.toFloat64Array(), expected, { rtol: 1e-5, atol: 1e-5 });
    expect(cudaMemoryInfo().allocatedBytes).toBe(before.allocatedBytes);
    expect(() => deviceTimePerReplay(() => {
      throw new Error('enqueue failed');
    }, 1)).toThrow('enqueue failed');
    const doubled = add(x, x);
    assertClose(doubled.toFloat64Array(), Array.from(x.toFloat64Array(), (v) => 2 * v), { rtol: 0, atol: 0 });
    for (const t of [x, w, out, doubled]) t.dispose();
  });
});

const LLAMA = llamaConfig({ vocabSize: 37, hiddenSize: 48, intermediateSize: 40, numHiddenLayers: 2, numAttentionHeads: 4, numKeyValueHeads: 2 });
const MISTRAL = llamaConfig({ architecture: 'MistralForCausalLM', vocabSize: 31, hiddenSize: 48, intermediateSize: 28, numHiddenLayers: 2, numAttentionHeads: 4, numKeyValueHeads: 2, slidingWindow: 3 });
// Head dim 64 in bfloat16: the tensor-core attention kernel.
const WIDE = llamaConfig({ vocabSize: 53, hiddenSize: 128, intermediateSize: 96, numHiddenLayers: 2, numAttentionHeads: 2, numKeyValueHeads: 1 });

describe.skipIf(!cudaAvailable())('a recorded decode step on cuda', () => {
  const cases: [string, LlamaConfig, DType][] = [['Llama', LLAMA, 'float32'], ['Mistral (window 3)', MISTRAL, 'float32'], ['head dim 64, bfloat16', WIDE, 'bfloat16']];
  for (const [name, config, dtype] of cases) {
    it(`${name}: every replayed step gives the logits of the same step run op by op`, () => {
      const model = createLlama(config, { seed: 3, device: 'cuda', dtype });
      const prompt = [1, 5, 9, 2];
      const caches = [new KVCache(config.numHiddenLayers, { capacity: 24 }), new KVCache(config.numHiddenLayers, { capacity: 24 })];
      noGrad(() => caches.forEach((c) => tidy(() => void model.forward([prompt], { kvCache: c }))));
      const [recorded, plain] = [new DecodeStep(model, caches[0]!, { graph: true }), new DecodeStep(model, caches[1]!, { graph: false })];
      expect(recorded.usesGraph).toBe(true);
      let token = 3;
      for (let i = 0; i < 20; i++) {
        const a = recorded.next(token);
        const b = plain.next(token);
        assertClose(a, b, dtype === 'float32' ? { rtol: 1e-5, atol: 1e-5 } : { rtol: 2e-2, atol: 2e-2 });
        token = (token * 7 + i) % config.vocabSize;
      }
      expect(caches[0]!.length).toBe(24);
      recorded.dispose();
      plain.dispose();
      caches.forEach((c) => c.dispose());
      // generate records its steps on cuda by default; the tokens are those of op-by-op steps.
      if (dtype === 'float32') {
        const options = { maxNewTokens: 16, eosTokenIds: [] };
        const withGraph = generate(model, prompt, { ...options, graph: true });
        expect(generate(model, prompt, options)).toEqual(withGraph);
        expect(generate(model, prompt, { ...options, graph: false })).toEqual(withGraph);
        expect(generate(model, prompt, { ...options, useCache: false }).tokens).toEqual(withGraph.tokens);
      }
      model.dispose();
    });
  }
});

/** Runs `body` with dependent launches set to `on`, then restores the setting. */
function withDependentLaunches<R>(on: boolean, body: () => R): R {
  const previous = setDependentLaunches(on);
  try {
    return body();
  } finally {
    setDependentLaunches(previous);
  }
}

describe.skipIf(!cudaAvailable())('dependent launches on cuda', () => {
  it('a long chain of kernels, each reading the one before, gives the results of plain launches bit for bit, recorded or not', () => {
    // Every kernel here starts while the one before finishes and must wait for it: one that read
    // early would see the previous step's values. Plain launches (one kernel after the other) are
    // the reference. Big enough that each kernel takes a while.
    const rows = 512, cols = 1024;
    const chain = (x: Tensor, perm: Tensor, ones: Tensor) => {
      let y = x;
      for (let i = 0; i < 12; i++) {
        const scaled = add(mul(y, 1.5), 0.25);
        const turned = contiguous(transpose(reshape(scaled, [cols, rows])));  // the strided copy
        const shuffled = indexSelect(reshape(turned, [rows, cols]), 0, perm);
        y = rmsNorm(cast(cast(shuffled, 'bfloat16'), 'float32'), ones, 1e-6);
      }
      return y;
    };
    const values = valuesFor('float32', rows * cols, 17, -1, 1);
    const order = Array.from({ length: rows }, (_, i) => (i * 37 + 11) % rows);
    const inputs = (device: string) => [
      tensor(values, { shape: [rows, cols], device }), tensor(order, { dtype: 'int32', device }), tensor(new Float64Array(cols).fill(1), { device }),
    ] as const;
    const expected = tidy(() => chain(...inputs('cpu')).toFloat64Array());
    const [x, perm, ones] = inputs('cuda');
    const plain = withDependentLaunches(false, () => tidy(() => chain(x, perm, ones).toFloat64Array()));
    // The CPU sums rmsNorm in another order, and a bfloat16 rounding may then fall the other way.
    assertClose(plain, expected, { rtol: 2e-2, atol: 2e-2 });
    expect(withDependentLaunches(true, () => tidy(() => chain(x, perm, ones).toFloat64Array()))).toEqual(plain);
    const out = tensor(new Float64Array(rows * cols), { shape: [rows, cols], device: 'cuda' });
    withDependentLaunches(true, () => {
      const graph = captureGraph('cuda', () => tidy(() => copyInto(out, chain(x, perm, ones))));
      for (let r = 0; r < 3; r++) graph.replay();
      graph.dispose();
    });
    expect(out.toFloat64Array()).toEqual(plain);
    for (const t of [x, perm, ones, out]) t.dispose();
  });

  it('a recorded decode step gives the same logits with dependent launches on and off, bit for bit', () => {
    for (const [config, dtype] of [[LLAMA, 'float32'], [WIDE, 'bfloat16']] as const) {
      const model = createLlama(config, { seed: 5, device: 'cuda', dtype });
      const prompt = [2, 4, 6];
      const logits = (on: boolean, graph: boolean) => withDependentLaunches(on, () => {
        const cache = new KVCache(config.numHiddenLayers, { capacity: 16 });
        noGrad(() => tidy(() => void model.forward([prompt], { kvCache: cache })));
        const step = new DecodeStep(model, cache, { graph });
        const out: number[] = [];
        for (const token of [3, 1, 4, 1, 5]) out.push(...step.next(token));
        step.dispose();
        cache.dispose();
        return out;
      });
      const plain = logits(false, false);
      expect(logits(true, false)).toEqual(plain);
      expect(logits(true, true)).toEqual(logits(false, true));
      model.dispose();
    }
  });

  it('setDependentLaunches returns the previous setting', () => {
    const first = setDependentLaunches(false);
    expect(setDependentLaunches(true)).toBe(false);
    expect(setDependentLaunches(first)).toBe(true);
  });
});
