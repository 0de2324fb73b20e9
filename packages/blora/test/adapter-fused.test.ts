// The fused adapter path (Adapter.addTo through poolLinear / repeatLinear) against the
// unfused composition add(y, adapter.forward(x)) and a float64 loop reference: forward values,
// the gradients of x and of every adapter parameter, the ops that run, what stays alive, and
// the fallback on a device without the fused kernels.
import { describe, expect, it } from 'vitest';
import {
  add, cast, cpuBackend, findKernel, Generator, listKernels, memoryStats, mul, registerBackend, registerKernel, sum,
  tensor, tidy, type DType, type Tensor,
} from '@blora/tensor';
import { assertClose, randomValues } from '@blora/tensor/testing';
import { noGrad } from '@blora/autograd';
import {
  AdaptedLinear, DenseBase, LoraAdapter, QABLoraAdapter, QBLoraAdapter, type Adapter, type AdapterOptions,
} from '../src/index.js';
import { opsOf, randomizeAdapter, refAdapterOutput, refMatmulT, seeded } from './helpers.js';

/** Every parameter and input gradient of one run. */
interface Run {
  y: Float64Array;
  grads: Float64Array[];
}

type Make = (options: Partial<AdapterOptions>) => Adapter;

const CASES: [string, Make][] = [
  ['Q-BLoRA λin = λout = 2', (o) => new QBLoraAdapter(12, 10, { lambda: 2 }, { r: 2, alpha: 3, ...o })],
  ['Q-BLoRA λin 3, λout 2', (o) => new QBLoraAdapter(12, 10, { lambdaIn: 3, lambdaOut: 2 }, { r: 1, alpha: 2, ...o })],
  ['Q-BLoRA λin 2, λout 5', (o) => new QBLoraAdapter(12, 10, { lambdaIn: 2, lambdaOut: 5 }, { r: 2, alpha: 4, ...o })],
  ['LoRA (λ = 1)', (o) => new LoraAdapter(12, 10, { r: 3, alpha: 6, ...o })],
  ['QA-BLoRA matrix λ1 4, λ2 2', (o) => new QABLoraAdapter(12, 10, { lambdaIn: 4, lambdaOut: 2 }, { r: 2, alpha: 2, ...o })],
  ['QA-BLoRA factors λ1 3, λ2 5', (o) => new QABLoraAdapter(12, 10, { lambdaIn: 3, lambdaOut: 5, form: 'factors' }, { r: 1, alpha: 2, ...o })],
];

/** A layer of `make`'s adapter (random parameters, float32) on a bfloat16 dense base with a bias. */
function layerOf(make: Make, dropout: number): { layer: AdaptedLinear; gen: Generator } {
  const gen = new Generator(17);
  const adapter = make({ dtype: 'float32', dropout, dropoutGenerator: gen });
  randomizeAdapter(adapter, 31);
  const base = new DenseBase(seeded([adapter.outFeatures, adapter.inFeatures], 4, 'bfloat16'), seeded([adapter.outFeatures], 5, 'bfloat16'));
  return { layer: new AdaptedLinear(base, adapter), gen };
}

/** Forward through `combine(y, x)`, then backward of sum(out · weights); collects x's and the parameters' gradients. */
function run(layer: AdaptedLinear, gen: Generator, x: Tensor, combine: (y: Tensor, x: Tensor) => Tensor): Run {
  const params = layer.adapter.parameters();
  for (const p of [x, ...params]) p.grad = null;
  gen.manualSeed(3);
  const out = combine(layer.base.forward(x), x);
  expect(out.dtype).toBe('bfloat16');
  const weights = cast(tensor(randomValues(out.numel, 41), { shape: out.shape }), 'bfloat16');
  sum(mul(out, weights)).backward();
  return { y: out.toFloat64Array(), grads: [x, ...params].map((p) => p.grad!.toFloat64Array()) };
}

