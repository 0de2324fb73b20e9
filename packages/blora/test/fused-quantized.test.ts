// An adapter inside its quantized base's products (fusedQuantizedAdapter, the path
// AdaptedLinear takes on a quantized base) against the unfused composition base(x) + Δy and a
// float64 loop reference: the output, the gradients of x and of every adapter parameter, for
// LoRA, Q-BLoRA and QA-BLoRA (both forms) on NF4 and INT4 bases, with a bias; the ops it runs,
// what the tape keeps, and the cases that stay unfused (dropout, the switch).
import { describe, expect, it } from 'vitest';
import { cast, Generator, mul, sum, tensor, type Tensor } from '@blora/tensor';
import { assertClose, randomValues } from '@blora/tensor/testing';
import { noGrad } from '@blora/autograd';
import { quantizeLinear, type QuantizeOptions } from '@blora/quant';
import {
  AdaptedLinear, LoraAdapter, QABLoraAdapter, QBLoraAdapter, QuantizedBase, setLowRankDecoding, type Adapter, type AdapterOptions,
} from '../src/index.js';
import { opsOf, randomizeAdapter, refAdapterOutput, refMatmulT, seeded } from './helpers.js';

type Make = (options: Partial<AdapterOptions>) => Adapter;

const NF4: QuantizeOptions = { format: 'nf4', blocksize: 32 };
const INT4: QuantizeOptions = { format: 'int4', blockRows: 2, blockCols: 4, scaleDType: 'float32' };

const CASES: [string, QuantizeOptions, Make][] = [
  ['LoRA on NF4', NF4, (o) => new LoraAdapter(32, 12, { r: 3, alpha: 6, ...o })],
  ['Q-BLoRA λ 2 on NF4', NF4, (o) => new QBLoraAdapter(32, 12, { lambda: 2 }, { r: 2, alpha: 3, ...o })],
  ['Q-BLoRA λin 4, λout 3 on INT4', INT4, (o) => new QBLoraAdapter(32, 12, { lambdaIn: 4, lambdaOut: 3 }, { r: 1, alpha: 2, ...o })],
  ['QA-BLoRA matrix (2, 4) on INT4 2 x 4', INT4, (o) => new QABLoraAdapter(32, 12, { lambdaIn: 4, lambdaOut: 2 }, { r: 2, alpha: 2, ...o })],
  ['QA-BLoRA factors (2, 8) on INT4 2 x 4', INT4, (o) => new QABLoraAdapter(32, 12, { lambdaIn: 8, lambdaOut: 2, form: 'factors' }, { r: 1, alpha: 2, ...o })],
];

/** A layer of `make`'s adapter (random float32 parameters) on a quantized [12, 32] base with a bias. */
function layerOf(options: QuantizeOptions, make: Make, dropout = 0, biasDType: 'float32' | 'bfloat16' = 'float32'): AdaptedLinear {
  const adapter = make({ dtype: 'float32', dropout, dropoutGenerator: new Generator(3) });
  randomizeAdapter(adapter, 31);
  const base = new QuantizedBase(quantizeLinear(seeded([12, 32], 4), options), seeded([12], 5, biasDType));
  return new AdaptedLinear(base, adapter);
}

interface Run {
  y: Float64Array;
  grads: Float64Array[];
}

/** y = layer(x) (fused or not), then backward of sum(y · weights): y, dx and the adapter's gradients. */
function run(layer: AdaptedLinear, x: Tensor, fused: boolean): Run {
  const params = layer.adapter.parameters();
  for (const p of [x, ...params]) p.grad = null;
  const previous = AdaptedLinear.fuseQuantizedBase;
  AdaptedLinear.fuseQuantizedBase = fused;
  try {
    const y = layer.forward(x);
    const weights = cast(tensor(randomValues(y.numel, 41), { shape: y.shape }), y.dtype);
    sum(mul(y, weights)).backward();
    return { y: y.toFloat64Array(), grads: [x, ...params].map((p) => p.grad!.toFloat64Array()) };
  } finally {
    AdaptedLinear.fuseQuantizedBase = previous;
  }
}