/** The rounding of one bfloat16 result, and float32 sums over a handful of terms. */
const BF16 = { rtol: 1e-2, atol: 2e-2 };
const F32 = { rtol: 1e-4, atol: 1e-4 };

describe('fused adapter path vs the unfused composition (float32 adapter, bfloat16 input)', () => {
  for (const [name, make] of CASES) {
    for (const dropout of [0, 0.3]) {
      it(`${name}${dropout ? ', dropout 0.3 while training' : ''}: output, dx and every parameter gradient agree`, () => {
        const { layer, gen } = layerOf(make, dropout);
        const adapter = layer.adapter;
        const x = cast(tensor(randomValues(2 * 3 * 12, 7, -2, 2), { shape: [2, 3, 12] }), 'bfloat16');
        x.requiresGrad = true;
        const fused = run(layer, gen, x, (y, input) => adapter.addTo(y, input));
        const unfused = run(layer, gen, x, (y, input) => add(y, adapter.forward(input)));
        assertClose(fused.y, unfused.y, BF16);
        assertClose(fused.grads[0]!, unfused.grads[0]!, BF16);
        for (let i = 1; i < fused.grads.length; i++) assertClose(fused.grads[i]!, unfused.grads[i]!, F32);
        // And the layer's own forward is the fused path.
        const viaLayer = run(layer, gen, x, () => layer.forward(x));
        expect(viaLayer.y).toEqual(fused.y);
        viaLayer.grads.forEach((g, i) => expect(g).toEqual(fused.grads[i]));
      });
    }

    it(`${name}: the fused result matches base + Δy computed in float64 loops`, () => {
      const { layer } = layerOf(make, 0);
      const xv = randomValues(5 * 12, 8, -2, 2);
      const x = cast(tensor(xv, { shape: [5, 12] }), 'bfloat16');
      const xr = x.toFloat64Array();
      const w = layer.base instanceof DenseBase ? layer.base : null;
      const yBase = refMatmulT(xr, w!.weight.toFloat64Array(), 5, 12, 10);
      const bias = w!.bias!.toFloat64Array();
      const y = layer.base.forward(x);
      // The base output is rounded to bfloat16 before the update is added to it.
      const yRounded = y.toFloat64Array();
      assertClose(yRounded, yBase.map((v, i) => v + bias[i % 10]!), BF16);
      const delta = refAdapterOutput(layer.adapter, xr, 5);
      assertClose(layer.adapter.addTo(y, x), yRounded.map((v, i) => v + delta[i]!), { rtol: 8e-3, atol: 1e-6 });
    });
  }
});