describe('an adapter fused into its quantized base vs the unfused composition', () => {
  for (const [name, options, make] of CASES) {
    for (const dtype of ['float32', 'bfloat16'] as const) {
      it(`${name}, ${dtype} input: output, dx and every parameter gradient agree`, () => {
        const layer = layerOf(options, make, 0, dtype);
        const x = cast(tensor(randomValues(2 * 3 * 32, 7, -2, 2), { shape: [2, 3, 32] }), dtype);
        x.requiresGrad = true;
        const fused = run(layer, x, true);
        const unfused = run(layer, x, false);
        // Fused, the update is added before the product's one rounding; unfused after it.
        const tol = dtype === 'bfloat16' ? { rtol: 1e-2, atol: 3e-2 } : { rtol: 1e-5, atol: 1e-5 };
        assertClose(fused.y, unfused.y, tol);
        assertClose(fused.grads[0]!, unfused.grads[0]!, tol);
        for (let i = 1; i < fused.grads.length; i++) assertClose(fused.grads[i]!, unfused.grads[i]!, { rtol: 1e-4, atol: 1e-4 });
      });
    }

    it(`${name}: the output matches x · Wᵀ + b + Δy in float64 loops`, () => {
      const layer = layerOf(options, make);
      const xv = randomValues(5 * 32, 8, -2, 2);
      const x = tensor(xv, { shape: [5, 32] });
      const base = layer.base as QuantizedBase;
      const w = base.denseWeight('float64').toFloat64Array();
      const bias = base.bias!.toFloat64Array();
      const delta = refAdapterOutput(layer.adapter, x.toFloat64Array(), 5);
      const expected = refMatmulT(x.toFloat64Array(), w, 5, 32, 12).map((v, i) => v + bias[i % 12]! + delta[i]!);
      assertClose(noGrad(() => layer.forward(x)), expected, { rtol: 1e-5, atol: 1e-5 });
    });
  }
});

describe('what the fused layer runs and keeps', () => {
  it('forward: poolLinear, the product with B and one quantized matmul that takes the update as its addend', () => {
    const layer = layerOf(NF4, CASES[1]![2]);
    const x = seeded([3, 32], 9);
    noGrad(() => layer.forward(x));  // restores the double-quantized absmax once
    const ops = opsOf(() => noGrad(() => layer.forward(x))).filter((op) => !['transpose', 'permute', 'reshape', 'expand'].includes(op));
    expect(ops).toEqual(['poolLinear', 'matmul', 'nf4Matmul', 'add']);
  });

  it('decoding on the CPU keeps the product with B apart (the low-rank addend is for GPUs), whatever the switch says', () => {
    const layer = layerOf(NF4, CASES[1]![2]);
    const x = seeded([1, 32], 9);
    noGrad(() => layer.forward(x));  // restores the double-quantized absmax once
    const ops = () => opsOf(() => noGrad(() => layer.forward(x))).filter((op) => !['transpose', 'permute', 'reshape', 'expand'].includes(op));
    expect(ops()).toEqual(['poolLinear', 'matmul', 'nf4Matmul', 'add']);
    expect(setLowRankDecoding(false)).toBe(true);
    try {
      expect(ops()).toEqual(['poolLinear', 'matmul', 'nf4Matmul', 'add']);
    } finally {
      expect(setLowRankDecoding(true)).toBe(false);
    }
  });

  it('backward: one transposed quantized matmul gives dx, with the adapter part as its addend', () => {
    const layer = layerOf(INT4, CASES[2]![2]);
    const x = seeded([3, 32], 9);
    x.requiresGrad = true;
    const y = layer.forward(x);
    const ops = opsOf(() => sum(y).backward());
    expect(ops.filter((op) => op === 'int4MatmulT')).toHaveLength(1);
    expect(ops).not.toContain('repeatLinear');
    expect(ops).not.toContain('int4Matmul');
  });

  it('the tape keeps x, the parameters and A · pool(x), not the output', () => {
    const layer = layerOf(NF4, CASES[1]![2]);
    const x = seeded([3, 32], 9);
    x.requiresGrad = true;
    const y = layer.forward(x);
    // The bias add sits on top; below it the fused node.
    const node = (y.gradFn as unknown as { parents(): { op: string; savedTensors(): { tensor: Tensor }[] }[] }).parents()[0]!;
    expect(node.op).toBe('fusedQuantizedAdapter');
    const saved = node.savedTensors().map((s) => s.tensor.shape);
    expect(saved).toEqual([[3, 32], [4, 16], [6, 4], [3, 4]]);
  });

  it('with an active dropout, or the switch off, the layer takes the unfused path', () => {
    const layer = layerOf(NF4, CASES[1]![2], 0.3);
    const x = seeded([3, 32], 9);
    layer.train(true);
    expect(opsOf(() => layer.forward(x))).toContain('repeatLinear');
    layer.train(false);
    expect(opsOf(() => layer.forward(x))).not.toContain('repeatLinear');
    AdaptedLinear.fuseQuantizedBase = false;
    try {
      expect(opsOf(() => layer.forward(x))).toContain('repeatLinear');
    } finally {
      AdaptedLinear.fuseQuantizedBase = true;
    }
  });

  it('with the adapter disabled the layer is the base alone', () => {
    const layer = layerOf(NF4, CASES[0]![2]);
    const x = seeded([3, 32], 9);
    layer.adapterEnabled = false;
    expect(Array.from(layer.forward(x).toFloat64Array())).toEqual(Array.from(layer.base.forward(x).toFloat64Array()));
  });
});