describe('which ops the fused path runs', () => {
  const cases: [string, Make, string[]][] = [
    ['Q-BLoRA', CASES[0]![1], ['poolLinear', 'repeatLinear']],
    ['LoRA', CASES[3]![1], ['poolLinear', 'repeatLinear']],
    ['QA-BLoRA matrix', CASES[4]![1], ['avgPool1d', 'repeatLinear']],
  ];
  const views = ['permute', 'reshape', 'expand'];
  for (const [name, make, expected] of cases) {
    it(`${name}, no dropout: ${expected.join(', ')}`, () => {
      const { layer } = layerOf(make, 0);
      const x = cast(seeded([3, 12], 9), 'bfloat16');
      const y = layer.base.forward(x);
      expect(opsOf(() => layer.adapter.addTo(y, x)).filter((op) => !views.includes(op))).toEqual(expected);
    });
  }

  it('Q-BLoRA with dropout: pool (casting as it reads) and the mask first, then the product with A and repeatLinear', () => {
    const { layer } = layerOf(CASES[0]![1], 0.3);
    const x = cast(seeded([3, 12], 9), 'bfloat16');
    const y = layer.base.forward(x);
    const ops = opsOf(() => layer.adapter.addTo(y, x)).filter((op) => !views.includes(op));
    expect(ops[0]).toBe('avgPool1d');
    expect(ops).not.toContain('cast');
    expect(ops.slice(-2)).toEqual(['matmul', 'repeatLinear']);
    expect(ops).not.toContain('poolLinear');
    expect(ops).not.toContain('repeatInterleave');
  });

  it('leaves only its result alive (and the gradients once backward has run), and frees nothing of the caller', () => {
    for (const [, make] of CASES) {
      for (const dropout of [0, 0.3]) {
        const { layer } = layerOf(make, dropout);
        const x = cast(seeded([4, 12], 10), 'bfloat16');
        const y = layer.base.forward(x);
        const before = memoryStats().liveTensors;
        const out = noGrad(() => layer.adapter.addTo(y, x));
        expect(memoryStats().liveTensors - before).toBe(1);
        expect(x.isDisposed || y.isDisposed).toBe(false);
        out.dispose();
        // With the tape: once backward has run and the output is gone, only the gradients remain.
        x.requiresGrad = true;
        const start = memoryStats().liveTensors;
        const yGrad = tidy(() => layer.base.forward(x));
        const outGrad = layer.adapter.addTo(yGrad, x);
        yGrad.dispose();
        const loss = sum(outGrad);
        loss.backward();
        for (const t of [loss, outGrad]) t.dispose();
        expect(memoryStats().liveTensors - start).toBe(1 + layer.adapter.parameters().length);
      }
    }
  });

  it('checks the input like forward does', () => {
    const { layer } = layerOf(CASES[0]![1], 0);
    const x = seeded([2, 11], 1);
    expect(() => layer.adapter.addTo(seeded([2, 10], 2), x)).toThrow('Q-BLoRA: expected input [..., 12], got [2, 11]');
  });
});

describe('a device without the fused kernels', () => {
  // A second host device with every CPU kernel except the two fused products.
  const device = 'host-unfused';
  registerBackend({ ...cpuBackend, name: device });
  for (const op of listKernels('cpu')) if (op !== 'poolLinear' && op !== 'repeatLinear') registerKernel(op, device, findKernel(op, 'cpu')!);

  for (const dtype of ['float32', 'float64'] as DType[]) {
    it(`runs the unfused composition with the same values and gradients (${dtype} adapter)`, () => {
      expect(findKernel('poolLinear', device)).toBeUndefined();
      const runOn = (where: string): { ops: string[]; y: Float64Array; grads: Float64Array[] } => {
        const adapter = new QBLoraAdapter(12, 10, { lambdaIn: 3, lambdaOut: 2 }, { r: 2, alpha: 3, dtype, device: where });
        randomizeAdapter(adapter, 51);
        const x = tensor(randomValues(4 * 12, 52), { shape: [4, 12], dtype, device: where });
        x.requiresGrad = true;
        const y = tensor(randomValues(4 * 10, 53), { shape: [4, 10], dtype, device: where });
        y.requiresGrad = true;
        let out: Tensor | null = null;
        const ops = opsOf(() => {
          out = adapter.addTo(y, x);
        });
        sum(mul(out!, tensor(randomValues(40, 54), { shape: [4, 10], dtype, device: where }))).backward();
        return { ops, y: out!.toFloat64Array(), grads: [x, y, ...adapter.parameters()].map((p) => p.grad!.toFloat64Array()) };
      };
      const fused = runOn('cpu');
      const unfused = runOn(device);
      expect(fused.ops).toContain('repeatLinear');
      expect(unfused.ops).not.toContain('poolLinear');
      expect(unfused.ops).not.toContain('repeatLinear');
      expect(unfused.ops).toContain('repeatInterleave');
      const tol = dtype === 'float64' ? { rtol: 1e-12, atol: 1e-12 } : { rtol: 1e-5, atol: 1e-5 };
      assertClose(fused.y, unfused.y, tol);
      fused.grads.forEach((g, i) => assertClose(g, unfused.grads[i]!, tol));
    });
  }
});
